package sqlitestore

import (
	"context"
	"strings"
)

// batchRows is the most rows one multi-row INSERT of a batch carries.
const batchRows = 100

// batch holds rows a write transaction stores in multi-row INSERTs when
// it commits rather than one statement a row: a push of 500 records pays
// for 5 statements instead of 500. Only rows that nothing reads back
// inside the transaction wait there: feed rows (read by the feed, after
// commit) and audit entries (read by the audit trail; the one statement
// that changes them, keepAuditChanges, looks at the waiting ones first).
type batch struct {
	// head is the INSERT up to VALUES, tail what follows the rows.
	head, tail string
	cols       int
	args       []any
}

func (b *batch) add(row ...any) { b.args = append(b.args, row...) }

// len returns how many rows wait.
func (b *batch) len() int { return len(b.args) / b.cols }

// truncate forgets the rows after the first n.
func (b *batch) truncate(n int) { b.args = b.args[:n*b.cols] }

// flush stores the waiting rows in the transaction, batchRows at a time.
func (b *batch) flush(ctx context.Context, t *tx) error {
	row := "(?" + strings.Repeat(", ?", b.cols-1) + ")"
	for len(b.args) > 0 {
		n := min(b.len(), batchRows)
		query := b.head + " VALUES " + row + strings.Repeat(", "+row, n-1) + " " + b.tail
		if _, err := t.t.ExecContext(ctx, query, b.args[:n*b.cols]...); err != nil {
			return err
		}
		b.args = b.args[n*b.cols:]
	}
	b.args = nil
	return nil
}

// flushBatches stores the rows waiting in the transaction's batches.
func (t *tx) flushBatches(ctx context.Context) error {
	for _, b := range []*batch{t.tokenRows, t.auditRows} {
		if err := b.flush(ctx, t); err != nil {
			return errorf("%s: %w", b.head, err)
		}
	}
	clear(t.sameAsData)
	return nil
}

// newBatches returns the batches of a write transaction.
func newBatches() (tokens, audit *batch) {
	return &batch{
			head: "INSERT INTO record_tokens (rec, tok, seq, gone)", cols: 4,
			tail: "ON CONFLICT (rec, tok) DO UPDATE SET seq = excluded.seq, gone = 0",
		}, &batch{
			head: "INSERT INTO audit (key, at, user_id, device_id, action, coll, rid, version, changes, territories)", cols: 10,
			tail: "ON CONFLICT DO NOTHING",
		}
}
