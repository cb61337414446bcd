package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"

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
	storetest.TestStore(t, func(t *testing.T) sync.Store { return MustOpen(t) })
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
	storetest.TestConvergence(t, func(t *testing.T) []sync.Store {
		path := filepath.Join(t.TempDir(), "fieldsync.db")
		var out []sync.Store
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
