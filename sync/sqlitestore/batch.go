package sqlitestore

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/sync"
)

// batchSizes are the numbers of rows of the INSERTs that store a batch,
// largest first: a flush takes the largest that fits the rows left, again
// and again, so that a few statements, prepared once, serve any number of
// rows.
var batchSizes = [...]int{100, 64, 32, 16, 8, 4, 2, 1}

// batchShape is the INSERT a batch's rows go in with: head up to VALUES,
// tail after the rows, cols values a row.
type batchShape struct {
	head, tail string
	cols       int
}

// The batches of a write transaction.
var (
	tokenRowsShape = batchShape{
		head: "INSERT INTO record_tokens (rec, tok, seq, gone)", cols: 4,
		tail: "ON CONFLICT (rec, tok) DO UPDATE SET seq = excluded.seq, gone = 0",
	}
	auditRowsShape = batchShape{
		head: "INSERT INTO audit (key, at, user_id, device_id, action, coll, rid, version, changes, territories)", cols: 10,
		tail: "ON CONFLICT DO NOTHING",
	}
	answerRowsShape = batchShape{head: "INSERT OR IGNORE INTO answers (user_id, mutation_id, body, version, at)", cols: 5}
	recordRowsShape = batchShape{
		head: "INSERT INTO records (rec, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history, coll, id)",
		cols: 12,
	}
	refRowsShape  = batchShape{head: "INSERT OR IGNORE INTO record_refs (coll, ref, id)", cols: 3}
	factRowsShape = batchShape{
		head: "INSERT INTO facts (rec, n, kind, rep, customer, territory, visit, label, grade, day, at, flag, amount, balance, count, status)",
		cols: 16,
	}
)

// query returns the INSERT of n rows.
func (sh batchShape) query(n int) string {
	row := "(?" + strings.Repeat(", ?", sh.cols-1) + ")"
	return sh.head + " VALUES " + row + strings.Repeat(", "+row, n-1) + " " + sh.tail
}

// batch holds rows a write transaction stores in multi-row INSERTs when
// it commits rather than one statement a row: a push of 500 records pays
// for 5 statements instead of 500. Only rows that nothing reads back
// inside the transaction, or whose readers look at the waiting rows
// first, wait there: feed rows (read by the feed, after commit), audit
// entries (read by the audit trail; the one statement that changes them,
// keepAuditChanges, looks at the waiting ones first) and facts (see
// factRows).
type batch struct {
	batchShape
	args []any
}

func (b *batch) add(row ...any) { b.args = append(b.args, row...) }

// len returns how many rows wait.
func (b *batch) len() int { return len(b.args) / b.cols }

// truncate forgets the rows after the first n.
func (b *batch) truncate(n int) { b.args = b.args[:n*b.cols] }

// flush stores the waiting rows in the transaction.
func (b *batch) flush(ctx context.Context, t *tx) error {
	for len(b.args) > 0 {
		left := b.len()
		n := batchSizes[len(batchSizes)-1]
		for _, size := range batchSizes {
			if size <= left {
				n = size
				break
			}
		}
		if err := t.exec(ctx, b.query(n), b.args[:n*b.cols]...); err != nil {
			return err
		}
		b.args = b.args[n*b.cols:]
	}
	b.args = nil
	return nil
}

// flushBatches stores the rows waiting in the transaction's batches.
func (t *tx) flushBatches(ctx context.Context) error {
	if err := t.flushInserts(ctx); err != nil {
		return err
	}
	if err := t.flushFacts(ctx); err != nil {
		return err
	}
	for _, b := range []*batch{t.tokenRows, t.auditRows} {
		if err := b.flush(ctx, t); err != nil {
			return errorf("%s: %w", b.head, err)
		}
	}
	clear(t.sameAsData)
	return nil
}

// newBatches returns the batches of a write transaction.
func newBatches() (tokens, audit, facts *batch) {
	return &batch{batchShape: tokenRowsShape}, &batch{batchShape: auditRowsShape}, &batch{batchShape: factRowsShape}
}

// factRows holds the facts of the records a write transaction wrote that
// wait to be stored, a row each in batch, and beside them the facts
// themselves with their record's id. The facts of a push's visits and
// orders are read back in the same transaction (a visit asks for its rep's
// later visits, an order for its customer's open orders), so every reader
// of facts either answers from the waiting rows and the table together
// (RepFactAfter, HasStop) or stores the waiting rows first (flushFacts).
type factRows struct {
	rows  *batch
	facts []waitingFact
}

// waitingFact is a fact in factRows, with the id of its record.
type waitingFact struct {
	id string
	f  sync.Fact
}

// add makes a record's facts wait.
func (w *factRows) add(rec int64, id string, facts []sync.Fact) {
	for n, f := range facts {
		w.rows.add(rec, n, f.Kind, f.Rep, f.Customer, f.Territory, f.Visit, f.Label, f.Grade, f.Day,
			f.At.UnixNano(), f.Flag, f.Amount, f.Balance, f.Count, f.Status)
		w.facts = append(w.facts, waitingFact{id: id, f: f})
	}
}

// any reports whether a waiting fact satisfies match.
func (w *factRows) any(match func(id string, f *sync.Fact) bool) bool {
	for i := range w.facts {
		if match(w.facts[i].id, &w.facts[i].f) {
			return true
		}
	}
	return false
}

// forget drops the waiting facts without storing them.
func (w *factRows) forget() {
	w.rows.truncate(0)
	w.facts = nil
}

// flushFacts stores the waiting facts.
func (t *tx) flushFacts(ctx context.Context) error {
	if err := t.facts.rows.flush(ctx, t); err != nil {
		return errorf("%s: %w", t.facts.rows.head, err)
	}
	t.facts.facts = nil
	return nil
}

// inserts holds the records a unit of work created, each in the state it
// last wrote, and inserts them when the unit ends or something is about to
// read the tables they go in with a query: a record created and written
// again in the same unit (a visit, then its check_out_missing mark when
// the next check-in of its rep comes in the same push) is stored once, in
// its final state, with its feed rows, refs and facts. Until then the
// unit finds it among the records it knows (Record, Records), and its
// facts through waitingFact and laterFact.
type inserts struct {
	byKey map[string]*insert
	order []string
	// byKind lists, by fact kind, the keys of the records that had a
	// fact of that kind when they were added (some may have changed
	// since); latest holds the two latest facts of each kind and rep.
	byKind map[string][]string
	latest map[[2]string][2]latestFact
}

// insert is a record waiting in inserts, with the names of its writer
// and its tokens (see Put).
type insert struct {
	r     *sync.Record
	names []int64
}

// latestFact is a fact in inserts.latest: when, and of which record.
// stale (on the first of two) says that one of them changed since it was
// added, so that they no longer tell which is the latest.
type latestFact struct {
	at    time.Time
	key   string
	stale bool
}

// add makes r wait to be inserted, in place of what waited under key.
func (w *inserts) add(key string, r *sync.Record, names []int64) {
	if w.byKey == nil {
		w.byKey, w.byKind, w.latest = map[string]*insert{}, map[string][]string{}, map[[2]string][2]latestFact{}
	}
	if _, ok := w.byKey[key]; !ok {
		w.order = append(w.order, key)
	} else {
		// A latest fact of the record's earlier state that it no longer
		// has makes the latest of its kind and rep tell nothing.
		for k, l := range w.latest {
			for _, e := range l {
				if e.key == key && !slices.ContainsFunc(r.Facts, func(f sync.Fact) bool {
					return f.Kind == k[0] && f.Rep == k[1] && f.At.Equal(e.at)
				}) {
					l[0].stale = true
					w.latest[k] = l
				}
			}
		}
	}
	w.byKey[key] = &insert{r: r, names: names}
	for _, f := range r.Facts {
		if kinds := w.byKind[f.Kind]; len(kinds) == 0 || kinds[len(kinds)-1] != key {
			w.byKind[f.Kind] = append(kinds, key)
		}
		if f.Rep == "" {
			continue
		}
		k, at := [2]string{f.Kind, f.Rep}, latestFact{at: f.At, key: key}
		l := w.latest[k]
		switch {
		case l[0].key == key && l[0].at.Equal(f.At), l[1].key == key && l[1].at.Equal(f.At):
		case l[0].key == key || l[1].key == key:
			// A record with two such facts: the latest no longer tell.
			l[0].stale = true
		case l[0].key == "" || f.At.After(l[0].at):
			l[0], l[1] = at, l[0]
			l[0].stale = l[1].stale
		case l[1].key == "" || f.At.After(l[1].at):
			l[1] = at
		}
		w.latest[k] = l
	}
}

// forget drops the waiting records without inserting them.
func (w *inserts) forget() {
	clear(w.byKey)
	clear(w.byKind)
	clear(w.latest)
	w.order = w.order[:0]
}

// has reports whether the waiting record under key has a fact of a kind
// that satisfies match.
func (w *inserts) has(key, kind string, match func(id string, f *sync.Fact) bool) bool {
	in := w.byKey[key]
	if in == nil {
		return false
	}
	for i := range in.r.Facts {
		if f := &in.r.Facts[i]; f.Kind == kind && match(in.r.ID, f) {
			return true
		}
	}
	return false
}

// waitingFact reports whether a fact of a kind of a record written in the
// transaction and not stored yet satisfies match.
func (t *tx) waitingFact(kind string, match func(id string, f *sync.Fact) bool) bool {
	if t.facts.any(func(id string, f *sync.Fact) bool { return f.Kind == kind && match(id, f) }) {
		return true
	}
	for _, key := range t.inserts.byKind[kind] {
		if t.inserts.has(key, kind, match) {
			return true
		}
	}
	return false
}

// laterFact is waitingFact for a fact of kind by rep later than after,
// of a record other than except: the question every visit of a push asks
// about its rep's visits, answered from the two latest of the waiting
// records' facts where they tell.
func (t *tx) laterFact(kind, rep string, after time.Time, except string) bool {
	match := func(id string, f *sync.Fact) bool { return f.Rep == rep && f.At.After(after) && id != except }
	if t.facts.any(func(id string, f *sync.Fact) bool { return f.Kind == kind && match(id, f) }) {
		return true
	}
	l := t.inserts.latest[[2]string{kind, rep}]
	if l[0].stale {
		return t.waitingFact(kind, match)
	}
	for _, e := range l {
		if e.key == "" || !e.at.After(after) {
			return false // every other is no later than this one
		}
		if t.inserts.byKey[e.key].r.ID != except {
			return true
		}
	}
	return t.waitingFact(kind, match)
}

// flushInserts inserts the records waiting in t.inserts, in the order
// they were created, with their refs, in multi-row INSERTs; their feed
// rows and facts join the batches of those. A record's key (rec) is
// given here, after the largest in the table: the transaction holds the
// write lock, so no other writer takes it meanwhile.
func (t *tx) flushInserts(ctx context.Context) error {
	const op = "sqlitestore.Put"
	if len(t.inserts.order) == 0 {
		return nil
	}
	var last int64
	if err := t.stmt(ctx, t.q.lastRec).QueryRowContext(ctx).Scan(&last); err != nil {
		return errorf("%s: %w", op, err)
	}
	records, refs := &batch{batchShape: recordRowsShape}, &batch{batchShape: refRowsShape}
	for i, key := range t.inserts.order {
		in := t.inserts.byKey[key]
		r, rec := in.r, last+1+int64(i)
		tokens, refList, history, err := marshalLists(r)
		if err != nil {
			return errorf("%s: %w", op, err)
		}
		var data any
		if r.Data != nil {
			data = string(r.Data)
		}
		coll := string(r.Collection)
		records.add(rec, r.Version, r.Deleted, r.UpdatedAt.UnixNano(), in.names[0], data, r.Seq, tokens, refList, history, coll, r.ID)
		for _, tok := range in.names[1:] {
			t.tokenRows.add(rec, tok, r.Seq, 0)
		}
		for _, ref := range r.Refs {
			refs.add(coll, ref, r.ID)
		}
		if len(r.Facts) > 0 {
			t.facts.add(rec, r.ID, r.Facts)
		}
		t.recs[key] = rec
	}
	if err := records.flush(ctx, t); err != nil {
		return errorf("%s: %w", op, err)
	}
	if err := refs.flush(ctx, t); err != nil {
		return errorf("%s: refs: %w", op, err)
	}
	t.inserts.forget()
	return nil
}
