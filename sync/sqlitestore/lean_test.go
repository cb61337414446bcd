package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// writeOldLayout makes a database in the layout before the lean one, with
// rows as that layout's store wrote them: a customer written twice (its
// history holding copies of both versions' data), a deleted visit that
// lost a token, a product as created, their feed rows and facts, two
// stored answers and the audit entries of a creation, an update and a
// sign-in.
func writeOldLayout(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	old := &Store{w: db, r: db}
	_, err = old.migrateTo(ctx, len(migrations))
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "PRAGMA auto_vacuum = NONE; VACUUM")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, `
		INSERT INTO records (coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history, facts) VALUES
		('customers', 'c-1', 2, 0, 1000, 'u-1', '{"name":"Ana''s Shop","grade":"A"}', 3, 'customers|all
customers|terr:t-1', '["territory:t-1"]',
		 '[{"v":1,"m":"m-1","u":"u-1","d":{"name":"Ana''s","grade":"A"}},{"v":2,"m":"m-2","u":"u-1","d":{"name":"Ana''s Shop","grade":"A"}}]',
		 '[{"k":"customer","c":"c-1","t":"t-1","l":"Ana''s Shop","g":"A","a":"1970-01-01T00:00:00Z","f":0}]'),
		('visits', 'v-1', 2, 1, 2000, 'u-2', NULL, 4, 'visits|all', '["customer:c-1"]',
		 '[{"v":1,"m":"m-3","u":"u-2"},{"v":2,"m":"m-4","u":"u-2"}]', 'null'),
		('products', 'p-1', 1, 0, 800, 'u-1', '{"price":250,"name":"Soap"}', 2, 'products|all', '[]',
		 '[{"v":1,"m":"m-0","u":"u-1","d":{"price":250,"name":"Soap"}}]', 'null');
		INSERT INTO record_tokens (coll, id, token, seq, gone) VALUES
		('customers', 'c-1', 'customers|all', 3, 0), ('customers', 'c-1', 'customers|terr:t-1', 3, 0),
		('visits', 'v-1', 'visits|all', 4, 0), ('visits', 'v-1', 'visits|own:u-2', 4, 1),
		('products', 'p-1', 'products|all', 2, 0);
		INSERT INTO record_refs (coll, ref, id) VALUES ('customers', 'territory:t-1', 'c-1'), ('visits', 'customer:c-1', 'v-1');
		INSERT INTO facts (coll, id, n, kind, rep, customer, territory, visit, label, grade, day, at, flag) VALUES
		('customers', 'c-1', 0, 'customer', '', 'c-1', 't-1', '', 'Ana''s Shop', 'A', '', 0, 0);
		INSERT INTO answers (user_id, mutation_id, body, at) VALUES
		('u-1', 'm-2', '{"mutation_id":"m-2","status":"applied","version":2}', 5000),
		('u-1', 'm-9', '{"mutation_id":"m-9","status":"rejected","error":{"code":"invalid","message":"no"}}', 6000);
		INSERT INTO audit (key, at, user_id, device_id, action, coll, rid, version, changes, territories) VALUES
		('customers/c-1/2', 1000, 'u-1', 'phone', 'update', 'customers', 'c-1', 2,
		 '{"name":{"from":"Ana''s","to":"Ana''s Shop"},"notes":{"from":null,"to":"back door"}}', '["t-1"]'),
		('signin/l-1/7', 900, 'u-1', 'phone', 'signin', '', 'l-1', 0, 'null', '[]'),
		('products/p-1/1', 800, 'u-1', 'phone', 'create', 'products', 'p-1', 1,
		 '{"name":{"from":null,"to":"Soap"},"price":{"from":null,"to":250}}', '[]');
		UPDATE feed SET seq = 4;`)
	require.NoError(t, err)
}

func TestOldLayoutOpensAndKeepsItsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	writeOldLayout(t, path)

	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()

	var version, vacuum int
	require.NoError(t, s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version))
	require.NoError(t, s.r.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&vacuum))
	assert.Equal(t, len(steps()), version, "the layout is the newest")
	assert.Equal(t, autoVacuumIncremental, vacuum, "the file was rebuilt to give space back")

	var c, v *sync.Record
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		var err error
		if c, err = tx.Record(ctx, schema.Customers, "c-1"); err != nil {
			return err
		}
		v, err = tx.Record(ctx, schema.Visits, "v-1")
		return err
	}))
	assert.Equal(t, &sync.Record{
		Collection: schema.Customers, ID: "c-1", Version: 2, UpdatedAt: time.Unix(0, 1000).UTC(), UpdatedBy: "u-1",
		Data: json.RawMessage(`{"name":"Ana's Shop","grade":"A"}`), Seq: 3,
		Tokens: []string{"customers|all", "customers|terr:t-1"}, Refs: []string{"territory:t-1"},
		History: []sync.Revision{
			{Version: 1, MutationID: "m-1", UserID: "u-1", Data: json.RawMessage(`{"name":"Ana's","grade":"A"}`)},
			{Version: 2, MutationID: "m-2", UserID: "u-1", Data: json.RawMessage(`{"name":"Ana's Shop","grade":"A"}`)},
		},
		Facts: []sync.Fact{{Kind: sync.FactCustomer, Customer: "c-1", Territory: "t-1", Label: "Ana's Shop", Grade: "A", At: sync.Epoch}},
	}, c)
	assert.True(t, v.Deleted)
	assert.Nil(t, v.Data)
	assert.Len(t, v.History, 2)
	assert.Empty(t, v.Facts)

	var history string
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT history FROM records WHERE id = 'c-1'").Scan(&history))
	assert.Equal(t, `[{"v":1,"m":"m-1","u":"u-1","d":{"name":"Ana's","grade":"A"}},{"v":2,"m":"m-2","u":"u-1","c":true}]`, history,
		"the newest revision no longer copies the data")

	wm, err := s.Watermark(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(4), wm)
	chs, err := s.Changes(ctx, []string{"customers|terr:t-1", "visits|own:u-2"}, 0, wm, 10, 0)
	require.NoError(t, err)
	require.Len(t, chs, 2)
	assert.Equal(t, "c-1", chs[0].Record.ID)
	assert.False(t, chs[0].Gone)
	assert.Equal(t, "v-1", chs[1].Record.ID)
	assert.True(t, chs[1].Gone, "a lost token stays in the feed as gone")

	customers, err := s.Facts(ctx, sync.FactCustomer, []string{"t-1"}, sync.Epoch, sync.Epoch.Add(time.Second))
	require.NoError(t, err)
	assert.Len(t, customers, 1)

	for _, a := range []struct{ id, body string }{
		{"m-2", `{"mutation_id":"m-2","status":"applied","version":2}`},
		{"m-9", `{"mutation_id":"m-9","status":"rejected","error":{"code":"invalid","message":"no"}}`},
	} {
		var got *sync.Answer
		require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
			answers, err := tx.Answers(ctx, "u-1", []string{a.id})
			got = answers[a.id]
			return err
		}))
		require.NotNil(t, got, a.id)
		assert.JSONEq(t, a.body, string(got.Body), a.id)
		assert.Equal(t, a.body, string(got.Body), "%s replays byte for byte", a.id)
	}
	var compact int
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM answers WHERE body IS NULL").Scan(&compact))
	assert.Equal(t, 1, compact, "the applied answer is kept as its version")

	entries, err := s.AuditEntries(ctx, sync.AuditQuery{Limit: 10})
	require.NoError(t, err)
	require.Len(t, entries, 3)
	assert.Equal(t, sync.AuditEntry{Key: "products/p-1/1", At: time.Unix(0, 800).UTC(), UserID: "u-1", DeviceID: "phone",
		Action: "create", Collection: schema.Products, ID: "p-1", Version: 1, Territories: []string{}, Changes: map[string]sync.FieldChange{
			"name":  {From: json.RawMessage(`null`), To: json.RawMessage(`"Soap"`)},
			"price": {From: json.RawMessage(`null`), To: json.RawMessage(`250`)},
		}}, entries[2], "a creation reads the same")
	entries = entries[:2]
	assert.Equal(t, []sync.AuditEntry{
		{Key: "customers/c-1/2", At: time.Unix(0, 1000).UTC(), UserID: "u-1", DeviceID: "phone", Action: "update",
			Collection: schema.Customers, ID: "c-1", Version: 2, Territories: []string{"t-1"}, Changes: map[string]sync.FieldChange{
				"name":  {From: json.RawMessage(`"Ana's"`), To: json.RawMessage(`"Ana's Shop"`)},
				"notes": {From: json.RawMessage(`null`), To: json.RawMessage(`"back door"`)},
			}},
		{Key: "signin/l-1/7", At: time.Unix(0, 900).UTC(), UserID: "u-1", DeviceID: "phone", Action: "signin", ID: "l-1",
			Territories: []string{}},
	}, entries)
	var changes string
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT changes FROM audit WHERE key IS NULL AND rid = 'c-1'").Scan(&changes))
	assert.Equal(t, `[{"name":"Ana's"},{"name":"Ana's Shop","notes":"back door"}]`, changes, "a record's entry is compact and keeps no key")
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT changes FROM audit WHERE rid = 'p-1'").Scan(&changes))
	assert.Equal(t, auditSameAsData, changes, "a creation's entry no longer copies the record's data")

	var names, tokenRows int
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM names").Scan(&names))
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM record_tokens t JOIN names n ON n.n = t.tok").Scan(&tokenRows))
	assert.Equal(t, 7, names, "each token (5) and user (2) is named once")
	for _, column := range []string{"SELECT DISTINCT typeof(updated_by) FROM records", "SELECT DISTINCT typeof(user_id) FROM answers",
		"SELECT DISTINCT typeof(user_id) FROM audit"} {
		var kind string
		require.NoError(t, s.r.QueryRowContext(ctx, column).Scan(&kind))
		assert.Equal(t, "integer", kind, "%s: users are kept as their names' integers", column)
	}
	byUser, err := s.AuditEntries(ctx, sync.AuditQuery{UserID: "u-1", Limit: 10})
	require.NoError(t, err)
	assert.Len(t, byUser, 3, "entries are found by user")
	assert.Equal(t, 5, tokenRows, "every feed row refers to its token's name")
	var index string
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT sql FROM sqlite_schema WHERE name = 'facts_by_territory'").Scan(&index))
	assert.Contains(t, index, "(kind, territory, at, rep, customer, day, visit, flag)", "the territory index covers the coverage count")

	// The migrated store keeps writing: the next write takes the next seq.
	next := *c
	next.Version, next.Data = 3, json.RawMessage(`{"name":"Ana's Shop","grade":"B"}`)
	next.History = append(slices.Clone(c.History), sync.Revision{Version: 3, MutationID: "m-5", UserID: "u-1", Data: next.Data})
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, &next, 2) }))
	assert.Equal(t, int64(5), next.Seq)
	chs, err = s.Changes(ctx, []string{"customers|terr:t-1"}, 4, 5, 10, 0)
	require.NoError(t, err)
	require.Len(t, chs, 1, "the new write is in the feed through the migrated token")
	assert.Equal(t, int64(3), chs[0].Record.Version)
}
