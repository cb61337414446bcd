package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	gosync "sync"
)

// namesLayout is the layout step after the lean one:
//
//   - read tokens are kept once, in the names dictionary, and the feed's
//     rows and both its indexes refer to them by their small integer,
//     where each repeated the token's text (twenty to fifty bytes);
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
	DROP INDEX facts_by_territory;
	-- Covering what the coverage count reads, for a territory's or a region's report.
	CREATE INDEX facts_by_territory ON facts(kind, territory, at, rep, customer, day, visit, flag);
	UPDATE audit SET changes = '` + auditSameAsData + `'
	WHERE key IS NULL AND changes = '[{},' || (SELECT r.data FROM records r
		WHERE r.coll = audit.coll AND r.id = audit.rid AND r.version = audit.version AND NOT r.deleted) || ']';`

// migrateNames moves a store from the lean layout to namesLayout.
func migrateNames(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, namesLayout)
	return err
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
