package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// querier is what reads need of a *sql.Tx or *sql.DB.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// tx is a unit of work on the store: a write transaction from Update, a
// read transaction from View.
type tx struct{ q querier }

// Update runs fn in one write transaction, which holds SQLite's write lock
// from its start, so that seqs are taken and committed in the same order.
func (s *Store) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	return runTx(ctx, s.w, nil, fn)
}

// View runs fn in one read transaction: a consistent snapshot.
func (s *Store) View(ctx context.Context, fn func(sync.RecordTx) error) error {
	return runTx(ctx, s.r, &sql.TxOptions{ReadOnly: true}, fn)
}

func runTx(ctx context.Context, db *sql.DB, opts *sql.TxOptions, fn func(sync.RecordTx) error) error {
	t, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("sqlitestore: begin: %w", err)
	}
	if err := fn(&tx{q: t}); err != nil {
		t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}

const recordColumns = "r.coll, r.id, r.version, r.deleted, r.updated_at, r.updated_by, r.data, r.seq, r.tokens, r.refs, r.history"

// scanRecord reads recordColumns, after any columns in extra.
func scanRecord(sc interface{ Scan(...any) error }, extra ...any) (*sync.Record, error) {
	var (
		r                     sync.Record
		coll                  string
		updated               int64
		data                  sql.NullString
		tokens, refs, history string
	)
	dest := append(extra, &coll, &r.ID, &r.Version, &r.Deleted, &updated, &r.UpdatedBy, &data, &r.Seq, &tokens, &refs, &history)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	r.Collection = schema.Collection(coll)
	r.UpdatedAt = time.Unix(0, updated).UTC()
	if data.Valid {
		r.Data = json.RawMessage(data.String)
	}
	for _, f := range []struct {
		raw string
		dst any
	}{{tokens, &r.Tokens}, {refs, &r.Refs}, {history, &r.History}} {
		if err := json.Unmarshal([]byte(f.raw), f.dst); err != nil {
			return nil, fmt.Errorf("record %s/%s: %w", coll, r.ID, err)
		}
	}
	return &r, nil
}

// Record returns the current state of a record.
func (t *tx) Record(ctx context.Context, c schema.Collection, id string) (*sync.Record, error) {
	r, err := scanRecord(t.q.QueryRowContext(ctx, "SELECT "+recordColumns+" FROM records r WHERE r.coll = ? AND r.id = ?", string(c), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore.Record: %w", err)
	}
	return r, nil
}

// RecordsByRef returns the records of c that refer to ref.
func (t *tx) RecordsByRef(ctx context.Context, c schema.Collection, ref, after string, limit int) ([]*sync.Record, error) {
	rows, err := t.q.QueryContext(ctx, `SELECT `+recordColumns+` FROM record_refs f
		JOIN records r ON r.coll = f.coll AND r.id = f.id
		WHERE f.coll = ? AND f.ref = ? AND f.id > ? ORDER BY f.id LIMIT ?`, string(c), ref, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore.RecordsByRef: %w", err)
	}
	defer rows.Close()
	var out []*sync.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore.RecordsByRef: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Put writes a record if its stored version is prev.
func (t *tx) Put(ctx context.Context, r *sync.Record, prev int64) error {
	const op = "sqlitestore.Put"
	var (
		version            int64
		oldTokens, oldRefs []string
		tokensRaw, refsRaw string
	)
	err := t.q.QueryRowContext(ctx, "SELECT version, tokens, refs FROM records WHERE coll = ? AND id = ?",
		string(r.Collection), r.ID).Scan(&version, &tokensRaw, &refsRaw)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		version = 0
	case err != nil:
		return fmt.Errorf("%s: %w", op, err)
	default:
		if err := errors.Join(json.Unmarshal([]byte(tokensRaw), &oldTokens), json.Unmarshal([]byte(refsRaw), &oldRefs)); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	if version != prev {
		return sync.ErrStale
	}
	if err := t.q.QueryRowContext(ctx, "UPDATE feed SET seq = seq + 1 RETURNING seq").Scan(&r.Seq); err != nil {
		return fmt.Errorf("%s: seq: %w", op, err)
	}
	tokens, refs, history, err := marshalLists(r)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var data any
	if r.Data != nil {
		data = string(r.Data)
	}
	_, err = t.q.ExecContext(ctx, `INSERT INTO records (coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (coll, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted,
			updated_at = excluded.updated_at, updated_by = excluded.updated_by, data = excluded.data,
			seq = excluded.seq, tokens = excluded.tokens, refs = excluded.refs, history = excluded.history`,
		string(r.Collection), r.ID, r.Version, r.Deleted, r.UpdatedAt.UnixNano(), r.UpdatedBy, data, r.Seq, tokens, refs, history)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, tok := range r.Tokens {
		if _, err := t.q.ExecContext(ctx, `INSERT INTO record_tokens (coll, id, token, seq, gone) VALUES (?, ?, ?, ?, 0)
			ON CONFLICT (coll, id, token) DO UPDATE SET seq = excluded.seq, gone = 0`,
			string(r.Collection), r.ID, tok, r.Seq); err != nil {
			return fmt.Errorf("%s: tokens: %w", op, err)
		}
	}
	for _, tok := range oldTokens {
		if slices.Contains(r.Tokens, tok) {
			continue
		}
		if _, err := t.q.ExecContext(ctx, "UPDATE record_tokens SET seq = ?, gone = 1 WHERE coll = ? AND id = ? AND token = ?",
			r.Seq, string(r.Collection), r.ID, tok); err != nil {
			return fmt.Errorf("%s: tokens: %w", op, err)
		}
	}
	for _, ref := range oldRefs {
		if !slices.Contains(r.Refs, ref) {
			if _, err := t.q.ExecContext(ctx, "DELETE FROM record_refs WHERE coll = ? AND ref = ? AND id = ?", string(r.Collection), ref, r.ID); err != nil {
				return fmt.Errorf("%s: refs: %w", op, err)
			}
		}
	}
	for _, ref := range r.Refs {
		if !slices.Contains(oldRefs, ref) {
			if _, err := t.q.ExecContext(ctx, "INSERT OR IGNORE INTO record_refs (coll, ref, id) VALUES (?, ?, ?)", string(r.Collection), ref, r.ID); err != nil {
				return fmt.Errorf("%s: refs: %w", op, err)
			}
		}
	}
	return nil
}

func marshalLists(r *sync.Record) (tokens, refs, history string, err error) {
	var b [3][]byte
	for i, v := range []any{nonNil(r.Tokens), nonNil(r.Refs), r.History} {
		if b[i], err = json.Marshal(v); err != nil {
			return "", "", "", err
		}
	}
	if r.History == nil {
		b[2] = []byte("[]")
	}
	return string(b[0]), string(b[1]), string(b[2]), nil
}

// Answer returns the stored answer to a mutation.
func (t *tx) Answer(ctx context.Context, userID, mutationID string) (*sync.Answer, error) {
	a := sync.Answer{UserID: userID, MutationID: mutationID}
	var (
		body string
		at   int64
	)
	err := t.q.QueryRowContext(ctx, "SELECT body, at FROM answers WHERE user_id = ? AND mutation_id = ?", userID, mutationID).Scan(&body, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore.Answer: %w", err)
	}
	a.Body, a.At = json.RawMessage(body), time.Unix(0, at).UTC()
	return &a, nil
}

// SaveAnswer stores the answer to a mutation; the first one stays.
func (t *tx) SaveAnswer(ctx context.Context, a *sync.Answer) error {
	_, err := t.q.ExecContext(ctx, "INSERT OR IGNORE INTO answers (user_id, mutation_id, body, at) VALUES (?, ?, ?, ?)",
		a.UserID, a.MutationID, string(a.Body), a.At.UnixNano())
	if err != nil {
		return fmt.Errorf("sqlitestore.SaveAnswer: %w", err)
	}
	return nil
}

// Watermark returns the feed counter: writes take it inside their
// transaction, so every seq at or below it is committed.
func (s *Store) Watermark(ctx context.Context) (int64, error) {
	var seq int64
	if err := s.r.QueryRowContext(ctx, "SELECT seq FROM feed WHERE one = 1").Scan(&seq); err != nil {
		return 0, fmt.Errorf("sqlitestore.Watermark: %w", err)
	}
	return seq, nil
}

// Changes returns the feed through tokens between after and upto.
func (s *Store) Changes(ctx context.Context, tokens []string, after, upto int64, limit int) ([]sync.Change, error) {
	if len(tokens) == 0 || upto <= after || limit <= 0 {
		return nil, nil
	}
	args := make([]any, 0, len(tokens)+3)
	for _, tok := range tokens {
		args = append(args, tok)
	}
	args = append(args, after, upto, limit)
	rows, err := s.r.QueryContext(ctx, `SELECT t.seq, MIN(t.gone), `+recordColumns+` FROM record_tokens t
		JOIN records r ON r.coll = t.coll AND r.id = t.id
		WHERE t.token IN (?`+strings.Repeat(", ?", len(tokens)-1)+`) AND t.seq > ? AND t.seq <= ?
		GROUP BY t.seq ORDER BY t.seq LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore.Changes: %w", err)
	}
	defer rows.Close()
	var out []sync.Change
	for rows.Next() {
		var ch sync.Change
		ch.Record, err = scanRecord(rows, &ch.Seq, &ch.Gone)
		if err != nil {
			return nil, fmt.Errorf("sqlitestore.Changes: %w", err)
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

// SweepAnswers deletes answers stored before cutoff.
func (s *Store) SweepAnswers(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.w.ExecContext(ctx, "DELETE FROM answers WHERE at < ?", cutoff.UnixNano())
	if err != nil {
		return 0, fmt.Errorf("sqlitestore.SweepAnswers: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
