// Package sqlitestore is the embedded record store: SQLite in WAL mode,
// pure Go (modernc.org/sqlite), in one file that several fieldsync
// processes may share.
package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	// The pure-Go SQLite driver, registered as "sqlite".
	_ "modernc.org/sqlite"
)

// Store is the SQLite record store. It is safe for concurrent use, and
// several processes may open the same file.
type Store struct {
	// w runs write transactions, which take the write lock when they
	// begin; r runs reads, each transaction a consistent snapshot.
	w, r *sql.DB
	// qw and qr are the prepared statements of w and r.
	qw, qr *queries
	// group gathers the write transactions' units of work.
	group committer
	// names caches the dictionary of names (see namesLayout).
	names nameCache
}

// readers is how many read connections a store keeps.
const readers = 8

// Open opens (creating if needed) the database file at path and brings its
// tables and indexes up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	const op = "sqlitestore.Open"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	dsn := func(txlock string, pragmas ...string) string {
		q := url.Values{}
		q.Add("_pragma", "busy_timeout(10000)")
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "foreign_keys(ON)")
		for _, p := range pragmas {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	// The writer keeps its temporary files in memory: a write transaction
	// that runs several units of work keeps, for each, the pages it changes
	// as they were (the savepoint's journal), a few hundred KB at most,
	// which SQLite would otherwise spill to a file with a system call a page.
	//
	// Its page cache is 16 MB instead of SQLite's 2 MB: the writer's cache
	// stays valid from one transaction to the next as long as no other
	// connection writes (in one process, none does), and a push touches
	// pages all over the records' and facts' indexes, which a small cache
	// reads from the file again and again.
	w, err := sql.Open("sqlite", dsn("immediate", "temp_store(MEMORY)", "cache_size(-16384)"))
	if err != nil {
		return nil, errorf("%s: %w", op, err)
	}
	// One writer per process: SQLite allows one at a time anyway, and a
	// single connection queues them here instead of in busy-wait loops.
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, errorf("%s: %w", op, err)
	}
	// The readers stay open between uses: a connection opened anew parses
	// the schema and prepares every statement again (database/sql keeps
	// only 2 idle connections unless told).
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	s := &Store{w: w, r: r}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, errorf("%s: %w", op, err)
	}
	if s.qw, err = prepare(ctx, w); err != nil {
		s.Close()
		return nil, errorf("%s: %w", op, err)
	}
	if s.qr, err = prepare(ctx, r); err != nil {
		s.Close()
		return nil, errorf("%s: %w", op, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return errorf("sqlitestore.Ping: %w", err)
	}
	return nil
}

// migrations bring an older database to the newest layout; entry i moves
// PRAGMA user_version from i to i+1.
var migrations = []string{
	`CREATE TABLE users (
		id TEXT PRIMARY KEY,
		username TEXT NOT NULL UNIQUE,
		password_hash TEXT NOT NULL,
		role TEXT NOT NULL,
		territories TEXT NOT NULL,
		distributor_id TEXT NOT NULL DEFAULT '',
		active INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);
	CREATE TABLE logins (
		id TEXT PRIMARY KEY,
		user_id TEXT NOT NULL REFERENCES users(id),
		device_id TEXT NOT NULL,
		generation INTEGER NOT NULL,
		created_at INTEGER NOT NULL,
		revoked_at INTEGER NOT NULL DEFAULT 0
	);
	CREATE INDEX logins_user ON logins(user_id);
	CREATE TABLE login_failures (
		username TEXT PRIMARY KEY,
		count INTEGER NOT NULL,
		window_end INTEGER NOT NULL
	);`,
	`CREATE TABLE records (
		coll TEXT NOT NULL,
		id TEXT NOT NULL,
		version INTEGER NOT NULL,
		deleted INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		updated_by TEXT NOT NULL,
		data TEXT,
		seq INTEGER NOT NULL,
		tokens TEXT NOT NULL,
		refs TEXT NOT NULL,
		history TEXT NOT NULL,
		PRIMARY KEY (coll, id)
	) WITHOUT ROWID;
	CREATE INDEX records_seq ON records(seq);
	-- The change feed: one row per record and read token it has (gone = 0)
	-- or has lost (gone = 1), at the seq of the write that last touched it.
	CREATE TABLE record_tokens (
		coll TEXT NOT NULL,
		id TEXT NOT NULL,
		token TEXT NOT NULL,
		seq INTEGER NOT NULL,
		gone INTEGER NOT NULL,
		PRIMARY KEY (coll, id, token)
	) WITHOUT ROWID;
	CREATE INDEX record_tokens_feed ON record_tokens(token, seq, gone);
	CREATE TABLE record_refs (
		coll TEXT NOT NULL,
		ref TEXT NOT NULL,
		id TEXT NOT NULL,
		PRIMARY KEY (coll, ref, id)
	) WITHOUT ROWID;
	CREATE TABLE answers (
		user_id TEXT NOT NULL,
		mutation_id TEXT NOT NULL,
		body TEXT NOT NULL,
		at INTEGER NOT NULL,
		PRIMARY KEY (user_id, mutation_id)
	) WITHOUT ROWID;
	CREATE INDEX answers_at ON answers(at);
	-- The feed counter, bumped inside each write transaction: SQLite runs
	-- one write transaction at a time, so seqs commit in order.
	CREATE TABLE feed (
		one INTEGER PRIMARY KEY CHECK (one = 1),
		seq INTEGER NOT NULL
	);
	INSERT INTO feed (one, seq) VALUES (1, 0);`,
	`CREATE TABLE facts (
		coll TEXT NOT NULL,
		id TEXT NOT NULL,
		n INTEGER NOT NULL,
		kind TEXT NOT NULL,
		rep TEXT NOT NULL,
		customer TEXT NOT NULL,
		territory TEXT NOT NULL,
		visit TEXT NOT NULL,
		label TEXT NOT NULL,
		grade TEXT NOT NULL,
		day TEXT NOT NULL,
		at INTEGER NOT NULL,
		flag INTEGER NOT NULL,
		PRIMARY KEY (coll, id, n)
	) WITHOUT ROWID;
	ALTER TABLE records ADD COLUMN facts TEXT NOT NULL DEFAULT 'null';
	CREATE INDEX facts_by_territory ON facts(kind, territory, at);
	CREATE INDEX facts_by_customer ON facts(kind, customer, at);
	-- Covering what the coverage count reads, so that it never looks up rows.
	CREATE INDEX facts_by_time ON facts(kind, at, territory, rep, customer, day, visit, flag);
	CREATE TABLE device_syncs (
		user_id TEXT NOT NULL,
		device_id TEXT NOT NULL,
		last_push INTEGER NOT NULL DEFAULT 0,
		last_pull INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (user_id, device_id)
	) WITHOUT ROWID;`,
	`CREATE INDEX facts_by_rep ON facts(kind, rep, at);
	CREATE TABLE photo_proofs (
		user_id TEXT NOT NULL,
		sha256 TEXT NOT NULL,
		size INTEGER NOT NULL,
		meta TEXT NOT NULL,
		at INTEGER NOT NULL,
		PRIMARY KEY (user_id, sha256)
	) WITHOUT ROWID;`,
	// The live watcher reads every token a write touched, by seq.
	`CREATE INDEX record_tokens_seq ON record_tokens(seq);`,
	`ALTER TABLE facts ADD COLUMN amount INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE facts ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE facts ADD COLUMN count INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE facts ADD COLUMN status TEXT NOT NULL DEFAULT '';`,
	`CREATE TABLE audit (
		key TEXT PRIMARY KEY,
		at INTEGER NOT NULL,
		user_id TEXT NOT NULL,
		device_id TEXT NOT NULL,
		action TEXT NOT NULL,
		coll TEXT NOT NULL,
		rid TEXT NOT NULL,
		version INTEGER NOT NULL,
		changes TEXT NOT NULL,
		territories TEXT NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX audit_by_time ON audit(at, key);
	CREATE INDEX audit_by_record ON audit(coll, rid, at);
	CREATE INDEX audit_by_user ON audit(user_id, at);`,
}

// steps are the migrations in order: the SQL of migrations, then the lean
// layout, which rewrites rows and so is Go, then the names layout, then
// answers by reference. Step i moves PRAGMA user_version from i to i+1.
func steps() []func(context.Context, *sql.Tx) error {
	out := make([]func(context.Context, *sql.Tx) error, 0, len(migrations)+1)
	for _, m := range migrations {
		out = append(out, func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, m)
			return err
		})
	}
	return append(out, migrateLean, migrateNames, migrateAnswerRefs)
}

// migrateAnswerRefs moves a store to layout 10, where a stored answer's
// body may be a reference to the record it carries (see answerByRef)
// rather than JSON. No row changes: the answers stored before are read as
// they were. The layout's number changes so that a build that does not
// know such references refuses the file rather than replay one.
func migrateAnswerRefs(context.Context, *sql.Tx) error { return nil }

// migrate brings the database to the newest layout. A new file gets
// auto_vacuum=INCREMENTAL before its first table, so that the pages that
// deletes free can be given back (see Reclaim), which migrate does after
// a migration; a file made before that is rebuilt once by VACUUM after it
// moves to the lean layout.
func (s *Store) migrate(ctx context.Context) error {
	all := steps()
	from, err := s.migrateTo(ctx, len(all))
	if err != nil {
		return err
	}
	var mode int
	if err := s.w.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return err
	}
	if from == len(all) {
		return nil
	}
	if mode == autoVacuumIncremental {
		// The tables a migration rebuilt left their pages free.
		_, err := s.Reclaim(ctx)
		return err
	}
	// auto_vacuum changes on an existing file only through VACUUM, which
	// also drops the free pages the migration left.
	if _, err := s.w.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, "VACUUM"); err != nil {
		return errorf("vacuum after migration: %w", err)
	}
	return nil
}

// autoVacuumIncremental is PRAGMA auto_vacuum's value for INCREMENTAL.
const autoVacuumIncremental = 2

// Layout is the layout version (PRAGMA user_version) of the stores this
// build creates and brings older ones to.
func Layout() int { return len(steps()) }

// migrateTo runs the steps that bring the database from its layout to
// layout version, in one transaction, and returns the layout it found.
func (s *Store) migrateTo(ctx context.Context, version int) (int, error) {
	all := steps()
	var found, tables int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&found); err != nil {
		return 0, err
	}
	if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return 0, err
	}
	if tables == 0 {
		// Only an empty file takes the setting without a VACUUM.
		if _, err := s.w.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
			return 0, err
		}
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&found); err != nil {
		return 0, err
	}
	if found > len(all) {
		return 0, errorf("database layout %d is newer than this build knows (%d)", found, len(all))
	}
	if found >= version {
		return found, nil
	}
	for i := found; i < version; i++ {
		if err := all[i](ctx, tx); err != nil {
			return 0, errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		return 0, err
	}
	return found, tx.Commit()
}

// Snapshot writes a consistent copy of the database to path, which must
// not exist, while the store keeps serving reads and writes: SQLite's
// VACUUM INTO reads one snapshot in a read transaction, so the copy holds
// every transaction committed before it began and none after. It returns
// the feed seq of that copy: every change up to it is in the copy.
func (s *Store) Snapshot(ctx context.Context, path string) (int64, error) {
	const op = "sqlitestore.Snapshot"
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return 0, errorf("%s: %w", op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return 0, errorf("%s: %w", op, err)
	}
	copied, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, errorf("%s: %w", op, err)
	}
	defer copied.Close()
	var seq int64
	if err := copied.QueryRowContext(ctx, "SELECT seq FROM feed WHERE one = 1").Scan(&seq); err != nil {
		return 0, errorf("%s: %w", op, err)
	}
	return seq, nil
}

// AdvanceFeed moves the feed counter n seqs ahead without writing
// anything: the next write takes a seq above every seq the feed had
// handed out before, which a restored store needs (see backup.Restore).
func (s *Store) AdvanceFeed(ctx context.Context, n int64) error {
	if _, err := s.w.ExecContext(ctx, "UPDATE feed SET seq = seq + ? WHERE one = 1", n); err != nil {
		return errorf("sqlitestore.AdvanceFeed: %w", err)
	}
	return nil
}
