package sqlitestore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// MustOpen opens a store in a fresh temp dir, closed when the test ends.
func MustOpen(tb testing.TB) *sqlitestore.Store {
	tb.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(tb.TempDir(), "fieldsync.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) storetest.Store { return MustOpen(t) })
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	s, err := sqlitestore.Open(ctx, path)
	require.NoError(t, err)
	require.NoError(t, s.CreateUser(ctx, storetestUser()))
	require.NoError(t, s.Close())

	s, err = sqlitestore.Open(ctx, path)
	require.NoError(t, err)
	defer s.Close()
	n, err := s.CountUsers(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func storetestUser() *schema.User {
	return &schema.User{ID: "u-1", Username: "ana", PasswordHash: "x", Role: schema.RoleAdmin, Active: true}
}

// Two stores opened on one file behave as two fieldsync processes do.
func TestConvergenceOfTwoHandlesOnOneFile(t *testing.T) {
	storetest.TestConvergence(t, func(t *testing.T) []storetest.Store {
		path := filepath.Join(t.TempDir(), "fieldsync.db")
		var out []storetest.Store
		for range 2 {
			s, err := sqlitestore.Open(context.Background(), path)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			out = append(out, s)
		}
		return out
	}, 150)
}

// Every version written through the engine has exactly one audit entry:
// the entry is inserted in the record's own transaction, so there is
// nothing to lose.
func TestAuditOfEveryVersion(t *testing.T) {
	storetest.TestAuditSurvivesLostProjection(t, MustOpen(t), func(*testing.T) {})
}

// TestChangesLoadOnlyThePage reads a page of big records held through
// several tokens: the store allocates about the page, not a page of
// records per token.
func TestChangesLoadOnlyThePage(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t)
	tokens := []string{"customers|all", "customers|terr:t-1", "customers|dist:d-1"}
	data := json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 64<<10)))
	for i := range 100 {
		r := &sync.Record{Collection: schema.Customers, ID: fmt.Sprintf("c-%03d", i), Version: 1, UpdatedAt: time.Now(),
			Data: data, Tokens: tokens, Refs: []string{}}
		require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, 0) }))
	}
	wm, err := s.Watermark(ctx)
	require.NoError(t, err)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	chs, err := s.Changes(ctx, tokens, 0, wm, 100, 128<<10)
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	require.Len(t, chs, 2, "the page ends with the record that reaches 128 KiB")
	allocated := after.TotalAlloc - before.TotalAlloc
	// A page of 100 records per token would be 3 × 100 × 64 KiB ≈ 19 MiB.
	assert.Less(t, allocated, uint64(3<<20), "allocated %d bytes for a page of 2 records", allocated)
}

// fileSize returns the size of the database file with its write-ahead log
// checkpointed: the store is closed first.
func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Size()
}

// TestSweepGivesSpaceBack stores a month of answers, sweeps all but the
// last few days, and checks that the file shrinks to its live data (what
// a compacting copy of it holds) plus at most 20 %.
func TestSweepGivesSpaceBack(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	s, err := sqlitestore.Open(ctx, path)
	require.NoError(t, err)
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	body := json.RawMessage(fmt.Sprintf(`{"mutation_id":"x","status":"rejected","error":{"message":%q}}`, strings.Repeat("no ", 100)))
	for day := range 30 {
		require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
			for i := range 500 {
				a := &sync.Answer{UserID: "u-1", MutationID: fmt.Sprintf("m-%02d-%03d", day, i), Body: body, At: start.AddDate(0, 0, day)}
				if err := tx.SaveAnswer(ctx, a); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	require.NoError(t, s.Close())
	full := fileSize(t, path)

	s, err = sqlitestore.Open(ctx, path)
	require.NoError(t, err)
	n, err := s.SweepAnswers(ctx, start.AddDate(0, 0, 27))
	require.NoError(t, err)
	assert.Equal(t, 27*500, n)
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	_, err = s.Snapshot(ctx, copyPath)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	swept, live := fileSize(t, path), fileSize(t, copyPath)

	assert.Less(t, swept, full/2, "sweeping 90 %% of the answers shrinks the file (%d -> %d bytes)", full, swept)
	assert.LessOrEqual(t, float64(swept), 1.2*float64(live), "file %d bytes, live data %d bytes", swept, live)
}
