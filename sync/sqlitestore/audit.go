package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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
		if err := insertAudit(ctx, t.stmt(ctx, t.q.audit), e); err != nil {
			return err
		}
	}
	return nil
}

// insertAudit inserts one audit entry through st, the store's prepared
// insert bound to a transaction.
func insertAudit(ctx context.Context, st *sql.Stmt, e sync.AuditEntry) error {
	changes, err := json.Marshal(e.Changes)
	if err != nil {
		return err
	}
	terrs, err := json.Marshal(nonNilStrings(e.Territories))
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, e.Key, e.At.UnixNano(), e.UserID, e.DeviceID, e.Action, string(e.Collection), e.ID, e.Version, string(changes), string(terrs)); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
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
		if err := insertAudit(ctx, tx.StmtContext(ctx, s.qw.audit), e); err != nil {
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
		add("user_id = ?", q.UserID)
	}
	if !q.From.IsZero() {
		add("at >= ?", q.From.UnixNano())
	}
	if !q.To.IsZero() {
		add("at < ?", q.To.UnixNano())
	}
	if !q.BeforeAt.IsZero() {
		add("(at < ? OR (at = ? AND key < ?))", q.BeforeAt.UnixNano(), q.BeforeAt.UnixNano(), q.BeforeKey)
	}
	if q.Territories != nil {
		terrs, err := json.Marshal(q.Territories)
		if err != nil {
			return nil, err
		}
		add("EXISTS (SELECT 1 FROM json_each(territories) WHERE value IN (SELECT value FROM json_each(?)))", string(terrs))
	}
	query := "SELECT key, at, user_id, device_id, action, coll, rid, version, changes, territories FROM audit"
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY at DESC, key DESC LIMIT ?"
	args = append(args, q.Limit)
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
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
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		e.At, e.Collection = time.Unix(0, at).UTC(), schema.Collection(coll)
		if err := json.Unmarshal([]byte(changes), &e.Changes); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		if err := json.Unmarshal([]byte(terrs), &e.Territories); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// SweepAudit deletes audit entries made before cutoff.
func (s *Store) SweepAudit(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM audit WHERE at < ?", cutoff.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("sqlitestore.SweepAudit: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
