package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// TestCommitLeavesCheckpointToCheckpointer writes 8 MB in one unit of
// work: its commit leaves the pages in the write-ahead log (SQLite's own
// checkpoint would have copied them into the file as part of the commit,
// past 1,000 pages), and the store's checkpointer copies them soon after.
func TestCommitLeavesCheckpointToCheckpointer(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	s, err := Open(ctx, path)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	s.ckpt.close()
	s.ckpt = nil
	size := func() int64 {
		t.Helper()
		fi, err := os.Stat(path)
		require.NoError(t, err)
		return fi.Size()
	}
	before := size()

	data := json.RawMessage(fmt.Sprintf(`{"notes":%q}`, strings.Repeat("n", 8000)))
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		for i := range 1000 {
			r := &sync.Record{Collection: schema.Customers, ID: fmt.Sprintf("c-%d", i), Version: 1, UpdatedAt: time.Now(),
				UpdatedBy: "u-1", Data: data, Tokens: []string{"customers|all"}}
			if err := tx.Put(ctx, r, 0); err != nil {
				return err
			}
		}
		return nil
	}))
	assert.Less(t, size(), before+1<<20, "the commit copied the log into the file")

	s.ckpt = startCheckpointer(s.r)
	s.ckpt.poke()
	assert.Eventually(t, func() bool { return size() > before+8<<20 }, 10*time.Second, 20*time.Millisecond,
		"the checkpointer copies the log into the file")
}

// TestCloseTwice closes a store twice: the second does nothing.
func TestCloseTwice(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	assert.NotPanics(t, func() { s.Close() })
}
