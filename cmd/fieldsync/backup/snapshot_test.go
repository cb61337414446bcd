package backup

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

func customer(t *testing.T, mid, id string) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"mutation_id": mid, "collection": schema.Customers, "id": id, "op": "upsert",
		"data": map[string]any{"code": id, "name": "Shop " + id, "territory_id": "t-1", "grade": "B", "address": "12 Main Street, Springfield"}})
	require.NoError(t, err)
	return raw
}

// A page copy of a store that a writer commits to between every two of
// its steps never restarts: it takes one step a page (a restart would
// begin again at the first page), and the copy is whole and at the seq it
// reports.
func TestCopyPagesWhileAWriterCommits(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.Options{})
	u, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(t, err)
	admin := u.Principal("laptop", "l-1")
	push := func(muts ...json.RawMessage) {
		resp, err := srv.Engine.Push(ctx, admin, &schema.PushRequest{Mutations: muts})
		require.NoError(t, err)
		for _, r := range resp.Results {
			require.Equal(t, schema.PushApplied, r.Status)
		}
	}
	raw, err := json.Marshal(map[string]any{"mutation_id": "t", "collection": schema.Territories, "id": "t-1", "op": "upsert",
		"data": map[string]any{"name": "North", "region": "EU"}})
	require.NoError(t, err)
	push(raw)
	for n := 0; n < 2000; n += 500 {
		var muts []json.RawMessage
		for i := n; i < n+500; i++ {
			muts = append(muts, customer(t, fmt.Sprintf("s-%d", i), fmt.Sprintf("c-%d", i)))
		}
		push(muts...)
	}

	var commits atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			push(customer(t, fmt.Sprintf("w-%d", i), fmt.Sprintf("w-%d", i)))
			commits.Add(1)
		}
	}()
	for commits.Load() < 5 {
		time.Sleep(time.Millisecond)
	}
	before := commits.Load()
	dst := filepath.Join(t.TempDir(), "copy.db")
	seq, steps, err := copyPages(ctx, filepath.Join(srv.Dir, DatabaseName), dst, 1)
	during := commits.Load() - before
	close(stop)
	<-done
	require.NoError(t, err)
	require.Positive(t, during, "the writer committed while the copy ran")

	db, err := sql.Open("sqlite", "file:"+dst+"?mode=ro")
	require.NoError(t, err)
	defer db.Close()
	var pages, copySeq int64
	var check string
	require.NoError(t, db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages))
	require.NoError(t, db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check))
	require.NoError(t, db.QueryRowContext(ctx, "SELECT seq FROM feed WHERE one = 1").Scan(&copySeq))
	assert.Equal(t, "ok", check)
	assert.Equal(t, seq, copySeq, "the copy is at the seq read in its transaction")
	assert.Equal(t, pages, int64(steps), "one step a page: no restart while %d commits landed", during)
	t.Logf("%d pages in %d steps while %d commits landed", pages, steps, during)
}

// A snapshot fails, creating nothing, for an unknown method and for a
// data dir without a store.
func TestSnapshotRefuses(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		method Method
		want   string
	}{
		{name: "unknown method", method: "rsync", want: "unknown backup method"},
		{name: "no store in the data dir", method: PageCopy, want: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir, out := t.TempDir(), t.TempDir()
			_, err := snapshot(ctx, tt.method, nil, dataDir, filepath.Join(out, DatabaseName))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			for _, dir := range []string{dataDir, out} {
				entries, err := os.ReadDir(dir)
				require.NoError(t, err)
				assert.Empty(t, entries, "nothing created in %s", dir)
			}
		})
	}
}
