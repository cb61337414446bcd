package sqlitestore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// tx is a unit of work on the store: a write transaction from Update
// (shared by the units of a group, each in its own savepoint), a read
// transaction from View. A write transaction holds SQLite's write lock
// from its start, so it may keep what it read and the feed counter in
// memory until it commits.
type tx struct {
	q     *queries
	t     *sql.Tx
	stmts map[*sql.Stmt]*sql.Stmt
	// seq is the last seq this transaction took; 0 until it takes one.
	seq int64
	// known holds the stored state of records this transaction read or
	// wrote, by "collection/id"; nil for a missing record.
	known map[string]*sync.Record
	// recs holds the integer keys of the records in known.
	recs map[string]int64
	// answers waits to be stored at commit, in one statement; saved holds
	// the same by user and mutation id.
	answers []*sync.Answer
	saved   map[[2]string]*sync.Answer
	// byRef holds, by "collection/id", the index in answers of an answer
	// to be stored as a reference to the record this transaction wrote
	// (see answerByRef), until the record is written again.
	byRef map[string]int
	// names is the store's cache of names; newNames holds those this
	// transaction found or added, kept there once it commits.
	names    *nameCache
	newNames map[string]int64
	// tokenRows and auditRows wait to be stored at commit (see batch);
	// sameAsData holds the rows of auditRows whose changes are
	// auditSameAsData, by entry key.
	tokenRows, auditRows *batch
	sameAsData           map[string]int
	// facts holds the facts of written records until they are stored;
	// inserts the records the unit of work created, until it ends.
	facts   factRows
	inserts inserts
	// proofs holds the photo proofs this transaction read or saved, by
	// user and hash; nil for one known to be missing.
	proofs map[[2]string]*sync.PhotoProof
}

// View runs fn in one read transaction: a consistent snapshot.
func (s *Store) View(ctx context.Context, fn func(sync.RecordTx) error) error {
	t, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return errorf("sqlitestore: begin: %w", err)
	}
	x := newTx(s.qr, t, &s.names)
	if err := fn(x); err != nil {
		t.Rollback()
		return err
	}
	return x.commit(ctx)
}

// stmt returns a prepared statement bound to the transaction.
func (t *tx) stmt(ctx context.Context, st *sql.Stmt) *sql.Stmt {
	bound, ok := t.stmts[st]
	if !ok {
		bound = t.t.StmtContext(ctx, st)
		t.stmts[st] = bound
	}
	return bound
}

// nextSeq takes the next seq of the feed.
func (t *tx) nextSeq(ctx context.Context) (int64, error) {
	if t.seq == 0 {
		if err := t.stmt(ctx, t.q.feed).QueryRowContext(ctx).Scan(&t.seq); err != nil {
			return 0, err
		}
	}
	t.seq++
	return t.seq, nil
}

const recordColumns = "r.rec, r.coll, r.id, r.version, r.deleted, r.updated_at, " + updatedByColumn + ", r.data, r.seq, r.tokens, r.refs, r.history"

// updatedByColumn is the name of a record's last writer, which it keeps
// as that name's integer (see names).
const updatedByColumn = "(SELECT name FROM names WHERE n = r.updated_by)"

// feedColumns are recordColumns without what readers of the feed do not
// need.
const feedColumns = "r.rec, r.coll, r.id, r.version, r.deleted, r.updated_at, " + updatedByColumn + ", r.data, r.seq, r.tokens, '[]', '[]'"

// scanRecord reads recordColumns; the record's facts are read apart (see
// readFacts).
func scanRecord(sc interface{ Scan(...any) error }) (int64, *sync.Record, error) {
	var (
		r                     sync.Record
		rec                   int64
		coll                  string
		updated               int64
		data                  sql.NullString
		tokens, refs, history string
	)
	if err := sc.Scan(&rec, &coll, &r.ID, &r.Version, &r.Deleted, &updated, &r.UpdatedBy, &data, &r.Seq, &tokens, &refs, &history); err != nil {
		return 0, nil, err
	}
	r.Collection = schema.Collection(coll)
	r.UpdatedAt = time.Unix(0, updated).UTC()
	if data.Valid {
		r.Data = json.RawMessage(data.String)
	}
	if tokens != "" {
		r.Tokens = strings.Split(tokens, "\n")
	}
	var revs []storedRevision
	for _, f := range []struct {
		raw string
		dst any
	}{{refs, &r.Refs}, {history, &revs}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return 0, nil, errorf("record %s/%s: %w", coll, r.ID, err)
		}
	}
	r.History = fullHistory(revs, r.Data, r.UpdatedBy)
	return rec, &r, nil
}

// storedRevision is how a revision is kept in the history column: a
// revision whose data is the record's current data says so (Current)
// rather than holding a second copy of it, and one whose user is the
// record's last writer says so (Writer) rather than naming the user again.
type storedRevision struct {
	Version    int64           `json:"v"`
	MutationID string          `json:"m,omitempty"`
	UserID     string          `json:"u,omitempty"`
	Data       json.RawMessage `json:"d,omitempty"`
	Current    bool            `json:"c,omitempty"`
	Writer     bool            `json:"w,omitempty"`
}

// leanHistory returns the stored form of a record's history, given the
// record's data and last writer (empty: no revision is marked Writer).
func leanHistory(h []storedRevision, data []byte, writer string) []storedRevision {
	out := slices.Clone(h)
	for i := range out {
		if len(data) > 0 && bytes.Equal(out[i].Data, data) {
			out[i].Data, out[i].Current = nil, true
		}
		if writer != "" && out[i].UserID == writer {
			out[i].UserID, out[i].Writer = "", true
		}
	}
	return out
}

// fullHistory returns the history of a record from its stored form, given
// the record's data and last writer.
func fullHistory(h []storedRevision, data json.RawMessage, writer string) []sync.Revision {
	if h == nil {
		return nil
	}
	out := make([]sync.Revision, len(h))
	for i, s := range h {
		out[i] = sync.Revision{Version: s.Version, MutationID: s.MutationID, UserID: s.UserID, Data: s.Data}
		if s.Current {
			out[i].Data = data
		}
		if s.Writer {
			out[i].UserID = writer
		}
	}
	return out
}

// readFacts fills in the facts of records, whose integer keys are recs,
// in one query.
func (t *tx) readFacts(ctx context.Context, recs []int64, records []*sync.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := t.flushFacts(ctx); err != nil {
		return err
	}
	raw, err := json.Marshal(recs)
	if err != nil {
		return err
	}
	rows, err := t.stmt(ctx, t.q.recordFacts).QueryContext(ctx, string(raw))
	if err != nil {
		return err
	}
	defer rows.Close()
	byRec := make(map[int64]*sync.Record, len(recs))
	for i, rec := range recs {
		byRec[rec] = records[i]
	}
	for rows.Next() {
		var rec int64
		f, err := scanFact(rows, &rec)
		if err != nil {
			return err
		}
		if r := byRec[rec]; r != nil {
			r.Facts = append(r.Facts, f)
		}
	}
	return rows.Err()
}

// Record returns the current state of a record.
func (t *tx) Record(ctx context.Context, c schema.Collection, id string) (*sync.Record, error) {
	key := string(c) + "/" + id
	if r, ok := t.known[key]; ok {
		if r == nil {
			return nil, sync.ErrNotFound
		}
		return r, nil
	}
	rec, r, err := scanRecord(t.stmt(ctx, t.q.record).QueryRowContext(ctx, string(c), id))
	if errors.Is(err, sql.ErrNoRows) {
		t.known[key] = nil
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, errorf("sqlitestore.Record: %w", err)
	}
	if err := t.readFacts(ctx, []int64{rec}, []*sync.Record{r}); err != nil {
		return nil, errorf("sqlitestore.Record: %w", err)
	}
	t.known[key], t.recs[key] = r, rec
	return r, nil
}

// Records returns the records of c with the given ids, those this
// transaction knows from memory and the rest in one query; it remembers
// what it read, missing records included.
func (t *tx) Records(ctx context.Context, c schema.Collection, ids []string) (map[string]*sync.Record, error) {
	const op = "sqlitestore.Records"
	out := map[string]*sync.Record{}
	var unknown []string
	for _, id := range ids {
		r, ok := t.known[string(c)+"/"+id]
		switch {
		case !ok:
			unknown = append(unknown, id)
		case r != nil:
			out[id] = r
		}
	}
	if len(unknown) == 0 {
		return out, nil
	}
	raw, err := json.Marshal(unknown)
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	rows, err := t.stmt(ctx, t.q.records).QueryContext(ctx, string(c), string(raw))
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	defer rows.Close()
	var (
		read []*sync.Record
		recs []int64
	)
	for rows.Next() {
		rec, r, err := scanRecord(rows)
		if err != nil {
			return nil, errorf("%s: %w", op, err)
		}
		out[r.ID] = r
		read, recs = append(read, r), append(recs, rec)
		t.recs[string(c)+"/"+r.ID] = rec
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	rows.Close()
	if err := t.readFacts(ctx, recs, read); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	for _, id := range unknown {
		t.known[string(c)+"/"+id] = out[id] // nil: known to be missing
	}
	return out, nil
}

// Confirm reports whether the records of c are stored as read, at the
// same seq (nil: missing), in one query; when they all are, the
// transaction takes them as read, for its writes to them.
func (t *tx) Confirm(ctx context.Context, c schema.Collection, read map[string]*sync.Record) (bool, error) {
	const op = "sqlitestore.Confirm"
	raw, err := json.Marshal(slices.Collect(maps.Keys(read)))
	if err != nil {
		return false, errorf("%s: %w", op, err)
	}
	if err := t.flushInserts(ctx); err != nil {
		return false, errorf("%s: %w", op, err)
	}
	rows, err := t.stmt(ctx, t.q.seqs).QueryContext(ctx, string(c), string(raw))
	if err != nil {
		return false, errorf("%s: %w", op, err)
	}
	defer rows.Close()
	recs := make(map[string]int64, len(read))
	for rows.Next() {
		var (
			id       string
			rec, seq int64
		)
		if err := rows.Scan(&id, &rec, &seq); err != nil {
			return false, errorf("%s: %w", op, err)
		}
		if r := read[id]; r == nil || r.Seq != seq {
			return false, nil
		}
		recs[id] = rec
	}
	if err := rows.Err(); err != nil {
		return false, errorf("%s: %w", op, err)
	}
	for id, r := range read {
		if _, ok := recs[id]; r != nil && !ok {
			return false, nil
		}
	}
	for id, r := range read {
		key := string(c) + "/" + id
		t.known[key] = r
		if r != nil {
			t.recs[key] = recs[id]
		}
	}
	return true, nil
}

// RecordsByRef returns the records of c that refer to ref.
func (t *tx) RecordsByRef(ctx context.Context, c schema.Collection, ref, after string, limit int) ([]*sync.Record, error) {
	if err := t.flushInserts(ctx); err != nil {
		return nil, errorf("sqlitestore.RecordsByRef: %w", err)
	}
	out, err := t.readRecords(ctx, t.q.byRef, string(c), ref, after, limit)
	if err != nil {
		return nil, errorf("sqlitestore.RecordsByRef: %w", err)
	}
	return out, nil
}

// RepFactAfter reports whether a record other than except has a fact of
// a kind by rep later than after, through the (kind, rep, at) index.
func (t *tx) RepFactAfter(ctx context.Context, kind, rep string, after time.Time, except string) (bool, error) {
	if t.laterFact(kind, rep, after, except) {
		return true, nil
	}
	var one int
	err := t.stmt(ctx, t.q.repFactAfter).QueryRowContext(ctx, kind, rep, after.UnixNano(), except).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, errorf("sqlitestore.RepFactAfter: %w", err)
	}
	return true, nil
}

// OpenOrders returns, by order id, the totals of a customer's open orders
// as their FactOpenOrder facts say, through the (kind, customer, at)
// index: the engine counts them in the customer's credit exposure without
// reading the orders.
func (t *tx) OpenOrders(ctx context.Context, customerID string) (map[string]int64, error) {
	if err := t.flushInserts(ctx); err != nil {
		return nil, errorf("sqlitestore.OpenOrders: %w", err)
	}
	if err := t.flushFacts(ctx); err != nil {
		return nil, errorf("sqlitestore.OpenOrders: %w", err)
	}
	rows, err := t.stmt(ctx, t.q.openOrders).QueryContext(ctx, sync.FactOpenOrder, customerID)
	if err != nil {
		return nil, errorf("sqlitestore.OpenOrders: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			id     string
			amount int64
		)
		if err := rows.Scan(&id, &amount); err != nil {
			return nil, errorf("sqlitestore.OpenOrders: %w", err)
		}
		out[id] += amount
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlitestore.OpenOrders: %w", err)
	}
	return out, nil
}

// FeedSeq returns the seq of the last write the transaction sees.
func (t *tx) FeedSeq(ctx context.Context) (int64, error) {
	if t.seq != 0 {
		return t.seq, nil
	}
	var seq int64
	if err := t.stmt(ctx, t.q.feed).QueryRowContext(ctx).Scan(&seq); err != nil {
		return 0, errorf("sqlitestore.FeedSeq: %w", err)
	}
	return seq, nil
}

// writtenSinceQuery reads the records of a collection (?2) written after
// a seq (?1). Every write of a record writes its feed rows at its seq:
// their seq index finds what was written since, and the records are
// looked up by key (+coll: not by reading every record of the collection
// through the (coll, id) index).
const writtenSinceQuery = "SELECT " + recordColumns + ` FROM records r
	WHERE r.rec IN (SELECT rec FROM record_tokens WHERE seq > ?1) AND +r.coll = ?2 AND r.seq > ?1 ORDER BY r.seq`

// WrittenSince returns the records of c written after seq, with their
// facts, through the feed rows' seq index.
func (t *tx) WrittenSince(ctx context.Context, c schema.Collection, seq int64) ([]*sync.Record, error) {
	const op = "sqlitestore.WrittenSince"
	if err := t.flushInserts(ctx); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	out, err := t.readRecords(ctx, t.q.since, seq, string(c))
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	return out, nil
}

// readRecords runs a query of recordColumns and returns the records it
// finds, with their facts.
func (t *tx) readRecords(ctx context.Context, st *sql.Stmt, args ...any) ([]*sync.Record, error) {
	rows, err := t.stmt(ctx, st).QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var (
		out  []*sync.Record
		recs []int64
	)
	for rows.Next() {
		rec, r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out, recs = append(out, r), append(recs, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	if err := t.readFacts(ctx, recs, out); err != nil {
		return nil, err
	}
	return out, nil
}

// HasStop reports whether a route plan has a stop of rep at customer on
// the day at (00:00 UTC), from the stop facts, through the (kind,
// customer, at) index.
func (t *tx) HasStop(ctx context.Context, rep, customer string, at time.Time) (bool, error) {
	if t.waitingFact(sync.FactStop, func(_ string, f *sync.Fact) bool {
		return f.Customer == customer && f.At.Equal(at) && f.Rep == rep
	}) {
		return true, nil
	}
	var one int
	err := t.stmt(ctx, t.q.hasStop).QueryRowContext(ctx, sync.FactStop, customer, at.UnixNano(), rep).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, errorf("sqlitestore.HasStop: %w", err)
	}
	return true, nil
}

// Put writes a record if its stored version is prev.
func (t *tx) Put(ctx context.Context, r *sync.Record, prev int64) error {
	const op = "sqlitestore.Put"
	old, err := t.Record(ctx, r.Collection, r.ID)
	switch {
	case errors.Is(err, sync.ErrNotFound):
		old = nil
	case err != nil:
		return errorf("%s: %w", op, err)
	}
	if (old == nil && prev != 0) || (old != nil && old.Version != prev) {
		return sync.ErrStale
	}
	seq, err := t.nextSeq(ctx)
	if err != nil {
		return errorf("%s: seq: %w", op, err)
	}
	stored := *r
	stored.Seq = seq
	// The writer's name first, then the tokens'.
	names, err := t.nameIDs(ctx, append([]string{r.UpdatedBy}, r.Tokens...))
	if err != nil {
		return errorf("%s: names: %w", op, err)
	}
	coll := string(r.Collection)
	key := coll + "/" + r.ID
	if _, waiting := t.inserts.byKey[key]; waiting || old == nil {
		// A new record waits to be inserted in its final state (see
		// inserts), however often the unit writes it.
		if waiting {
			if err := t.keepAuditChanges(ctx, old); err != nil {
				return errorf("%s: %w", op, err)
			}
			if err := t.keepAnswer(ctx, old); err != nil {
				return errorf("%s: %w", op, err)
			}
		}
		if err := t.writeAudit(ctx, r, prev); err != nil {
			return errorf("%s: %w", op, err)
		}
		t.inserts.add(key, &stored, names)
		r.Seq = seq
		t.known[key] = &stored
		return nil
	}
	tokens, refs, history, err := marshalLists(&stored)
	if err != nil {
		return errorf("%s: %w", op, err)
	}
	var data any
	if r.Data != nil {
		data = string(r.Data)
	}
	args := []any{r.Version, r.Deleted, r.UpdatedAt.UnixNano(), names[0], data, seq, tokens, refs, history}
	rec := t.recs[key]
	res, err := t.stmt(ctx, t.q.update).ExecContext(ctx, append(args, rec, prev)...)
	if err := affectedOne(op, res, err, sync.ErrStale); err != nil {
		return err
	}
	if err := t.keepAuditChanges(ctx, old); err != nil {
		return errorf("%s: %w", op, err)
	}
	if err := t.keepAnswer(ctx, old); err != nil {
		return errorf("%s: %w", op, err)
	}
	for _, tok := range names[1:] {
		t.tokenRows.add(rec, tok, seq, 0)
	}
	if lost := listMinus(old.Tokens, r.Tokens); lost != nil {
		// The rows this loses may still wait in the batch.
		if err := t.tokenRows.flush(ctx, t); err != nil {
			return errorf("%s: tokens: %w", op, err)
		}
		if _, err := t.stmt(ctx, t.q.loseTokens).ExecContext(ctx, seq, rec, lost); err != nil {
			return errorf("%s: tokens: %w", op, err)
		}
	}
	if dropped := listMinus(old.Refs, r.Refs); dropped != nil {
		if _, err := t.stmt(ctx, t.q.dropRefs).ExecContext(ctx, coll, r.ID, dropped); err != nil {
			return errorf("%s: refs: %w", op, err)
		}
	}
	if added := listMinus(r.Refs, old.Refs); added != nil {
		if _, err := t.stmt(ctx, t.q.addRefs).ExecContext(ctx, coll, r.ID, added); err != nil {
			return errorf("%s: refs: %w", op, err)
		}
	}
	if !slices.Equal(old.Facts, r.Facts) {
		// The rows this drops may still wait in the batch.
		if err := t.flushFacts(ctx); err != nil {
			return errorf("%s: facts: %w", op, err)
		}
		if _, err := t.stmt(ctx, t.q.dropFacts).ExecContext(ctx, rec); err != nil {
			return errorf("%s: facts: %w", op, err)
		}
		t.facts.add(rec, r.ID, r.Facts)
	}
	if err := t.writeAudit(ctx, r, prev); err != nil {
		return errorf("%s: %w", op, err)
	}
	r.Seq = seq
	t.known[key], t.recs[key] = &stored, rec
	return nil
}

// listMinus returns, as a JSON array, the strings of a not in b; nil when
// there are none.
func listMinus(a, b []string) any {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	if out == nil {
		return nil
	}
	raw, _ := json.Marshal(out)
	return string(raw)
}

// marshalLists encodes a record's lists for their columns: tokens one a
// line (they hold no line breaks, and the feed reads them often), refs and
// history as JSON.
func marshalLists(r *sync.Record) (tokens, refs, history string, err error) {
	revs := make([]storedRevision, len(r.History))
	for i, h := range r.History {
		revs[i] = storedRevision{Version: h.Version, MutationID: h.MutationID, UserID: h.UserID, Data: h.Data}
	}
	var b [2][]byte
	for i, v := range []any{nonNil(r.Refs), leanHistory(revs, r.Data, r.UpdatedBy)} {
		if b[i], err = json.Marshal(v); err != nil {
			return "", "", "", err
		}
	}
	if r.History == nil {
		b[1] = []byte("[]")
	}
	return strings.Join(r.Tokens, "\n"), string(b[0]), string(b[1]), nil
}

// proofMeta is how a proof's EXIF facts are kept, as JSON.
type proofMeta struct {
	TakenAt *time.Time `json:"taken_at,omitempty"`
	Lat     *float64   `json:"lat,omitempty"`
	Lng     *float64   `json:"lng,omitempty"`
}

// PhotoProof returns a user's proof of holding a photo's bytes.
func (t *tx) PhotoProof(ctx context.Context, userID, sha256 string) (*sync.PhotoProof, error) {
	key := [2]string{userID, sha256}
	if p, ok := t.proofs[key]; ok {
		if p == nil {
			return nil, sync.ErrNotFound
		}
		found := *p
		return &found, nil
	}
	p, err := t.readProof(ctx, userID, sha256)
	if err != nil && !errors.Is(err, sync.ErrNotFound) {
		return nil, err
	}
	if t.proofs == nil {
		t.proofs = map[[2]string]*sync.PhotoProof{}
	}
	t.proofs[key] = p
	if p == nil {
		return nil, err
	}
	found := *p
	return &found, nil
}

// readProof reads a user's proof of holding a photo's bytes from the
// table.
func (t *tx) readProof(ctx context.Context, userID, sha256 string) (*sync.PhotoProof, error) {
	p, err := scanProof(t.stmt(ctx, t.q.proof).QueryRowContext(ctx, userID, sha256), userID, sha256)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, errorf("sqlitestore.PhotoProof: %w", err)
	}
	return p, nil
}

// scanProof reads a proof's size, meta and time columns, and its hash
// first when sha256 is "".
func scanProof(sc interface{ Scan(...any) error }, userID, sha256 string) (*sync.PhotoProof, error) {
	p := sync.PhotoProof{UserID: userID, SHA256: sha256}
	var (
		meta string
		at   int64
	)
	dest := []any{&p.Size, &meta, &at}
	if sha256 == "" {
		dest = append([]any{&p.SHA256}, dest...)
	}
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	var m proofMeta
	if err := json.Unmarshal([]byte(meta), &m); err != nil {
		return nil, err
	}
	p.TakenAt, p.Lat, p.Lng, p.At = m.TakenAt, m.Lat, m.Lng, time.Unix(0, at).UTC()
	return &p, nil
}

// PhotoProofs reads a user's proofs of holding the photos of the given
// hashes in one query, and keeps them, and which are missing, for
// PhotoProof to answer from in the rest of the transaction.
func (t *tx) PhotoProofs(ctx context.Context, userID string, hashes []string) error {
	const op = "sqlitestore.PhotoProofs"
	var unknown []string
	for _, h := range hashes {
		if _, ok := t.proofs[[2]string{userID, h}]; !ok {
			unknown = append(unknown, h)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	raw, err := json.Marshal(unknown)
	if err != nil {
		return errorf("%s: %w", op, err)
	}
	rows, err := t.stmt(ctx, t.q.proofs).QueryContext(ctx, userID, string(raw))
	if err != nil {
		return errorf("%s: %w", op, err)
	}
	defer rows.Close()
	if t.proofs == nil {
		t.proofs = map[[2]string]*sync.PhotoProof{}
	}
	for _, h := range unknown {
		t.proofs[[2]string{userID, h}] = nil // missing unless found below
	}
	for rows.Next() {
		p, err := scanProof(rows, userID, "")
		if err != nil {
			return errorf("%s: %w", op, err)
		}
		t.proofs[[2]string{userID, p.SHA256}] = p
	}
	if err := rows.Err(); err != nil {
		return errorf("%s: %w", op, err)
	}
	return nil
}

// SaveProof stores a proof of holding a photo's bytes; the first stays.
func (t *tx) SaveProof(ctx context.Context, p *sync.PhotoProof) error {
	meta, err := json.Marshal(proofMeta{TakenAt: p.TakenAt, Lat: p.Lat, Lng: p.Lng})
	if err != nil {
		return errorf("sqlitestore.SaveProof: %w", err)
	}
	if _, err := t.stmt(ctx, t.q.saveProof).ExecContext(ctx, p.UserID, p.SHA256, p.Size, string(meta), p.At.UnixNano()); err != nil {
		return errorf("sqlitestore.SaveProof: %w", err)
	}
	delete(t.proofs, [2]string{p.UserID, p.SHA256}) // the first one stays: read it again when asked
	return nil
}

// Answers returns the stored answers to a user's mutations, those this
// transaction saved included, reading the rest in one query.
func (t *tx) Answers(ctx context.Context, userID string, mutationIDs []string) (map[string]*sync.Answer, error) {
	out := map[string]*sync.Answer{}
	var unsaved []string
	for _, id := range mutationIDs {
		if a, ok := t.saved[[2]string{userID, id}]; ok {
			out[id] = a
		} else {
			unsaved = append(unsaved, id)
		}
	}
	if len(unsaved) == 0 {
		return out, nil
	}
	raw, err := json.Marshal(unsaved)
	if err != nil {
		return nil, errorf("sqlitestore.Answers: %w", err)
	}
	rows, err := t.stmt(ctx, t.q.answers).QueryContext(ctx, userID, string(raw))
	if err != nil {
		return nil, errorf("sqlitestore.Answers: %w", err)
	}
	defer rows.Close()
	var refs []answerRef
	for rows.Next() {
		var (
			id          string
			body        sql.NullString
			version, at int64
		)
		if err := rows.Scan(&id, &body, &version, &at); err != nil {
			return nil, errorf("sqlitestore.Answers: %w", err)
		}
		a := &sync.Answer{UserID: userID, MutationID: id, Body: json.RawMessage(body.String), At: time.Unix(0, at).UTC()}
		switch ref, ok := strings.CutPrefix(body.String, answerByRef); {
		case !body.Valid:
			if a.Body, err = appliedBody(id, version); err != nil {
				return nil, errorf("sqlitestore.Answers: %w", err)
			}
		case ok:
			coll, rid, _ := strings.Cut(ref, "/")
			refs = append(refs, answerRef{a: a, coll: schema.Collection(coll), id: rid, version: version})
		}
		out[id] = a
	}
	if err := rows.Err(); err != nil {
		return nil, errorf("sqlitestore.Answers: %w", err)
	}
	rows.Close()
	if err := t.resolveAnswers(ctx, refs); err != nil {
		return nil, errorf("sqlitestore.Answers: %w", err)
	}
	return out, nil
}

// answerByRef starts the body of a stored answer that is kept as a
// reference to the record it carries, "@collection/id", at the answer's
// version: a merged (or repriced) answer is the record that its mutation
// wrote, which the record row holds until it is written again, when Put
// stores the answer in full first (see keepAnswer). A body that is JSON
// never starts with it.
const answerByRef = "@"

// answerRef is a stored answer kept as a reference, being read.
type answerRef struct {
	a       *sync.Answer
	coll    schema.Collection
	id      string
	version int64
}

// resolveAnswers gives answers kept as references their bodies, from
// their records, a collection's in one read.
func (t *tx) resolveAnswers(ctx context.Context, refs []answerRef) error {
	ids := map[schema.Collection][]string{}
	for _, r := range refs {
		ids[r.coll] = append(ids[r.coll], r.id)
	}
	found := map[schema.Collection]map[string]*sync.Record{}
	for c, list := range ids {
		var err error
		if found[c], err = t.Records(ctx, c, list); err != nil {
			return err
		}
	}
	for _, r := range refs {
		rec := found[r.coll][r.id]
		if rec == nil || rec.Deleted || rec.Version != r.version {
			return errorf("answer to %s refers to %s/%s at version %d, which the store no longer holds", r.a.MutationID, r.coll, r.id, r.version)
		}
		body, err := sync.MergedAnswer(r.a.MutationID, rec)
		if err != nil {
			return err
		}
		r.a.Body = body
	}
	return nil
}

// refKey is the "collection/id" of the record an answer carries; "" for
// none.
func refKey(a *sync.Answer) string {
	if a.Record == nil {
		return ""
	}
	return string(a.Record.Collection) + "/" + a.Record.ID
}

// writtenBy reports whether r's current version was written by mutation
// mutationID of user userID, as its history says.
func writtenBy(r *sync.Record, userID, mutationID string) bool {
	n := len(r.History)
	return n > 0 && mutationID != "" && r.History[n-1].Version == r.Version &&
		r.History[n-1].MutationID == mutationID && r.History[n-1].UserID == userID
}

// keepAnswer stores in full the answer kept as a reference to old, which
// is about to be overwritten: the answer of the mutation that wrote old's
// version, if its answer is such a reference. An answer of this
// transaction still waiting is simply stored in full.
func (t *tx) keepAnswer(ctx context.Context, old *sync.Record) error {
	key := string(old.Collection) + "/" + old.ID
	if _, ok := t.byRef[key]; ok {
		delete(t.byRef, key)
		return nil
	}
	if old.Deleted || len(old.History) == 0 {
		return nil
	}
	rev := old.History[len(old.History)-1]
	if !writtenBy(old, rev.UserID, rev.MutationID) {
		return nil
	}
	if _, ok := t.saved[[2]string{rev.UserID, rev.MutationID}]; ok {
		// Given in this transaction and not kept as a reference (see
		// byRef above): it is stored in full at commit, and no row of
		// the table holds it yet.
		return nil
	}
	mark := answerByRef + key
	var one int
	err := t.stmt(ctx, t.q.answerRef).QueryRowContext(ctx, rev.UserID, rev.MutationID, mark, old.Version).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return errorf("answer: %w", err)
	}
	body, err := sync.MergedAnswer(rev.MutationID, old)
	if err != nil {
		return errorf("answer: %w", err)
	}
	_, err = t.stmt(ctx, t.q.keepAnswer).ExecContext(ctx, rev.UserID, rev.MutationID, mark, old.Version, string(body))
	if err != nil {
		return errorf("answer: %w", err)
	}
	return nil
}

// SaveAnswer stores the answer to a mutation when the transaction commits,
// in one statement with the others; the first answer stays, there as in
// the table.
func (t *tx) SaveAnswer(ctx context.Context, a *sync.Answer) error {
	key := [2]string{a.UserID, a.MutationID}
	if _, ok := t.saved[key]; ok {
		return nil
	}
	if t.saved == nil {
		t.saved = map[[2]string]*sync.Answer{}
	}
	t.saved[key] = a
	if r := a.Record; r != nil && !r.Deleted && writtenBy(r, a.UserID, a.MutationID) {
		if t.byRef == nil {
			t.byRef = map[string]int{}
		}
		t.byRef[refKey(a)] = len(t.answers)
	}
	t.answers = append(t.answers, a)
	return nil
}

// appliedBody is the answer to a mutation applied at a version, as the
// engine writes it.
func appliedBody(mutationID string, version int64) ([]byte, error) {
	return json.Marshal(schema.PushResult{MutationID: mutationID, Status: schema.PushApplied, Version: version})
}

// appliedVersion returns the version of an answer that says only that the
// mutation was applied, if body is exactly such an answer.
func appliedVersion(mutationID string, body []byte) (int64, bool) {
	// {"mutation_id":"…","status":"applied","version":…} is 48 bytes
	// besides the id, which needs no escaping, and the version, at most 19
	// digits.
	if len(body) > len(mutationID)+48+19 {
		return 0, false
	}
	var res schema.PushResult
	if json.Unmarshal(body, &res) != nil || res.Status != schema.PushApplied || res.Version == 0 {
		return 0, false
	}
	applied, err := appliedBody(mutationID, res.Version)
	if err != nil || !bytes.Equal(applied, body) {
		return 0, false
	}
	return res.Version, true
}

// flushAnswers stores the answers the transaction saved, in multi-row
// INSERTs; an answer that says only that its mutation was applied, at a
// version, is kept as that version alone (body NULL).
func (t *tx) flushAnswers(ctx context.Context) error {
	if len(t.answers) == 0 {
		return nil
	}
	rows := batch{batchShape: answerRowsShape}
	for i, a := range t.answers {
		user, err := t.nameIDs(ctx, []string{a.UserID})
		if err != nil {
			return err
		}
		if j, ok := t.byRef[refKey(a)]; ok && j == i {
			rows.add(user[0], a.MutationID, answerByRef+refKey(a), a.Record.Version, a.At.UnixNano())
			continue
		}
		body, err := a.Encoded()
		if err != nil {
			return err
		}
		if v, ok := appliedVersion(a.MutationID, body); ok {
			rows.add(user[0], a.MutationID, nil, v, a.At.UnixNano())
		} else {
			rows.add(user[0], a.MutationID, string(body), 0, a.At.UnixNano())
		}
	}
	return rows.flush(ctx, t)
}

// Watermark returns the feed counter: writes take it inside their
// transaction, so every seq at or below it is committed.
func (s *Store) Watermark(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.qr.feed.QueryRowContext(ctx).Scan(&seq); err != nil {
		return 0, errorf("sqlitestore.Watermark: %w", err)
	}
	return seq, nil
}

// Changes returns the feed through tokens between after and upto. Each
// token's part of the feed is read in seq order from the index, keys only,
// and the parts are merged here (one IN query over all tokens would sort
// every remaining entry on every page); then the records of the first
// entries are read, a few at a time, until the page is full, so that
// hardly more records than the page holds are ever loaded. The records carry no Refs
// or History.
func (s *Store) Changes(ctx context.Context, tokens []string, after, upto int64, limit, maxBytes int) ([]sync.Change, error) {
	if len(tokens) == 0 || upto <= after || limit <= 0 {
		return nil, nil
	}
	var out []sync.Change
	err := s.View(ctx, func(rtx sync.RecordTx) error {
		t := rtx.(*tx)
		entries, err := t.feedEntries(ctx, tokens, after, upto, limit)
		if err != nil {
			return err
		}
		size, next := 0, firstFeedBatch
		for len(entries) > 0 && (maxBytes <= 0 || size < maxBytes) {
			batch := entries[:min(len(entries), next)]
			entries = entries[len(batch):]
			records, err := t.feedRecords(ctx, batch)
			if err != nil {
				return err
			}
			for i, r := range records {
				if maxBytes > 0 && size >= maxBytes {
					break
				}
				out = append(out, sync.Change{Seq: batch[i].seq, Gone: batch[i].gone, Record: r})
				size += len(r.Data)
			}
			next = nextFeedBatch(len(out), size, maxBytes)
		}
		return nil
	})
	if err != nil {
		return nil, errorf("sqlitestore.Changes: %w", err)
	}
	return out, nil
}

// Changes reads records in batches: a first small one, then as many as
// the records read so far say the page still has room for, at most
// maxFeedBatch, so that small records take few queries and big ones are
// hardly read past the page.
const (
	firstFeedBatch = 4
	maxFeedBatch   = 64
)

// nextFeedBatch returns how many records to read next after n records of
// size bytes, for a page of maxBytes (no bound when 0).
func nextFeedBatch(n, size, maxBytes int) int {
	if maxBytes <= 0 || n == 0 {
		return maxFeedBatch
	}
	average := max(size/n, 1)
	return min(max((maxBytes-size)/average+1, 1), maxFeedBatch)
}

// feedRecords returns the current records of feed entries, in their order.
func (t *tx) feedRecords(ctx context.Context, entries []feedEntry) ([]*sync.Record, error) {
	keys := make([]int64, len(entries))
	for i, e := range entries {
		keys[i] = e.rec
	}
	raw, err := json.Marshal(keys)
	if err != nil {
		return nil, err
	}
	rows, err := t.stmt(ctx, t.q.feedRecords).QueryContext(ctx, string(raw))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	records := make([]*sync.Record, 0, len(entries))
	for rows.Next() {
		_, r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		records = append(records, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(records) != len(entries) {
		return nil, errorf("feed entries name %d records, %d found", len(entries), len(records))
	}
	return records, nil
}

// feedEntry is a record's place in the feed through some tokens.
type feedEntry struct {
	seq  int64
	rec  int64 // the record's integer key
	gone bool  // lost every token it was found through
}

// feedEntries returns, in seq order, the first limit entries of the feed
// through tokens between after and upto.
func (t *tx) feedEntries(ctx context.Context, tokens []string, after, upto int64, limit int) ([]feedEntry, error) {
	bySeq := map[int64]*feedEntry{}
	st := t.stmt(ctx, t.q.changes)
	for _, tok := range tokens {
		rows, err := st.QueryContext(ctx, tok, after, upto, limit)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var e feedEntry
			if err := rows.Scan(&e.seq, &e.gone, &e.rec); err != nil {
				rows.Close()
				return nil, err
			}
			if prev, ok := bySeq[e.seq]; ok {
				prev.gone = prev.gone && e.gone // held through any token: held
				continue
			}
			bySeq[e.seq] = &e
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	seqs := slices.Sorted(maps.Keys(bySeq))
	out := make([]feedEntry, min(len(seqs), limit))
	for i := range out {
		out[i] = *bySeq[seqs[i]]
	}
	return out, nil
}

// Feed returns the tokens of the writes between after and upto. Every
// token row a write touches takes its seq, so the rows at a seq are what
// that write held and lost, unless a later write touched them again.
func (s *Store) Feed(ctx context.Context, after, upto int64, limit int) ([]sync.FeedEntry, int64, error) {
	if upto <= after || limit <= 0 {
		return nil, after, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT t.seq, n.name FROM record_tokens t JOIN names n ON n.n = t.tok
		WHERE t.seq > ? AND t.seq <= ? ORDER BY t.seq, n.name`, after, upto)
	if err != nil {
		return nil, 0, errorf("sqlitestore.Feed: %w", err)
	}
	defer rows.Close()
	through := upto
	var out []sync.FeedEntry
	for rows.Next() {
		var (
			seq   int64
			token string
		)
		if err := rows.Scan(&seq, &token); err != nil {
			return nil, 0, errorf("sqlitestore.Feed: %w", err)
		}
		if n := len(out); n == 0 || out[n-1].Seq != seq {
			if n == limit {
				through = out[n-1].Seq
				break
			}
			out = append(out, sync.FeedEntry{Seq: seq})
		}
		last := &out[len(out)-1]
		last.Tokens = append(last.Tokens, token)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, errorf("sqlitestore.Feed: %w", err)
	}
	return out, through, nil
}

// sweepBatch is how many answers SweepAnswers deletes per write
// transaction.
const sweepBatch = 1000

// SweepAnswers deletes answers stored before cutoff, then gives the file's
// free pages back (see Reclaim): sweeping is the periodic job of the
// store, and the one that frees most. Answers have no index by time (it
// would cost as much as the answers): the sweep reads the table once, in
// key order, outside the write lock, and deletes what it found a batch
// per write transaction, so that pushes wait for it only briefly.
func (s *Store) SweepAnswers(ctx context.Context, cutoff time.Time) (int, error) {
	const op = "sqlitestore.SweepAnswers"
	total := 0
	after := answerKey{}
	for {
		keys, err := s.oldAnswers(ctx, cutoff, after)
		if err != nil {
			return total, errorf("%s: %w", op, err)
		}
		if len(keys) == 0 {
			break
		}
		after = keys[len(keys)-1]
		pairs := make([][2]any, len(keys))
		for i, k := range keys {
			pairs[i] = [2]any{k.user, k.mutation}
		}
		raw, err := json.Marshal(pairs)
		if err != nil {
			return total, errorf("%s: %w", op, err)
		}
		res, err := s.w.ExecContext(ctx, `DELETE FROM answers WHERE at < ?1 AND (user_id, mutation_id) IN
			(SELECT value ->> 0, value ->> 1 FROM json_each(?2))`, cutoff.UnixNano(), string(raw))
		if err != nil {
			return total, errorf("%s: %w", op, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, errorf("%s: %w", op, err)
		}
		total += int(n)
	}
	if _, err := s.Reclaim(ctx); err != nil {
		return total, errorf("%s: %w", op, err)
	}
	return total, nil
}

// answerKey is a stored answer's key: its user's name (see names) and
// its mutation id.
type answerKey struct {
	user     int64
	mutation string
}

// oldAnswers returns the keys of up to sweepBatch answers stored before
// cutoff, after key after in key order.
func (s *Store) oldAnswers(ctx context.Context, cutoff time.Time, after answerKey) ([]answerKey, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT user_id, mutation_id FROM answers
		WHERE (user_id, mutation_id) > (?, ?) AND at < ? ORDER BY user_id, mutation_id LIMIT ?`,
		after.user, after.mutation, cutoff.UnixNano(), sweepBatch)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []answerKey
	for rows.Next() {
		var k answerKey
		if err := rows.Scan(&k.user, &k.mutation); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// reclaimBatch is how many free pages (4 KiB each) one write transaction
// of Reclaim gives back, so that writers wait for it only briefly.
const reclaimBatch = 1024

// Reclaim gives the file's free pages back to the file system: deletes,
// swept answers and trimmed histories leave pages free inside the file,
// which SQLite reuses but never returns on its own. The store is in
// auto_vacuum=INCREMENTAL mode, so this moves pages from the end of the
// file into the free ones and truncates it, a batch per transaction. The
// file shrinks once the write-ahead log is checkpointed. It returns how
// many pages it freed.
func (s *Store) Reclaim(ctx context.Context) (int64, error) {
	const op = "sqlitestore.Reclaim"
	var total int64
	for {
		var free int64
		if err := s.w.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
			return total, errorf("%s: %w", op, err)
		}
		if free == 0 {
			return total, nil
		}
		n := min(free, reclaimBatch)
		if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", n)); err != nil {
			return total, errorf("%s: %w", op, err)
		}
		var left int64
		if err := s.w.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&left); err != nil {
			return total, errorf("%s: %w", op, err)
		}
		if left >= free {
			return total, nil // not in incremental mode
		}
		total += free - left
	}
}

// queries are the statements the store runs most, prepared once per
// database handle. Their limits are bound as "? + 0": SQLite plans a bare
// "LIMIT ?" with the bound value, and so prepares the statement again each
// time it is bound (most of the time of a lookup by ref went to that).
type queries struct {
	record, records, seqs, byRef, lastRec *sql.Stmt
	update                                *sql.Stmt
	loseTokens, addRefs, dropRefs         *sql.Stmt
	answers, feed, setFeed, changes       *sql.Stmt
	feedRecords, recordFacts              *sql.Stmt
	dropFacts, repFactAfter, since        *sql.Stmt
	openOrders, answerRef, keepAnswer     *sql.Stmt
	hasStop                               *sql.Stmt
	proof, saveProof, audit, loginUser    *sql.Stmt
	proofs                                *sql.Stmt
	nameID, addName, keepAudit            *sql.Stmt
	// built holds the statements whose text is built (a multi-row INSERT
	// for each size of batchSizes, the savepoints), by text, prepared
	// once: SQLite would otherwise parse them on every use.
	built map[string]*sql.Stmt
}

// builtQueries are the texts of queries.built.
func builtQueries() []string {
	out := []string{"SAVEPOINT unit", "ROLLBACK TO unit", "RELEASE unit"}
	for _, sh := range []batchShape{tokenRowsShape, auditRowsShape, answerRowsShape, factRowsShape, recordRowsShape, refRowsShape} {
		for _, n := range batchSizes {
			out = append(out, sh.query(n))
		}
	}
	return out
}

// exec runs a statement of queries.built in the transaction (any other
// text is parsed where it runs).
func (t *tx) exec(ctx context.Context, query string, args ...any) error {
	var err error
	if st, ok := t.q.built[query]; ok {
		_, err = t.stmt(ctx, st).ExecContext(ctx, args...)
	} else {
		_, err = t.t.ExecContext(ctx, query, args...)
	}
	return err
}

func prepare(ctx context.Context, db *sql.DB) (*queries, error) {
	q := &queries{built: map[string]*sql.Stmt{}}
	for _, query := range builtQueries() {
		st, err := db.PrepareContext(ctx, query)
		if err != nil {
			return nil, errorf("prepare %q: %w", query, err)
		}
		q.built[query] = st
	}
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&q.record, "SELECT " + recordColumns + " FROM records r WHERE r.coll = ? AND r.id = ?"},
		{&q.records, "SELECT " + recordColumns + " FROM records r WHERE r.coll = ?1 AND r.id IN (SELECT value FROM json_each(?2))"},
		{&q.seqs, "SELECT id, rec, seq FROM records WHERE coll = ?1 AND id IN (SELECT value FROM json_each(?2))"},
		{&q.byRef, `SELECT ` + recordColumns + ` FROM record_refs f JOIN records r ON r.coll = f.coll AND r.id = f.id
			WHERE f.coll = ? AND f.ref = ? AND f.id > ? ORDER BY f.id LIMIT ? + 0`},
		{&q.lastRec, "SELECT coalesce(max(rec), 0) FROM records"},
		{&q.update, `UPDATE records SET version = ?, deleted = ?, updated_at = ?, updated_by = ?, data = ?, seq = ?,
			tokens = ?, refs = ?, history = ? WHERE rec = ? AND version = ?`},
		{&q.recordFacts, "SELECT rec, " + factColumns + " FROM facts WHERE rec IN (SELECT value FROM json_each(?)) ORDER BY rec, n"},
		{&q.dropFacts, "DELETE FROM facts WHERE rec = ?"},
		{&q.repFactAfter, `SELECT 1 FROM facts f WHERE f.kind = ? AND f.rep = ? AND f.at > ?
			AND NOT EXISTS (SELECT 1 FROM records r WHERE r.rec = f.rec AND r.id = ?) LIMIT 1`},
		{&q.openOrders, `SELECT r.id, f.amount FROM facts f JOIN records r ON r.rec = f.rec
			WHERE f.kind = ? AND f.customer = ? AND r.coll = 'orders'`},
		{&q.since, writtenSinceQuery},
		{&q.hasStop, "SELECT 1 FROM facts INDEXED BY facts_by_customer WHERE kind = ? AND customer = ? AND at = ? AND rep = ? LIMIT 1"},
		{&q.loseTokens, `UPDATE record_tokens SET seq = ?1, gone = 1
			WHERE rec = ?2 AND gone = 0 AND tok IN (SELECT n FROM names WHERE name IN (SELECT value FROM json_each(?3)))`},
		{&q.nameID, "SELECT n FROM names WHERE name = ?"},
		{&q.keepAudit, `UPDATE audit SET changes = ?1 WHERE coll = ?2 AND rid = ?3 AND version = ?4 AND key IS NULL
			AND changes = '` + auditSameAsData + `'`},
		{&q.addName, "INSERT INTO names (name) VALUES (?) RETURNING n"},
		{&q.addRefs, "INSERT OR IGNORE INTO record_refs (coll, ref, id) SELECT ?1, value, ?2 FROM json_each(?3)"},
		{&q.dropRefs, "DELETE FROM record_refs WHERE coll = ?1 AND id = ?2 AND ref IN (SELECT value FROM json_each(?3))"},
		{&q.answers, `SELECT mutation_id, body, version, at FROM answers
			WHERE user_id = (SELECT n FROM names WHERE name = ?1) AND mutation_id IN (SELECT value FROM json_each(?2))`},
		{&q.answerRef, `SELECT 1 FROM answers WHERE user_id = (SELECT n FROM names WHERE name = ?1) AND mutation_id = ?2
			AND body = ?3 AND version = ?4`},
		{&q.keepAnswer, `UPDATE answers SET body = ?5 WHERE user_id = (SELECT n FROM names WHERE name = ?1) AND mutation_id = ?2
			AND body = ?3 AND version = ?4`},
		{&q.proof, "SELECT size, meta, at FROM photo_proofs WHERE user_id = ? AND sha256 = ?"},
		{&q.proofs, "SELECT sha256, size, meta, at FROM photo_proofs WHERE user_id = ? AND sha256 IN (SELECT value FROM json_each(?))"},
		{&q.saveProof, "INSERT OR IGNORE INTO photo_proofs (user_id, sha256, size, meta, at) VALUES (?, ?, ?, ?, ?)"},
		{&q.feed, "SELECT seq FROM feed WHERE one = 1"},
		{&q.changes, `SELECT t.seq, t.gone, t.rec FROM record_tokens t
			WHERE t.tok = (SELECT n FROM names WHERE name = ?) AND t.seq > ? AND t.seq <= ? ORDER BY t.seq LIMIT ? + 0`},
		{&q.feedRecords, `SELECT ` + feedColumns + ` FROM json_each(?) k
			JOIN records r ON r.rec = k.value ORDER BY k.key`},
		{&q.setFeed, "UPDATE feed SET seq = ? WHERE one = 1"},
		{&q.loginUser, loginUserQuery},
		{&q.audit, `INSERT INTO audit (key, at, user_id, device_id, action, coll, rid, version, changes, territories)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return nil, errorf("prepare %q: %w", p.query, err)
		}
		*p.dst = st
	}
	return q, nil
}
