package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// writeAudit inserts, in the transaction that writes r over version prev,
// the audit entries r carries for versions after prev: the entry of this
// write, which commits or rolls back with it.
func (t *tx) writeAudit(ctx context.Context, r *sync.Record, prev int64) error {
	for _, e := range r.Audit {
		if e.Version <= prev {
			continue
		}
		var data []byte
		if e.Version == r.Version && !r.Deleted {
			data = r.Data
		}
		user, err := t.nameIDs(ctx, []string{e.UserID})
		if err != nil {
			return err
		}
		row, err := auditRow(e, user[0], data)
		if err != nil {
			return err
		}
		if row[8] == auditSameAsData {
			if t.sameAsData == nil {
				t.sameAsData = map[string]int{}
			}
			t.sameAsData[e.Key] = t.auditRows.len()
		}
		t.auditRows.add(row...)
	}
	return nil
}

// StoresNewAuditEntriesOnly tells the engine that Put stores only the
// audit entries of versions after the one it replaces (see writeAudit):
// those of earlier versions were stored with their own writes.
func (t *tx) StoresNewAuditEntriesOnly() {}

// auditSameAsData marks the stored changes of a record's creation that
// are every field of the record's data at the entry's version, from
// null: the record holds them, until it is written again, when Put
// stores them in full (see keepAuditChanges).
const auditSameAsData = "="

// auditChangesColumn is an entry's changes as SQL, those marked
// auditSameAsData taken from its record.
const auditChangesColumn = `CASE WHEN changes = '` + auditSameAsData + `' THEN coalesce('[{},' ||
	(SELECT r.data FROM records r WHERE r.coll = audit.coll AND r.id = audit.rid AND r.version = audit.version) || ']', changes)
	ELSE changes END`

// keepAuditChanges stores in full the changes of the entry of old's
// version when they are marked auditSameAsData: old is about to be
// overwritten.
func (t *tx) keepAuditChanges(ctx context.Context, old *sync.Record) error {
	if old.Deleted || old.Data == nil {
		return nil
	}
	changes := "[{}," + string(old.Data) + "]"
	if i, ok := t.sameAsData[auditKey(old)]; ok { // still waiting in the batch
		t.auditRows.args[i*t.auditRows.cols+8] = changes
		delete(t.sameAsData, auditKey(old))
		return nil
	}
	_, err := t.stmt(ctx, t.q.keepAudit).ExecContext(ctx, changes, string(old.Collection), old.ID, old.Version)
	if err != nil {
		return errorf("audit: %w", err)
	}
	return nil
}

// auditKey is the key of the entry of a record's version.
func auditKey(r *sync.Record) string {
	return string(r.Collection) + "/" + r.ID + "/" + strconv.FormatInt(r.Version, 10)
}

// insertAudit inserts one audit entry in tx, a write transaction of the
// store's writer.
func (s *Store) insertAudit(ctx context.Context, tx *sql.Tx, e sync.AuditEntry) error {
	var user int64
	err := tx.StmtContext(ctx, s.qw.nameID).QueryRowContext(ctx, e.UserID).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		err = tx.StmtContext(ctx, s.qw.addName).QueryRowContext(ctx, e.UserID).Scan(&user)
	}
	if err != nil {
		return errorf("audit: user: %w", err)
	}
	row, err := auditRow(e, user, nil)
	if err != nil {
		return err
	}
	if _, err := tx.StmtContext(ctx, s.qw.audit).ExecContext(ctx, row...); err != nil {
		return errorf("audit: %w", err)
	}
	return nil
}

// auditRow returns the columns of the audit table for an entry, whose
// user's name (see names) is user. The entry
// of a record's write keeps no key of its own (NULL): its key is
// collection/id/version, which its columns hold (see auditKeyColumn), and
// its changes are kept in their compact form, or as auditSameAsData when
// they are data, the record's data at the entry's version, from null.
func auditRow(e sync.AuditEntry, user int64, data []byte) ([]any, error) {
	changes := auditSameAsData
	if !(len(data) > 0 && e.Created) && !createdAs(e.Changes, data) {
		var err error
		if changes, err = compactChanges(e.Changes); err != nil {
			return nil, err
		}
	}
	terrs, err := json.Marshal(nonNilStrings(e.Territories))
	if err != nil {
		return nil, err
	}
	var key any = e.Key
	if e.Key == string(e.Collection)+"/"+e.ID+"/"+strconv.FormatInt(e.Version, 10) {
		key = nil
	}
	return []any{key, e.At.UnixNano(), user, e.DeviceID, e.Action, string(e.Collection), e.ID, e.Version, changes, string(terrs)}, nil
}

// auditKeyColumn is an entry's key as SQL: its own, or, for a record's
// write, collection/id/version.
const auditKeyColumn = "coalesce(key, coll || '/' || rid || '/' || version)"

// createdAs reports whether changes are every top-level field of data,
// from null, with the value data holds: what expandChanges reads back
// from "[{}," + data + "]".
func createdAs(changes map[string]sync.FieldChange, data []byte) bool {
	if len(data) == 0 || len(changes) == 0 {
		return false
	}
	for _, c := range changes {
		if len(c.From) > 0 && !bytes.Equal(c.From, []byte("null")) {
			return false
		}
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil || len(fields) != len(changes) {
		return false
	}
	for k, v := range fields {
		if c, ok := changes[k]; !ok || !bytes.Equal(c.To, v) {
			return false
		}
	}
	return true
}

// compactChanges encodes changed fields as two objects, the values before
// and the values after, each without its nulls: ["{…}","{…}"] takes about
// half the bytes of {"field":{"from":…,"to":…},…}, most of all for a
// create, whose befores are all null. No entry is written without
// changes as null or {}, kept as such.
func compactChanges(changes map[string]sync.FieldChange) (string, error) {
	if len(changes) == 0 {
		raw, err := json.Marshal(changes)
		return string(raw), err
	}
	var sides [2]map[string]json.RawMessage
	for i := range sides {
		sides[i] = map[string]json.RawMessage{}
	}
	for field, c := range changes {
		for i, v := range []json.RawMessage{c.From, c.To} {
			if len(v) > 0 && !bytes.Equal(v, []byte("null")) {
				sides[i][field] = v
			}
		}
		if _, ok := sides[0][field]; !ok {
			if _, ok := sides[1][field]; !ok {
				sides[1][field] = json.RawMessage("null") // null to null: kept
			}
		}
	}
	raw, err := json.Marshal(sides)
	return string(raw), err
}

// expandChanges decodes changes as compactChanges or an older layout kept
// them; a field absent on one side was null there.
func expandChanges(raw string) (map[string]sync.FieldChange, error) {
	if !strings.HasPrefix(raw, "[") {
		var changes map[string]sync.FieldChange
		err := json.Unmarshal([]byte(raw), &changes)
		return changes, err
	}
	var sides [2]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &sides); err != nil {
		return nil, err
	}
	changes := map[string]sync.FieldChange{}
	null := json.RawMessage("null")
	for i, side := range sides {
		for field, v := range side {
			c, ok := changes[field]
			if !ok {
				c = sync.FieldChange{From: null, To: null}
			}
			if i == 0 {
				c.From = v
			} else {
				c.To = v
			}
			changes[field] = c
		}
	}
	return changes, nil
}

// withAudit runs change in a write transaction and inserts the audit
// entries in the same transaction: both commit or neither does.
func (s *Store) withAudit(ctx context.Context, audit []sync.AuditEntry, change func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := change(tx); err != nil {
		return err
	}
	for _, e := range audit {
		if err := s.insertAudit(ctx, tx, e); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// AuditEntries returns the entries q selects, newest first.
func (s *Store) AuditEntries(ctx context.Context, q sync.AuditQuery) ([]sync.AuditEntry, error) {
	const op = "sqlitestore.AuditEntries"
	var where []string
	var args []any
	add := func(cond string, a ...any) { where = append(where, cond); args = append(args, a...) }
	if q.Collection != "" {
		add("coll = ?", string(q.Collection))
	}
	if q.ID != "" {
		add("rid = ?", q.ID)
	}
	if q.UserID != "" {
		add("user_id = (SELECT n FROM names WHERE name = ?)", q.UserID)
	}
	if !q.From.IsZero() {
		add("at >= ?", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		add("at < ?", q.To.UnixNano())
	}
	if !q.BeforeAt.IsZero() {
		add("(at < ? OR (at = ? AND "+auditKeyColumn+" < ?))", q.BeforeAt.UnixNano(), q.BeforeAt.UnixNano(), q.BeforeKey)
	}
	if q.Territories != nil {
		terrs, err := json.Marshal(q.Territories)
		if err != nil {
			return nil, err
		}
		add("EXISTS (SELECT 1 FROM json_each(territories) WHERE value IN (SELECT value FROM json_each(?)))", string(terrs))
	}
	query := "SELECT " + auditKeyColumn + " AS k, at, (SELECT name FROM names WHERE n = audit.user_id), device_id, action, coll, rid, version, " + auditChangesColumn + ", territories FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at DESC, k DESC LIMIT ?"
	args = append(args, q.Limit)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var out []sync.AuditEntry
	for rows.Next() {
		var (
			e              sync.AuditEntry
			at             int64
			coll           string
			changes, terrs string
		)
		if err := rows.Scan(&e.Key, &at, &e.UserID, &e.DeviceID, &e.Action, &coll, &e.ID, &e.Version, &changes, &terrs); err != nil {
			return nil, errorf("%s: %w", op, err)
		}
		e.At, e.Collection = time.Unix(0, at).UTC(), schema.Collection(coll)
		if e.Changes, err = expandChanges(changes); err != nil {
			return nil, errorf("%s: %w", op, err)
		}
		if err := json.Unmarshal([]byte(terrs), &e.Territories); err != nil {
			return nil, errorf("%s: %w", op, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SweepAudit deletes audit entries made before cutoff.
func (s *Store) SweepAudit(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM audit WHERE at < ?", cutoff.UnixNano())
	if err != nil {
		return 0, errorf("sqlitestore.SweepAudit: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
