package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// storedAnswer returns the body column of a user's stored answer.
func storedAnswer(t *testing.T, s *Store, userID, mutationID string) sql.NullString {
	t.Helper()
	var body sql.NullString
	require.NoError(t, s.r.QueryRowContext(context.Background(), `SELECT body FROM answers
		WHERE user_id = (SELECT n FROM names WHERE name = ?) AND mutation_id = ?`, userID, mutationID).Scan(&body))
	return body
}

// replayed returns the answer the store gives back for a user's mutation.
func replayed(t *testing.T, s *Store, userID, mutationID string) string {
	t.Helper()
	var got *sync.Answer
	require.NoError(t, s.View(context.Background(), func(tx sync.RecordTx) error {
		answers, err := tx.Answers(context.Background(), userID, []string{mutationID})
		got = answers[mutationID]
		return err
	}))
	require.NotNil(t, got, "an answer to %s", mutationID)
	return string(got.Body)
}

// priced is an order of one line of p-1 at a unit price the server
// replaces with the product's 250.
func priced(status string, quantity int) map[string]any {
	return map[string]any{"customer_id": "c-1", "status": status,
		"lines": []any{map[string]any{"product_id": "p-1", "quantity": quantity, "unit_price": 1}}}
}

func TestMergedAnswerIsKeptByReferenceUntilItsRecordMovesOn(t *testing.T) {
	s := openTemp(t)
	b := storetest.NewBed(t, s)
	b.OK("admin",
		storetest.Up(schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"}),
		storetest.Up(schema.Customers, "c-1", 0, map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "A"}),
		storetest.Up(schema.Products, "p-1", 0, map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": 250, "active": true}))

	repriced := storetest.Up(schema.Orders, "o-1", 0, priced("draft", 2))
	repriced.ID = "m-repriced"
	first := b.Push("rep1", repriced)[0]
	require.Equal(t, schema.PushMerged, first.Status, "the server's prices replace the client's: %+v", first)
	firstBody, err := json.Marshal(first)
	require.NoError(t, err)

	assert.Equal(t, sql.NullString{String: "@orders/o-1", Valid: true}, storedAnswer(t, s, "u-rep1", "m-repriced"),
		"the answer names the record instead of holding a copy of it")
	assert.Equal(t, string(firstBody), replayed(t, s, "u-rep1", "m-repriced"), "read back byte for byte")

	// The rep edits the draft: the record moves on past the answer's version.
	b.OK("rep1", storetest.Up(schema.Orders, "o-1", 1, storetest.With(priced("draft", 3), "lines",
		[]any{map[string]any{"product_id": "p-1", "quantity": 3, "unit_price": 250}})))
	v, _ := b.Record(schema.Orders, "o-1")
	require.Equal(t, int64(2), v)
	assert.Equal(t, sql.NullString{String: string(firstBody), Valid: true}, storedAnswer(t, s, "u-rep1", "m-repriced"),
		"the answer was stored in full before its record moved on")
	assert.Equal(t, string(firstBody), replayed(t, s, "u-rep1", "m-repriced"))
	again := b.Push("rep1", repriced)[0]
	againBody, err := json.Marshal(again)
	require.NoError(t, err)
	assert.Equal(t, string(firstBody), string(againBody), "the replayed mutation gets its first answer")

	t.Run("moved on later in the same push", func(t *testing.T) {
		created := storetest.Up(schema.Orders, "o-2", 0, priced("draft", 1))
		created.ID = "m-created"
		edited := storetest.Up(schema.Orders, "o-2", 1, priced("draft", 4))
		edited.ID = "m-edited"
		res := b.Push("rep1", created, edited)
		require.Equal(t, []schema.PushStatus{schema.PushMerged, schema.PushMerged}, []schema.PushStatus{res[0].Status, res[1].Status})
		body, err := json.Marshal(res[0])
		require.NoError(t, err)
		assert.Equal(t, sql.NullString{String: string(body), Valid: true}, storedAnswer(t, s, "u-rep1", "m-created"),
			"stored in full: its record did not stay at its version")
		assert.Equal(t, sql.NullString{String: "@orders/o-2", Valid: true}, storedAnswer(t, s, "u-rep1", edited.ID))
		assert.Equal(t, string(body), replayed(t, s, "u-rep1", "m-created"))
	})

	t.Run("deleted since", func(t *testing.T) {
		created := storetest.Up(schema.Orders, "o-3", 0, priced("draft", 1))
		created.ID = "m-deleted"
		res := b.Push("rep1", created)[0]
		require.Equal(t, schema.PushMerged, res.Status)
		body, err := json.Marshal(res)
		require.NoError(t, err)
		b.OK("admin", storetest.Del(schema.Orders, "o-3", 1))
		assert.Equal(t, string(body), replayed(t, s, "u-rep1", "m-deleted"))
	})

	t.Run("a merge of a customer", func(t *testing.T) {
		b.OK("admin", storetest.Up(schema.Customers, "c-1", 1, map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "B"}))
		merge := storetest.Up(schema.Customers, "c-1", 1, map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "A", "notes": "back door"})
		merge.ID = "m-merge"
		res := b.Push("rep1", merge)[0]
		require.Equal(t, schema.PushMerged, res.Status, "%+v", res)
		body, err := json.Marshal(res)
		require.NoError(t, err)
		assert.Equal(t, sql.NullString{String: "@customers/c-1", Valid: true}, storedAnswer(t, s, "u-rep1", "m-merge"))
		b.OK("admin", storetest.Up(schema.Customers, "c-1", 3, map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "C"}))
		assert.Equal(t, string(body), replayed(t, s, "u-rep1", "m-merge"))
	})
}

func TestAnswersOfTheNamesLayoutReadTheSameAfterTheUpgrade(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	db := openAtLayout(t, path, len(migrations)+2, "") // the names layout, 9
	// An order at version 1 and the merged answer that wrote it, in full,
	// as layout 9 stores every answer that carries a record.
	merged := `{"mutation_id":"m-1","status":"merged","version":1,"record":{"collection":"orders","id":"o-1","version":1,` +
		`"deleted":false,"updated_at":"2026-11-23T12:00:00Z","updated_by":"u-rep1","data":{"customer_id":"c-1","total":500}}}`
	_, err := db.ExecContext(ctx, `
		INSERT INTO names (n, name) VALUES (1, 'u-rep1');
		INSERT INTO records (rec, coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history)
		VALUES (1, 'orders', 'o-1', 1, 0, 1795953600000000000, 1, '{"customer_id":"c-1","total":500}', 1, '', '[]',
			'[{"v":1,"m":"m-1","c":true,"w":true}]');
		UPDATE feed SET seq = 1;
		INSERT INTO answers (user_id, mutation_id, body, version, at) VALUES (1, 'm-1', ?, 0, 1);`, merged)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	var version int
	require.NoError(t, s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version))
	assert.Equal(t, 10, version, "the layout where answers may refer to their records")
	assert.Equal(t, version, Layout(), "Layout names the layout an upgraded store has")
	assert.Equal(t, merged, replayed(t, s, "u-rep1", "m-1"), "an answer stored in full reads as it was")

	// The record moves on: the answer in full is left as it is.
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		r, err := tx.Record(ctx, schema.Orders, "o-1")
		if err != nil {
			return err
		}
		next := *r
		next.Version, next.Data = 2, json.RawMessage(`{"customer_id":"c-1","total":750}`)
		next.History = append(r.History, sync.Revision{Version: 2, MutationID: "m-2", UserID: "u-rep1"})
		return tx.Put(ctx, &next, 1)
	}))
	assert.Equal(t, merged, replayed(t, s, "u-rep1", "m-1"))
}

// openAtLayout makes a database file at path in an older layout, with
// extra pragmas ("&_pragma=…"), for a test to fill as that layout's store
// wrote it before Open moves it on.
func openAtLayout(t *testing.T, path string, layout int, pragmas string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)"+pragmas)
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	_, err = (&Store{w: db, r: db}).migrateTo(context.Background(), layout)
	require.NoError(t, err)
	return db
}
