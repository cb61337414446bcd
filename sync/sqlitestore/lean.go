package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
)

// leanLayout is the layout the lean migration moves to, and that every
// new store starts from after the first migrations.
//
// records is a rowid table: SQLite keeps a rowid row of up to about 4 KB on
// its own b-tree page, where a WITHOUT ROWID row spills whatever passes
// about 1 KB into an overflow page of its own, mostly empty. Its integer
// key rec is what the feed and the facts refer to, in a few bytes where
// (coll, id) took forty or more in each of their rows and indexes. A
// record's facts live in the facts table only. Nothing reads records by
// seq, so it has no seq index. Stored answers keep, for the common
// applied answer, only its version (body NULL), and have no index by
// time (see SweepAnswers). The audit trail is a rowid
// table whose indexes carry that rowid rather than the entry's key, which
// a record's write does not store (see insertAudit), and its changes are
// compact (see compactChanges).
const leanLayout = `
	CREATE TABLE records_lean (
		rec INTEGER PRIMARY KEY,
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
		UNIQUE (coll, id)
	);
	CREATE TABLE record_tokens_lean (
		rec INTEGER NOT NULL,
		token TEXT NOT NULL,
		seq INTEGER NOT NULL,
		gone INTEGER NOT NULL,
		PRIMARY KEY (rec, token)
	) WITHOUT ROWID;
	CREATE TABLE facts_lean (
		rec INTEGER NOT NULL,
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
		amount INTEGER NOT NULL DEFAULT 0,
		balance INTEGER NOT NULL DEFAULT 0,
		count INTEGER NOT NULL DEFAULT 0,
		status TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (rec, n)
	) WITHOUT ROWID;
	CREATE TABLE audit_lean (
		n INTEGER PRIMARY KEY,
		key TEXT,
		at INTEGER NOT NULL,
		user_id TEXT NOT NULL,
		device_id TEXT NOT NULL,
		action TEXT NOT NULL,
		coll TEXT NOT NULL,
		rid TEXT NOT NULL,
		version INTEGER NOT NULL,
		changes TEXT NOT NULL,
		territories TEXT NOT NULL
	);
	CREATE TABLE answers_lean (
		user_id TEXT NOT NULL,
		mutation_id TEXT NOT NULL,
		body TEXT,
		version INTEGER NOT NULL DEFAULT 0,
		at INTEGER NOT NULL,
		PRIMARY KEY (user_id, mutation_id)
	) WITHOUT ROWID;`

// leanIndexes are the indexes of the lean layout, made once the rows are
// in.
const leanIndexes = `
	CREATE INDEX record_tokens_feed ON record_tokens(token, seq, gone);
	CREATE INDEX record_tokens_seq ON record_tokens(seq);
	CREATE INDEX facts_by_territory ON facts(kind, territory, at);
	CREATE INDEX facts_by_customer ON facts(kind, customer, at);
	-- Covering what the coverage count reads, so that it never looks up rows.
	CREATE INDEX facts_by_time ON facts(kind, at, territory, rep, customer, day, visit, flag);
	CREATE INDEX facts_by_rep ON facts(kind, rep, at);
	-- An entry is one per key: a record's write has none of its own (NULL)
	-- and is one per collection, id and version.
	CREATE UNIQUE INDEX audit_by_record ON audit(coll, rid, version, coalesce(key, ''));
	CREATE INDEX audit_by_time ON audit(at);
	CREATE INDEX audit_by_user ON audit(user_id, at);`

// migrateLean moves a store from the layout of migrations to the lean
// one: records get an integer key, their history stops repeating their
// data, and the feed, the facts and the answers are copied into their new
// tables.
func migrateLean(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, leanLayout); err != nil {
		return err
	}
	if err := copyLeanRecords(ctx, tx); err != nil {
		return errorf("records: %w", err)
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO record_tokens_lean (rec, token, seq, gone)
			SELECT r.rec, t.token, t.seq, t.gone FROM record_tokens t JOIN records_lean r ON r.coll = t.coll AND r.id = t.id;
		INSERT INTO facts_lean (rec, n, kind, rep, customer, territory, visit, label, grade, day, at, flag, amount, balance, count, status)
			SELECT r.rec, f.n, f.kind, f.rep, f.customer, f.territory, f.visit, f.label, f.grade, f.day, f.at, f.flag,
				f.amount, f.balance, f.count, f.status
			FROM facts f JOIN records_lean r ON r.coll = f.coll AND r.id = f.id;
		-- An applied answer is kept as its version when the body is exactly
		-- what appliedBody makes of it (as Go encodes it: json_quote may
		-- escape otherwise, and then the body stays).
		INSERT INTO answers_lean (user_id, mutation_id, body, version, at)
			SELECT user_id, mutation_id, iif(applied, NULL, body), iif(applied, body ->> '$.version', 0), at
			FROM (SELECT *, body = '{"mutation_id":' || json_quote(mutation_id) || ',"status":"applied","version":'
				|| (body ->> '$.version') || '}' AND (body ->> '$.version') > 0 IS TRUE AS applied FROM answers);
		DROP TABLE records;
		DROP TABLE record_tokens;
		DROP TABLE facts;
		INSERT INTO audit_lean (key, at, user_id, device_id, action, coll, rid, version, changes, territories)
			SELECT CASE WHEN key = coll || '/' || rid || '/' || version THEN NULL ELSE key END,
				at, user_id, device_id, action, coll, rid, version, changes, territories
			FROM audit ORDER BY at, key;
		DROP TABLE answers;
		DROP TABLE audit;
		ALTER TABLE audit_lean RENAME TO audit;
		ALTER TABLE records_lean RENAME TO records;
		ALTER TABLE record_tokens_lean RENAME TO record_tokens;
		ALTER TABLE facts_lean RENAME TO facts;
		ALTER TABLE answers_lean RENAME TO answers;`+leanIndexes)
	if err != nil {
		return err
	}
	if err := compactAudit(ctx, tx); err != nil {
		return errorf("audit: %w", err)
	}
	return nil
}

// compactAudit rewrites the changes of audit entries in their compact
// form (see compactChanges), a batch at a time.
func compactAudit(ctx context.Context, tx *sql.Tx) error {
	for after := int64(0); ; {
		found, err := auditBatch(ctx, tx, after)
		if err != nil || len(found) == 0 {
			return err
		}
		after = found[len(found)-1].n
		if err := compactEntries(ctx, tx, found); err != nil {
			return err
		}
	}
}

// auditEntryChanges is an audit entry's rowid and stored changes.
type auditEntryChanges struct {
	n       int64
	changes string
}

// auditBatch returns up to 1,000 entries after rowid after, in rowid order.
func auditBatch(ctx context.Context, tx *sql.Tx, after int64) ([]auditEntryChanges, error) {
	rows, err := tx.QueryContext(ctx, "SELECT n, changes FROM audit WHERE n > ? ORDER BY n LIMIT 1000", after)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var found []auditEntryChanges
	for rows.Next() {
		var e auditEntryChanges
		if err := rows.Scan(&e.n, &e.changes); err != nil {
			return nil, err
		}
		found = append(found, e)
	}
	return found, rows.Err()
}

// compactEntries writes the changes of entries in their compact form.
func compactEntries(ctx context.Context, tx *sql.Tx, found []auditEntryChanges) error {
	for _, e := range found {
		changes, err := expandChanges(e.changes)
		if err != nil {
			return errorf("entry %d: %w", e.n, err)
		}
		compact, err := compactChanges(changes)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE audit SET changes = ? WHERE n = ?", compact, e.n); err != nil {
			return err
		}
	}
	return nil
}

// copyLeanRecords copies every record into records_lean, in seq order,
// with its history in the lean form.
func copyLeanRecords(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history
		FROM records ORDER BY seq`)
	if err != nil {
		return err
	}
	defer rows.Close()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO records_lean (coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer ins.Close()
	for rows.Next() {
		var (
			coll, id, updatedBy, tokens, refs, history string
			version, deleted, updatedAt, seq           int64
			data                                       sql.NullString
		)
		if err := rows.Scan(&coll, &id, &version, &deleted, &updatedAt, &updatedBy, &data, &seq, &tokens, &refs, &history); err != nil {
			return err
		}
		var revs []storedRevision
		if err := json.Unmarshal([]byte(history), &revs); err != nil {
			return errorf("%s/%s: %w", coll, id, err)
		}
		lean, err := json.Marshal(leanHistory(revs, []byte(data.String), ""))
		if err != nil {
			return err
		}
		var d any
		if data.Valid {
			d = data.String
		}
		if _, err := ins.ExecContext(ctx, coll, id, version, deleted, updatedAt, updatedBy, d, seq, tokens, refs, string(lean)); err != nil {
			return errorf("%s/%s: %w", coll, id, err)
		}
	}
	return rows.Err()
}
