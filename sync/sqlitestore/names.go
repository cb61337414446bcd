package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	gosync "sync"
)

// namesLayout is the layout step after the lean one:
//
//   - read tokens and user ids are kept once, in the names dictionary,
//     and the feed's rows and both its indexes, records (updated_by),
//     stored answers and audit entries (user_id) refer to them by their
//     small integer, where each repeated the text (twenty to fifty
//     bytes; a record's history still names its users);
//   - the audit entry of a record's creation whose changes are exactly
//     the record's data keeps the mark auditSameAsData instead of a copy
//     of that data, until the record is written again (see Put);
//   - the facts index led by territory covers what the coverage count
//     reads, so that one territory's report reads that territory's rows
//     only, instead of every territory's month through facts_by_time.
const namesLayout = `
	CREATE TABLE names (
		n INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE
	);
	INSERT INTO names (name) SELECT DISTINCT token FROM record_tokens ORDER BY token;
	CREATE TABLE record_tokens_names (
		rec INTEGER NOT NULL,
		tok INTEGER NOT NULL,
		seq INTEGER NOT NULL,
		gone INTEGER NOT NULL,
		PRIMARY KEY (rec, tok)
	) WITHOUT ROWID;
	INSERT INTO record_tokens_names (rec, tok, seq, gone)
		SELECT t.rec, n.n, t.seq, t.gone FROM record_tokens t JOIN names n ON n.name = t.token;
	DROP TABLE record_tokens;
	ALTER TABLE record_tokens_names RENAME TO record_tokens;
	CREATE INDEX record_tokens_feed ON record_tokens(tok, seq, gone);
	CREATE INDEX record_tokens_seq ON record_tokens(seq);
	INSERT OR IGNORE INTO names (name)
		SELECT updated_by FROM records UNION SELECT user_id FROM answers UNION SELECT user_id FROM audit;
	CREATE TABLE records_names (
		rec INTEGER PRIMARY KEY,
		coll TEXT NOT NULL,
		id TEXT NOT NULL,
		version INTEGER NOT NULL,
		deleted INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		updated_by INTEGER NOT NULL, -- names.n
		data TEXT,
		seq INTEGER NOT NULL,
		tokens TEXT NOT NULL,
		refs TEXT NOT NULL,
		history TEXT NOT NULL,
		UNIQUE (coll, id)
	);
	INSERT INTO records_names (rec, coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history)
		SELECT r.rec, r.coll, r.id, r.version, r.deleted, r.updated_at, n.n, r.data, r.seq, r.tokens, r.refs, r.history
		FROM records r JOIN names n ON n.name = r.updated_by ORDER BY r.rec;
	DROP TABLE records;
	ALTER TABLE records_names RENAME TO records;`

// namesLayoutRest is the rest of namesLayout, after the audit entries of
// creations are marked (see markCreations), so that the copy of the
// audit table packs their shorter rows.
const namesLayoutRest = `
	CREATE TABLE answers_names (
		user_id INTEGER NOT NULL, -- names.n
		mutation_id TEXT NOT NULL,
		body TEXT,
		version INTEGER NOT NULL DEFAULT 0,
		at INTEGER NOT NULL,
		PRIMARY KEY (user_id, mutation_id)
	) WITHOUT ROWID;
	INSERT INTO answers_names (user_id, mutation_id, body, version, at)
		SELECT n.n, a.mutation_id, a.body, a.version, a.at FROM answers a JOIN names n ON n.name = a.user_id;
	DROP TABLE answers;
	ALTER TABLE answers_names RENAME TO answers;
	CREATE TABLE audit_names (
		n INTEGER PRIMARY KEY,
		key TEXT,
		at INTEGER NOT NULL,
		user_id INTEGER NOT NULL, -- names.n
		device_id TEXT NOT NULL,
		action TEXT NOT NULL,
		coll TEXT NOT NULL,
		rid TEXT NOT NULL,
		version INTEGER NOT NULL,
		changes TEXT NOT NULL,
		territories TEXT NOT NULL
	);
	INSERT INTO audit_names (n, key, at, user_id, device_id, action, coll, rid, version, changes, territories)
		SELECT a.n, a.key, a.at, u.n, a.device_id, a.action, a.coll, a.rid, a.version, a.changes, a.territories
		FROM audit a JOIN names u ON u.name = a.user_id ORDER BY a.n;
	DROP TABLE audit;
	ALTER TABLE audit_names RENAME TO audit;
	-- An entry is one per key: a record's write has none of its own (NULL)
	-- and is one per collection, id and version.
	CREATE UNIQUE INDEX audit_by_record ON audit(coll, rid, version, coalesce(key, ''));
	CREATE INDEX audit_by_time ON audit(at);
	CREATE INDEX audit_by_user ON audit(user_id, at);
	DROP INDEX facts_by_territory;
	-- Covering what the coverage count reads, for a territory's or a region's report.
	CREATE INDEX facts_by_territory ON facts(kind, territory, at, rep, customer, day, visit, flag);`

// migrateNames moves a store from the lean layout to namesLayout.
func migrateNames(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, namesLayout); err != nil {
		return err
	}
	if err := markCreations(ctx, tx); err != nil {
		return errorf("audit: %w", err)
	}
	_, err := tx.ExecContext(ctx, namesLayoutRest)
	return err
}

// markCreations marks auditSameAsData the entries of records' creations
// whose changes are the data their record still holds.
func markCreations(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT a.n, a.changes, r.data FROM audit a
		JOIN records r ON r.coll = a.coll AND r.id = a.rid AND r.version = a.version AND NOT r.deleted
		WHERE a.key IS NULL AND a.changes LIKE '[{},%'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var marked []int64
	for rows.Next() {
		var (
			n             int64
			changes, data string
		)
		if err := rows.Scan(&n, &changes, &data); err != nil {
			return err
		}
		expanded, err := expandChanges(changes)
		if err != nil {
			return errorf("entry %d: %w", n, err)
		}
		if createdAs(expanded, []byte(data)) {
			marked = append(marked, n)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for len(marked) > 0 {
		chunk := marked[:min(len(marked), 10_000)]
		marked = marked[len(chunk):]
		raw, err := json.Marshal(chunk)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE audit SET changes = ? WHERE n IN (SELECT value FROM json_each(?))",
			auditSameAsData, string(raw)); err != nil {
			return err
		}
	}
	return nil
}

// nameCache holds the integers of names (see namesLayout) that committed
// transactions wrote or read: a name's integer never changes once
// committed, in this process or another sharing the file, so it may be
// kept as long as the store is open. Its zero value is ready to use.
type nameCache struct {
	mu gosync.RWMutex
	n  map[string]int64
}

func (c *nameCache) get(name string) (int64, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	n, ok := c.n[name]
	return n, ok
}

// add keeps the names a transaction used, once it committed.
func (c *nameCache) add(names map[string]int64) {
	if len(names) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[string]int64, len(names))
	}
	for name, n := range names {
		c.n[name] = n
	}
}

// nameIDs returns the integers of names, adding those the dictionary
// lacks. What it finds outside the cache it keeps in the transaction
// until commit (see commit), since the rows it added may yet be undone.
func (t *tx) nameIDs(ctx context.Context, names []string) ([]int64, error) {
	out := make([]int64, len(names))
	for i, name := range names {
		if n, ok := t.names.get(name); ok {
			out[i] = n
			continue
		}
		if n, ok := t.newNames[name]; ok {
			out[i] = n
			continue
		}
		var n int64
		err := t.stmt(ctx, t.q.nameID).QueryRowContext(ctx, name).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			err = t.stmt(ctx, t.q.addName).QueryRowContext(ctx, name).Scan(&n)
		}
		if err != nil {
			return nil, errorf("name %q: %w", name, err)
		}
		if t.newNames == nil {
			t.newNames = map[string]int64{}
		}
		t.newNames[name], out[i] = n, n
	}
	return out, nil
}
