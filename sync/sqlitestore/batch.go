package sqlitestore

import (
	"context"
	"strings"
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
)

// query returns the INSERT of n rows.
func (sh batchShape) query(n int) string {
	row := "(?" + strings.Repeat(", ?", sh.cols-1) + ")"
	return sh.head + " VALUES " + row + strings.Repeat(", "+row, n-1) + " " + sh.tail
}

// batch holds rows a write transaction stores in multi-row INSERTs when
// it commits rather than one statement a row: a push of 500 records pays
// for 5 statements instead of 500. Only rows that nothing reads back
// inside the transaction wait there: feed rows (read by the feed, after
// commit) and audit entries (read by the audit trail; the one statement
// that changes them, keepAuditChanges, looks at the waiting ones first).
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
	return &batch{batchShape: tokenRowsShape}, &batch{batchShape: auditRowsShape}
}
