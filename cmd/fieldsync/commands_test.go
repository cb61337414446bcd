package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/mongostore"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// seedStore writes a territory and two customers through an engine.
func seedStore(t *testing.T, s sync.Store) {
	t.Helper()
	eng, err := sync.New(sync.Config{Store: s, Secret: storetest.Secret})
	require.NoError(t, err)
	var muts []json.RawMessage
	for i, m := range []struct {
		c    schema.Collection
		id   string
		data map[string]any
	}{
		{schema.Territories, "t-1", map[string]any{"name": "North", "region": "EU"}},
		{schema.Customers, "c-1", map[string]any{"code": "C1", "name": "Shop, One", "territory_id": "t-1", "grade": "A",
			"contacts": []any{map[string]any{"name": "Ann"}}}},
		{schema.Customers, "c-2", map[string]any{"code": "C2", "name": "Shop Two", "territory_id": "t-1", "grade": "B"}},
	} {
		raw, err := json.Marshal(map[string]any{"mutation_id": string(rune('a' + i)), "collection": m.c, "id": m.id, "op": "upsert", "base_version": 0, "data": m.data})
		require.NoError(t, err)
		muts = append(muts, raw)
	}
	resp, err := eng.Push(context.Background(), schema.Principal{UserID: "u-admin", Role: schema.RoleAdmin}, &schema.PushRequest{Mutations: muts})
	require.NoError(t, err)
	for _, r := range resp.Results {
		require.Equal(t, schema.PushApplied, r.Status, "%+v", r)
	}
}

// runCLI runs the fieldsync command line in this process, with an empty
// environment.
func runCLI(ctx context.Context, args []string, out *bytes.Buffer) error {
	root := newRootCommand(console{getenv: func(string) string { return "" }, stdin: strings.NewReader(""), stdout: out, stderr: out})
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// The backup, restore and export commands of the binary, on the embedded
// store and (export) on MongoDB.
func TestDataCommands(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := sqlitestore.Open(ctx, filepath.Join(dir, "fieldsync.db"))
	require.NoError(t, err)
	seedStore(t, s)
	require.NoError(t, s.Close())

	archive := filepath.Join(t.TempDir(), "b.tgz")
	var out bytes.Buffer
	require.NoError(t, runCLI(ctx, []string{"backup", "-data-dir", dir, "-out", archive}, &out))
	assert.Contains(t, out.String(), "store at seq 3")
	restored := filepath.Join(t.TempDir(), "r")
	require.NoError(t, runCLI(ctx, []string{"restore", "-in", archive, "-data-dir", restored}, &out))
	err = runCLI(ctx, []string{"restore", "-in", archive, "-data-dir", restored}, &out)
	require.Error(t, err, "a folder that is not empty")
	require.Error(t, runCLI(ctx, []string{"backup", "-data-dir", dir}, &out), "-out is required")

	exported := t.TempDir()
	out.Reset()
	require.NoError(t, runCLI(ctx, []string{"export", "-data-dir", restored, "-out", exported, "-format", "csv"}, &out))
	assert.Contains(t, out.String(), "customers: 2")
	data, err := os.ReadFile(filepath.Join(exported, "customers.csv"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, lines, 3)
	assert.True(t, strings.HasPrefix(lines[0], "id,version,updated_at,updated_by,code,name,"), lines[0])
	assert.Contains(t, lines[1], `c-1,1,`)
	assert.Contains(t, lines[1], `"Shop, One"`)
	assert.Contains(t, lines[1], `"[{""name"":""Ann""}]"`)

	t.Run("export from MongoDB", func(t *testing.T) {
		uri := ferretDatabase(t, "fieldsync_export")
		ms, err := mongostore.Open(ctx, uri)
		require.NoError(t, err)
		seedStore(t, ms)
		require.NoError(t, ms.Close())
		exported := t.TempDir()
		out.Reset()
		require.NoError(t, runCLI(ctx, []string{"export", "--out", exported, "--mongo-uri", uri}, &out))
		assert.Contains(t, out.String(), "customers: 2")
		assert.Contains(t, out.String(), "territories: 1")
		data, err := os.ReadFile(filepath.Join(exported, "customers.jsonl"))
		require.NoError(t, err)
		var rows []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var row map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &row))
			rows = append(rows, row)
		}
		require.Len(t, rows, 2)
		ids := []any{rows[0]["id"], rows[1]["id"]}
		assert.ElementsMatch(t, []any{"c-1", "c-2"}, ids)
		assert.Equal(t, "u-admin", rows[0]["updated_by"])
	})
}
