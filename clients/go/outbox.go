package fieldsync

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/schema"
)

// mutation is one outbox row: the mutation as it is pushed, its place in
// the outbox and the photo bytes it waits for.
type mutation struct {
	schema.Mutation
	seq  int64
	hold string
}

// The outbox keeps at most one unsent row per record: a change to a record
// whose last row has not been sent yet is folded into that row (its base
// stays the version the first change was made on). A row once sent is
// frozen, so a retry sends exactly what the server may already have
// answered; changes made meanwhile queue behind it, and when it is applied
// they are rebased onto the version it produced. Rows are pushed in the
// order they were made, and a push carries at most one row per record.

// queue records a local change of a record in the outbox. hold, when not
// empty, is the SHA-256 of photo bytes the row waits for. It returns the
// holds the change released (a photo queued and deleted before upload).
func queue(ctx context.Context, tx *wtx, now string, coll schema.Collection, id string, op schema.MutationOp, data json.RawMessage, hold string) (released []string, err error) {
	rows, err := recordRows(ctx, tx, coll, id)
	if err != nil {
		return nil, err
	}
	if n := len(rows); n > 0 && !rows[n-1].sent {
		last := rows[n-1]
		if op == schema.MutationDelete && n == 1 && last.base == 0 {
			// A record created here and never sent: forget it.
			if _, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq = ?`, last.seq); err != nil {
				return nil, err
			}
			return releaseHolds(ctx, tx, last.hold)
		}
		if hold == "" {
			hold = last.hold
		}
		_, err := tx.ExecContext(ctx, `UPDATE outbox SET op = ?, data = ?, hold = ? WHERE seq = ?`, op, nullable(data), hold, last.seq)
		if err != nil {
			return nil, err
		}
		if hold != last.hold {
			return releaseHolds(ctx, tx, last.hold)
		}
		return nil, nil
	}
	version, exists, err := knownVersion(ctx, tx, coll, id)
	if err != nil {
		return nil, err
	}
	if op == schema.MutationDelete && len(rows) == 0 && !exists {
		return nil, ErrNotFound
	}
	if !exists {
		version = 0 // create, or create again after a delete
	}
	return nil, insertMutation(ctx, tx, now, coll, id, op, version, data, hold)
}

func insertMutation(ctx context.Context, tx *wtx, now string, coll schema.Collection, id string, op schema.MutationOp, base int64, data json.RawMessage, hold string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (mutation_id, collection, id, op, base_version, data, hold, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, uuid.NewString(), coll, id, op, base, nullable(data), hold, now)
	return err
}

// outboxRow is what queue needs to know of a record's outbox rows.
type outboxRow struct {
	seq, base int64
	sent      bool
	hold      string
}

func recordRows(ctx context.Context, tx *wtx, coll schema.Collection, id string) ([]outboxRow, error) {
	return collect(ctx, tx, func(rs *sql.Rows, r *outboxRow) error {
		return rs.Scan(&r.seq, &r.base, &r.sent, &r.hold)
	}, `SELECT seq, base_version, sent, hold FROM outbox WHERE collection = ? AND id = ? ORDER BY seq`, coll, id)
}

// mutationColumns are the columns scanMutation reads, in order.
const mutationColumns = `seq, mutation_id, collection, id, op, base_version, data, hold`

// scanMutation reads an outbox row selected by mutationColumns.
func scanMutation(rs *sql.Rows, m *mutation) error { return scanMutationAnd(rs, m) }

// scanMutationAnd is scanMutation with further columns read into more.
func scanMutationAnd(rs *sql.Rows, m *mutation, more ...any) error {
	var data []byte
	err := rs.Scan(append([]any{&m.seq, &m.MutationID, &m.Collection, &m.ID, &m.Op, &m.BaseVersion, &data, &m.hold}, more...)...)
	m.Data = data
	return err
}

// knownVersion returns the version of a record the device last saw, and
// whether the record exists (is known and not deleted).
func knownVersion(ctx context.Context, tx *wtx, coll schema.Collection, id string) (version int64, exists bool, err error) {
	var deleted bool
	err = tx.QueryRowContext(ctx, `SELECT version, deleted FROM records WHERE collection = ? AND id = ?`, coll, id).Scan(&version, &deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	return version, err == nil && !deleted, err
}

// releaseHolds drops the photo queue entries of holds that no outbox row
// waits for any more and returns them, so that their files can go.
func releaseHolds(ctx context.Context, tx *wtx, holds ...string) ([]string, error) {
	var released []string
	for _, h := range holds {
		if h == "" {
			continue
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM photo_queue WHERE sha256 = ?
			AND NOT EXISTS (SELECT 1 FROM outbox WHERE hold = ?)`, h, h)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			if err := dropUpload(ctx, tx, h); err != nil {
				return nil, err
			}
			released = append(released, h)
		}
	}
	return released, nil
}

// nextBatch returns up to size rows ready to push, in order, and marks
// them sent. Rows waiting for photo bytes are passed over, and so are the
// later rows of their records; the batch ends before a second row of a
// record, whose base depends on the answer to the first. Only rows with seq
// at most maxSeq are taken.
func (s *store) nextBatch(ctx context.Context, maxSeq int64, size int) ([]mutation, error) {
	var batch []mutation
	err := s.write(ctx, func(tx *wtx) error {
		rs, err := tx.QueryContext(ctx, `SELECT `+mutationColumns+`, waits FROM outbox
			LEFT JOIN (SELECT sha256, 1 AS waits FROM photo_queue) ON sha256 = hold
			WHERE seq <= ? ORDER BY seq`, maxSeq)
		if err != nil {
			return err
		}
		defer rs.Close()
		type key struct {
			coll schema.Collection
			id   string
		}
		taken, held := map[key]bool{}, map[key]bool{}
		for len(batch) < size && rs.Next() {
			var m mutation
			var waits sql.NullBool
			if err := scanMutationAnd(rs, &m, &waits); err != nil {
				return err
			}
			k := key{m.Collection, m.ID}
			if taken[k] {
				break
			}
			if waits.Bool || held[k] {
				held[k] = true
				continue
			}
			taken[k] = true
			batch = append(batch, m)
		}
		if err := rs.Err(); err != nil {
			return err
		}
		rs.Close()
		for _, m := range batch {
			if _, err := tx.ExecContext(ctx, `UPDATE outbox SET sent = 1 WHERE seq = ?`, m.seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("local store: outbox: %w", err)
	}
	return batch, nil
}

// lastSeq is the newest outbox row's seq, 0 when the outbox is empty.
func (s *store) lastSeq(ctx context.Context) (int64, error) {
	var seq sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT MAX(seq) FROM outbox`).Scan(&seq)
	return seq.Int64, err
}

// dropMutation removes an answered row from the outbox.
func dropMutation(ctx context.Context, tx *wtx, m *mutation) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE seq = ?`, m.seq)
	return err
}

// landed removes a row whose write landed as rec and rebases the record's
// later (unsent) rows onto it: they name rec's version, or 0 to create the
// record again after a delete. When the server merged the write with
// changes of others, a later upsert keeps only the fields it changed itself
// on top of the merged record, so as not to undo what the others did.
func landed(ctx context.Context, tx *wtx, m *mutation, rec *schema.Envelope, merged bool) error {
	if err := dropMutation(ctx, tx, m); err != nil {
		return err
	}
	base := rec.Version
	if rec.Deleted {
		base = 0
	}
	later, err := collect(ctx, tx, scanMutation,
		`SELECT `+mutationColumns+` FROM outbox WHERE collection = ? AND id = ? AND sent = 0`, m.Collection, m.ID)
	if err != nil {
		return err
	}
	for _, l := range later {
		if merged && l.Op == schema.MutationUpsert && m.Op == schema.MutationUpsert {
			if l.Data, err = rebaseFields(m.Data, l.Data, rec.Data); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET base_version = ?, data = ? WHERE seq = ?`, base, nullable(l.Data), l.seq); err != nil {
			return err
		}
	}
	return nil
}

// rebaseFields returns onto with the top-level fields that changed from
// before to after (the way the server compares records).
func rebaseFields(before, after, onto json.RawMessage) (json.RawMessage, error) {
	var b, a, o map[string]json.RawMessage
	for _, x := range []struct {
		raw json.RawMessage
		m   *map[string]json.RawMessage
	}{{before, &b}, {after, &a}, {onto, &o}} {
		if err := json.Unmarshal(x.raw, x.m); err != nil {
			return nil, fmt.Errorf("rebase: %w", err)
		}
	}
	if o == nil {
		o = map[string]json.RawMessage{}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			delete(o, k)
		}
	}
	for k, v := range a {
		if !sameJSON(b[k], v) {
			o[k] = v
		}
	}
	return json.Marshal(o)
}

func sameJSON(x, y json.RawMessage) bool {
	var cx, cy bytes.Buffer
	if json.Compact(&cx, x) != nil || json.Compact(&cy, y) != nil {
		return bytes.Equal(x, y)
	}
	return bytes.Equal(cx.Bytes(), cy.Bytes())
}

func nullable(data json.RawMessage) any {
	if data == nil {
		return nil
	}
	return []byte(data)
}
