package sqlitestore

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// writeVersion puts a customer's version with its audit entry, as the
// engine writes them: a creation's changes are every field from null.
func writeVersion(t *testing.T, s *Store, version int64, data string, before map[string]json.RawMessage) *sync.Record {
	t.Helper()
	ctx := context.Background()
	var after map[string]json.RawMessage
	require.NoError(t, json.Unmarshal([]byte(data), &after))
	changes := map[string]sync.FieldChange{}
	for k, v := range after {
		from := before[k]
		if from == nil {
			from = json.RawMessage("null")
		}
		if string(from) != string(v) {
			changes[k] = sync.FieldChange{From: from, To: v}
		}
	}
	action := "update"
	if version == 1 {
		action = "create"
	}
	at := time.Unix(0, version*1000).UTC()
	r := &sync.Record{Collection: schema.Customers, ID: "c-1", Version: version, UpdatedAt: at, UpdatedBy: "u-1",
		Data: json.RawMessage(data), Tokens: []string{"customers|terr:t-1", "customers|all"},
		History: []sync.Revision{{Version: version, MutationID: "m", UserID: "u-1", Data: json.RawMessage(data)}},
		Audit: []sync.AuditEntry{{Key: "customers/c-1/" + string(rune('0'+version)), At: at, UserID: "u-1", DeviceID: "phone",
			Action: action, Collection: schema.Customers, ID: "c-1", Version: version, Changes: changes, Territories: []string{"t-1"}}}}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, version-1) }))
	return r
}

func TestCreationAuditKeepsNoCopyOfTheData(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	created := map[string]sync.FieldChange{
		"grade": {From: json.RawMessage("null"), To: json.RawMessage(`"A"`)},
		"name":  {From: json.RawMessage("null"), To: json.RawMessage(`"Ana's"`)},
	}
	stored := func(version int64) string {
		var changes string
		require.NoError(t, s.r.QueryRowContext(ctx, "SELECT changes FROM audit WHERE rid = 'c-1' AND version = ?", version).Scan(&changes))
		return changes
	}
	entries := func() []sync.AuditEntry {
		got, err := s.AuditEntries(ctx, sync.AuditQuery{Collection: schema.Customers, ID: "c-1", Limit: 10})
		require.NoError(t, err)
		return got
	}

	// Data keeps its fields in the order the client sent them.
	writeVersion(t, s, 1, `{"name":"Ana's","grade":"A"}`, nil)
	assert.Equal(t, auditSameAsData, stored(1), "the creation's changes are the record's data, kept once")
	got := entries()
	require.Len(t, got, 1)
	assert.Equal(t, created, got[0].Changes, "read back in full")

	writeVersion(t, s, 2, `{"grade":"B","name":"Ana's"}`, map[string]json.RawMessage{"grade": json.RawMessage(`"A"`), "name": json.RawMessage(`"Ana's"`)})
	assert.Equal(t, `[{},{"name":"Ana's","grade":"A"}]`, stored(1), "overwriting the record stores the creation's changes in full")
	got = entries()
	require.Len(t, got, 2)
	assert.Equal(t, created, got[1].Changes, "the creation reads the same after the record moved on")
	assert.Equal(t, map[string]sync.FieldChange{"grade": {From: json.RawMessage(`"A"`), To: json.RawMessage(`"B"`)}}, got[0].Changes)
	assert.NotEqual(t, auditSameAsData, stored(2), "an update's changes are not the data")
}

func TestHistoryNamesItsWriterOnce(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	r := writeVersion(t, s, 1, `{"name":"Ana's"}`, nil)
	next := *r
	next.Version, next.UpdatedBy, next.Data = 2, "u-2", json.RawMessage(`{"name":"Bo"}`)
	next.History = append(slices.Clone(r.History), sync.Revision{Version: 2, MutationID: "m-2", UserID: "u-2", Data: next.Data})
	next.Audit = nil
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, &next, 1) }))

	var history string
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT history FROM records WHERE id = 'c-1'").Scan(&history))
	assert.Equal(t, `[{"v":1,"m":"m","u":"u-1","d":{"name":"Ana's"}},{"v":2,"m":"m-2","c":true,"w":true}]`, history,
		"the newest revision names neither its data nor its user, which the record holds")
	var got *sync.Record
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		var err error
		got, err = tx.Record(ctx, schema.Customers, "c-1")
		return err
	}))
	assert.Equal(t, next.History, got.History)
}

func TestTokensAreKeptOnceAsNames(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	put := func(id string, prev int64, tokens ...string) {
		r := &sync.Record{Collection: schema.Visits, ID: id, Version: prev + 1, UpdatedAt: time.Unix(0, 1).UTC(), UpdatedBy: "u-1",
			Data: json.RawMessage(`{}`), Tokens: tokens}
		require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, prev) }))
	}
	put("v-1", 0, "visits|all", "visits|own:u-1")
	put("v-2", 0, "visits|all", "visits|own:u-2")
	put("v-1", 1, "visits|all") // loses its owner's token

	var names int
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM names").Scan(&names))
	assert.Equal(t, 4, names, "one row per distinct token (3) and writer (1)")

	wm, err := s.Watermark(ctx)
	require.NoError(t, err)
	chs, err := s.Changes(ctx, []string{"visits|own:u-1"}, 0, wm, 10, 0)
	require.NoError(t, err)
	require.Len(t, chs, 1)
	assert.Equal(t, "v-1", chs[0].Record.ID)
	assert.True(t, chs[0].Gone, "the lost token stays in the feed as gone")
	chs, err = s.Changes(ctx, []string{"visits|all"}, 0, wm, 10, 0)
	require.NoError(t, err)
	assert.Len(t, chs, 2)
	feed, _, err := s.Feed(ctx, 0, wm, 10)
	require.NoError(t, err)
	require.Len(t, feed, 2, "v-1's first write was touched again by its second")
	assert.Equal(t, []string{"visits|all", "visits|own:u-1"}, feed[1].Tokens, "the last write held one token and lost the other")

	// A name added by a unit that failed is forgotten with it.
	boom := assert.AnError
	err = s.Update(ctx, func(tx sync.RecordTx) error {
		r := &sync.Record{Collection: schema.Visits, ID: "v-3", Version: 1, UpdatedAt: time.Unix(0, 1).UTC(), UpdatedBy: "u-1",
			Data: json.RawMessage(`{}`), Tokens: []string{"visits|own:u-3"}}
		require.NoError(t, tx.Put(ctx, r, 0))
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, cached := s.names.get("visits|own:u-3")
	assert.False(t, cached, "a rolled-back name is not cached")
	put("v-3", 0, "visits|own:u-3")
	chs, err = s.Changes(ctx, []string{"visits|own:u-3"}, 0, wm+10, 10, 0)
	require.NoError(t, err)
	require.Len(t, chs, 1)
	assert.Equal(t, "v-3", chs[0].Record.ID)
}

// queryPlan returns how SQLite plans a query of the store, a line a step.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.r.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	return strings.Join(plan, "\n")
}

func TestTerritoryCoverageReadsOnlyItsTerritory(t *testing.T) {
	s := openTemp(t)
	day := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	q := report.CoverageQuery{Territories: []string{"t-1"}, Days: []report.Day{{Date: "2026-11-02", Start: day, End: day.AddDate(0, 0, 1)}}}
	query, args, err := coverageQuery(q)
	require.NoError(t, err)
	all := queryPlan(t, s, query, args...)
	assert.Equal(t, 3, strings.Count(all, "USING COVERING INDEX facts_by_territory (kind=? AND territory=?"),
		"visits, stops and orders are each read through the territory's part of the index:\n%s", all)
	assert.NotContains(t, all, "facts_by_time", all)
}

func TestLeanLayoutMovesToNamesAndGivesSpaceBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	db := openAtLayout(t, path, len(migrations)+1, "&_pragma=auto_vacuum(INCREMENTAL)") // the lean layout, 8
	// 2,000 customers of the lean layout, each with two feed rows.
	_, err := db.ExecContext(ctx, `
		WITH RECURSIVE i(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM i WHERE k < 2000)
		INSERT INTO records (rec, coll, id, version, deleted, updated_at, updated_by, data, seq, tokens, refs, history)
		SELECT k, 'customers', 'c-' || k, 1, 0, k, 'u-' || (k % 3), '{"name":"' || printf('%0200d', k) || '"}', k,
			'customers|all' || char(10) || 'customers|terr:t-' || (k % 7), '[]', '[{"v":1,"m":"m-' || k || '","c":true}]' FROM i;
		INSERT INTO record_tokens (rec, token, seq, gone)
		SELECT rec, 'customers|all', seq, 0 FROM records UNION ALL SELECT rec, 'customers|terr:t-' || (rec % 7), seq, 0 FROM records;
		UPDATE feed SET seq = 2000;`)
	require.NoError(t, err)
	var mode int
	require.NoError(t, db.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode))
	require.Equal(t, autoVacuumIncremental, mode, "a file of the lean layout that gives space back")
	require.NoError(t, db.Close())

	s, err := Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	var free, names int
	require.NoError(t, s.r.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free))
	assert.Zero(t, free, "the pages of the rebuilt tables are given back")
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM names").Scan(&names))
	assert.Equal(t, 1+7+3, names, "tokens and users, each once")
	chs, err := s.Changes(ctx, []string{"customers|terr:t-3"}, 0, 2000, 1000, 0)
	require.NoError(t, err)
	assert.Len(t, chs, 286, "the customers of t-3, through the migrated feed")
	for _, c := range chs {
		require.Equal(t, "u-"+strconv.Itoa(int(c.Seq%3)), c.Record.UpdatedBy)
	}
}
