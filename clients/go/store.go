package fieldsync

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	gosync "sync"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver of the local store

	"github.com/fieldsync/fieldsync/schema"
)

// The local store's tables:
//
//   - records: the server's state of every record the device has seen,
//     as last pulled or answered, with version and deleted flag;
//   - outbox: the device's own changes not yet answered, in order; a row
//     once sent is frozen (it is resent exactly as it was);
//   - photo_queue: photo bytes in the photo folder waiting for upload;
//     outbox rows whose hold names one wait for it;
//   - photo_uploads: the server's address of a queued photo's resumable
//     upload, so that an upload cut off goes on from the server's offset
//     even after the app restarts;
//   - conflicts and rejections: what the server refused, for the app;
//   - meta: the checkpoint and the store's owner.
const storeSchema = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
	collection TEXT NOT NULL,
	id         TEXT NOT NULL,
	version    INTEGER NOT NULL,
	deleted    INTEGER NOT NULL,
	updated_at TEXT NOT NULL,
	updated_by TEXT NOT NULL,
	data       BLOB,
	PRIMARY KEY (collection, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	mutation_id  TEXT NOT NULL UNIQUE,
	collection   TEXT NOT NULL,
	id           TEXT NOT NULL,
	op           TEXT NOT NULL,
	base_version INTEGER NOT NULL,
	data         BLOB,
	sent         INTEGER NOT NULL DEFAULT 0,
	hold         TEXT NOT NULL DEFAULT '',
	created_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_record ON outbox (collection, id, seq);
CREATE TABLE IF NOT EXISTS photo_queue (
	sha256       TEXT PRIMARY KEY,
	content_type TEXT NOT NULL,
	size         INTEGER NOT NULL,
	created_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS photo_uploads (
	sha256 TEXT PRIMARY KEY,
	path   TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conflicts (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	mutation_id TEXT NOT NULL,
	collection  TEXT NOT NULL,
	id          TEXT NOT NULL,
	op          TEXT NOT NULL,
	local       BLOB,
	server      BLOB NOT NULL,
	requeued    INTEGER NOT NULL,
	at          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejections (
	seq         INTEGER PRIMARY KEY AUTOINCREMENT,
	mutation_id TEXT NOT NULL,
	collection  TEXT NOT NULL,
	id          TEXT NOT NULL,
	op          TEXT NOT NULL,
	data        BLOB,
	error       BLOB NOT NULL,
	at          TEXT NOT NULL
);
`

// store is the local SQLite store: one connection writes, a few read.
type store struct {
	w, r *sql.DB
	now  func() time.Time

	// stmts holds the write transactions' queries prepared on w, by
	// text; wanted the queries run unprepared since the last
	// transaction, to prepare once it ends (see wtx).
	mu     gosync.Mutex
	stmts  map[string]*sql.Stmt
	wanted map[string]bool
}

func openStore(ctx context.Context, path string, now func() time.Time) (*store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	dsn := func(txlock string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
	if err != nil {
		return nil, fmt.Errorf("local store: %w", err)
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("local store: %w", err)
	}
	r.SetMaxOpenConns(4)
	s := &store{w: w, r: r, now: now}
	if _, err := w.ExecContext(ctx, storeSchema); err != nil {
		s.close()
		return nil, fmt.Errorf("local store: %w", err)
	}
	return s, nil
}

func (s *store) close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return errors.Join(s.r.Close(), s.w.Close())
}

// write runs fn in one write transaction.
func (s *store) write(ctx context.Context, fn func(tx *wtx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("local store: %w", err)
	}
	err = fn(&wtx{Tx: tx, s: s})
	if err != nil {
		tx.Rollback()
	} else if err = tx.Commit(); err != nil {
		err = fmt.Errorf("local store: %w", err)
	}
	s.prepareWanted(ctx)
	return err
}

// wtx is a write transaction of the local store. Its queries run as
// statements prepared once on the writer's connection, which SQLite
// would otherwise parse anew on every use (a fifth of a syncing client's
// CPU). A query seen for the first time runs as it is and is prepared
// when the transaction has ended: the writer has one connection, which
// the transaction holds until then.
type wtx struct {
	*sql.Tx
	s *store
}

// stmt returns the transaction's form of the prepared statement of query,
// nil when it is not prepared yet.
func (t *wtx) stmt(ctx context.Context, query string) *sql.Stmt {
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if st, ok := t.s.stmts[query]; ok {
		return t.Tx.StmtContext(ctx, st)
	}
	if t.s.wanted == nil {
		t.s.wanted = map[string]bool{}
	}
	t.s.wanted[query] = true
	return nil
}

func (t *wtx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.Tx.ExecContext(ctx, query, args...)
}

func (t *wtx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.Tx.QueryContext(ctx, query, args...)
}

func (t *wtx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.Tx.QueryRowContext(ctx, query, args...)
}

// prepareWanted prepares the queries write transactions ran unprepared.
// One that fails to prepare runs unprepared again next time.
func (s *store) prepareWanted(ctx context.Context) {
	s.mu.Lock()
	wanted := s.wanted
	s.wanted = nil
	s.mu.Unlock()
	for query := range wanted {
		st, err := s.w.PrepareContext(ctx, query)
		if err != nil {
			continue
		}
		s.mu.Lock()
		if s.stmts == nil {
			s.stmts = map[string]*sql.Stmt{}
		}
		if _, ok := s.stmts[query]; ok {
			st.Close()
		} else {
			s.stmts[query] = st
		}
		s.mu.Unlock()
	}
}

// stamp is the store's text form of the current time.
func (s *store) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

func parseStamp(v string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, v)
	return t
}

// claim makes owner the store's owner, or fails with ErrOtherOwner when
// the store already has another.
func (s *store) claim(ctx context.Context, owner string) error {
	return s.write(ctx, func(tx *wtx) error {
		var have string
		err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'owner'`).Scan(&have)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('owner', ?)`, owner)
			return err
		case err != nil:
			return err
		case have != owner:
			return ErrOtherOwner
		}
		return nil
	})
}

func (s *store) checkpoint(ctx context.Context) (string, error) {
	var cp string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'checkpoint'`).Scan(&cp)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return cp, err
}

func setCheckpoint(ctx context.Context, tx *wtx, cp string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('checkpoint', ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, cp)
	return err
}

// putRecord stores the server's state of a record unless the store already
// has a later version: envelopes may come twice or out of order. The same
// version again replaces the stored one only with replaceSame: an envelope
// does (it carries the server-owned fields the device could not know), the
// answer to an upsert that changed nothing does not.
func putRecord(ctx context.Context, tx *wtx, r *schema.Envelope, replaceSame bool) error {
	var data []byte
	if !r.Deleted && !isNull(r.Data) {
		data = r.Data
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO records (collection, id, version, deleted, updated_at, updated_by, data)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (collection, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted,
			updated_at = excluded.updated_at, updated_by = excluded.updated_by, data = excluded.data
		WHERE excluded.version > records.version OR (? AND excluded.version = records.version)`,
		r.Collection, r.ID, r.Version, r.Deleted, formatTime(r.UpdatedAt), r.UpdatedBy, data, replaceSame)
	return err
}

// querier is a *sql.DB or a *wtx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// collect runs a query and scans every row into a slice.
func collect[T any](ctx context.Context, q querier, scan func(rs *sql.Rows, v *T) error, query string, args ...any) ([]T, error) {
	rs, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var list []T
	for rs.Next() {
		var v T
		if err := scan(rs, &v); err != nil {
			return nil, err
		}
		list = append(list, v)
	}
	return list, rs.Err()
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func isNull(data json.RawMessage) bool {
	return len(data) == 0 || string(data) == "null"
}
