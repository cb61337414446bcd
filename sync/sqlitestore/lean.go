package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
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
// applied answer, only its version (body NULL).
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
	CREATE INDEX answers_at ON answers(at);`

// migrateLean moves a store from the layout of migrations to the lean
// one: records get an integer key, their history stops repeating their
// data, and the feed, the facts and the answers are copied into their new
// tables.
func migrateLean(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, leanLayout); err != nil {
		return err
	}
	if err := copyLeanRecords(ctx, tx); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	_, err := tx.ExecContext(ctx, `
		INSERT INTO record_tokens_lean (rec, token, seq, gone)
			SELECT r.rec, t.token, t.seq, t.gone FROM record_tokens t JOIN records_lean r ON r.coll = t.coll AND r.id = t.id;
		INSERT INTO facts_lean (rec, n, kind, rep, customer, territory, visit, label, grade, day, at, flag, amount, balance, count, status)
			SELECT r.rec, f.n, f.kind, f.rep, f.customer, f.territory, f.visit, f.label, f.grade, f.day, f.at, f.flag,
				f.amount, f.balance, f.count, f.status
			FROM facts f JOIN records_lean r ON r.coll = f.coll AND r.id = f.id;
		INSERT INTO answers_lean (user_id, mutation_id, body, version, at)
			SELECT user_id, mutation_id, body, 0, at FROM answers;
		DROP TABLE records;
		DROP TABLE record_tokens;
		DROP TABLE facts;
		DROP TABLE answers;
		ALTER TABLE records_lean RENAME TO records;
		ALTER TABLE record_tokens_lean RENAME TO record_tokens;
		ALTER TABLE facts_lean RENAME TO facts;
		ALTER TABLE answers_lean RENAME TO answers;`+leanIndexes)
	if err != nil {
		return err
	}
	return compactAnswers(ctx, tx)
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
			return fmt.Errorf("%s/%s: %w", coll, id, err)
		}
		lean, err := json.Marshal(leanHistory(revs, []byte(data.String)))
		if err != nil {
			return err
		}
		var d any
		if data.Valid {
			d = data.String
		}
		if _, err := ins.ExecContext(ctx, coll, id, version, deleted, updatedAt, updatedBy, d, seq, tokens, refs, string(lean)); err != nil {
			return fmt.Errorf("%s/%s: %w", coll, id, err)
		}
	}
	return rows.Err()
}

// compactAnswers stores applied answers as their version alone.
func compactAnswers(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT user_id, mutation_id, body FROM answers WHERE body IS NOT NULL")
	if err != nil {
		return err
	}
	type compact struct {
		user, mutation string
		version        int64
	}
	var found []compact
	for rows.Next() {
		var c compact
		var body string
		if err := rows.Scan(&c.user, &c.mutation, &body); err != nil {
			rows.Close()
			return err
		}
		if v, ok := appliedVersion(c.mutation, []byte(body)); ok {
			c.version = v
			found = append(found, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range found {
		if _, err := tx.ExecContext(ctx, "UPDATE answers SET body = NULL, version = ? WHERE user_id = ? AND mutation_id = ?",
			c.version, c.user, c.mutation); err != nil {
			return err
		}
	}
	return nil
}
