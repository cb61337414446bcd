// Package storetest is the conformance suite every record store adapter
// must pass: call TestStore from the adapter's tests with a constructor of
// fresh, empty stores. Its Bed, an engine and the reports on a store with
// a team of users, is the test bed of the suite's scenarios and of the
// engine's and the reports' own tests.
package storetest

import (
	"context"
	"fmt"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

// Store is everything a record store adapter provides: what the engine
// needs (Store), what the server keeps of users and logins
// (server.Store), what reports read (report.Store), and Close.
type Store interface {
	sync.Store
	server.Store
	report.Store
	// Close releases the store's resources.
	Close() error
}

// TestStore runs the whole suite. newStore returns a fresh, empty store and
// arranges for it to be closed when the test ends.
func TestStore(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, newStore(t)) })
	t.Run("ListUsers", func(t *testing.T) { testListUsers(t, newStore(t)) })
	t.Run("Logins", func(t *testing.T) { testLogins(t, newStore(t)) })
	t.Run("LoginFailures", func(t *testing.T) { testLoginFailures(t, newStore(t)) })
	t.Run("Records", func(t *testing.T) { testRecords(t, newStore) })
	t.Run("Reports", func(t *testing.T) { testReports(t, newStore) })
	t.Run("Sizes", func(t *testing.T) { testSizes(t, newStore(t)) })
	t.Run("Plans", func(t *testing.T) { testPlans(t, newStore) })
}

// at is a fixed instant, rounded as stores keep times.
var at = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func newUser(id, name string) *schema.User {
	return &schema.User{
		ID: id, Username: name, PasswordHash: "hash-" + id, Role: schema.RoleRep,
		Territories: []string{"t-1", "t-2"}, Active: true, CreatedAt: at, UpdatedAt: at,
	}
}

func testUsers(t *testing.T, s Store) {
	ctx := context.Background()
	n, err := s.CountUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "a new store has no users")

	u := newUser("u-1", "ana")
	require.NoError(t, s.CreateUser(ctx, u))
	assert.ErrorIs(t, s.CreateUser(ctx, newUser("u-2", "ana")), sync.ErrExists, "taken username")

	got, err := s.User(ctx, "u-1")
	require.NoError(t, err)
	assert.Equal(t, u, got)
	got, err = s.UserByName(ctx, "ana")
	require.NoError(t, err)
	assert.Equal(t, u, got)
	_, err = s.User(ctx, "u-9")
	assert.ErrorIs(t, err, sync.ErrNotFound)
	_, err = s.UserByName(ctx, "nobody")
	assert.ErrorIs(t, err, sync.ErrNotFound)

	u.Role, u.Territories, u.Active, u.PasswordHash = schema.RoleManager, []string{"t-3"}, false, "new-hash"
	u.UpdatedAt = at.Add(time.Hour)
	require.NoError(t, s.UpdateUser(ctx, u))
	got, err = s.User(ctx, "u-1")
	require.NoError(t, err)
	assert.Equal(t, u, got)
	assert.ErrorIs(t, s.UpdateUser(ctx, newUser("u-9", "zed")), sync.ErrNotFound)

	noTerritories := newUser("u-3", "bo")
	noTerritories.Territories = nil
	require.NoError(t, s.CreateUser(ctx, noTerritories))
	got, err = s.User(ctx, "u-3")
	require.NoError(t, err)
	assert.Empty(t, got.Territories)

	n, err = s.CountUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

func testListUsers(t *testing.T, s Store) {
	ctx := context.Background()
	users := []*schema.User{newUser("u-1", "ana"), newUser("u-2", "bo"), newUser("u-3", "cy"), newUser("u-4", "di"), newUser("u-5", "ed")}
	users[1].Role, users[1].Territories = schema.RoleManager, []string{"t-2"}
	users[2].Active = false
	users[3].Role, users[3].Territories = schema.RoleAdmin, nil
	users[4].Territories = []string{"t-10"}
	for _, u := range users {
		require.NoError(t, s.CreateUser(ctx, u))
	}
	yes, no := true, false
	idsOf := func(us []*schema.User) []string {
		ids := []string{}
		for _, u := range us {
			ids = append(ids, u.ID)
		}
		return ids
	}
	for _, tc := range []struct {
		name   string
		filter sync.UserFilter
		want   []string
	}{
		{"all", sync.UserFilter{}, []string{"u-1", "u-2", "u-3", "u-4", "u-5"}},
		{"role", sync.UserFilter{Role: schema.RoleRep}, []string{"u-1", "u-3", "u-5"}},
		{"territory, whole ids only", sync.UserFilter{Territory: "t-1"}, []string{"u-1", "u-3"}},
		{"territory and role", sync.UserFilter{Territory: "t-2", Role: schema.RoleManager}, []string{"u-2"}},
		{"active", sync.UserFilter{Active: &yes}, []string{"u-1", "u-2", "u-4", "u-5"}},
		{"inactive", sync.UserFilter{Active: &no}, []string{"u-3"}},
		{"first page", sync.UserFilter{Limit: 2}, []string{"u-1", "u-2"}},
		{"next page", sync.UserFilter{After: "u-2", Limit: 2}, []string{"u-3", "u-4"}},
		{"last page", sync.UserFilter{After: "u-4", Limit: 2}, []string{"u-5"}},
		{"paged and filtered", sync.UserFilter{After: "u-1", Role: schema.RoleRep, Limit: 1}, []string{"u-3"}},
		{"none", sync.UserFilter{Territory: "t-9"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListUsers(ctx, tc.filter)
			require.NoError(t, err)
			assert.Equal(t, tc.want, idsOf(got))
		})
	}
	got, err := s.ListUsers(ctx, sync.UserFilter{Role: schema.RoleManager})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, users[1], got[0], "whole users come back")
}

func testLogins(t *testing.T, s Store) {
	ctx := context.Background()
	require.NoError(t, s.CreateUser(ctx, newUser("u-1", "ana")))
	l := &sync.Login{ID: "l-1", UserID: "u-1", DeviceID: "d-1", Generation: 1, CreatedAt: at}
	require.NoError(t, s.CreateLogin(ctx, l))
	require.NoError(t, s.CreateLogin(ctx, &sync.Login{ID: "l-2", UserID: "u-1", DeviceID: "d-2", Generation: 1, CreatedAt: at}))

	got, err := s.Login(ctx, "l-1")
	require.NoError(t, err)
	assert.Equal(t, l, got)
	assert.False(t, got.Revoked())
	_, err = s.Login(ctx, "l-9")
	assert.ErrorIs(t, err, sync.ErrNotFound)

	gotLogin, gotUser, err := s.LoginUser(ctx, "l-1")
	require.NoError(t, err)
	assert.Equal(t, l, gotLogin)
	assert.Equal(t, "u-1", gotUser.ID)
	assert.Equal(t, "ana", gotUser.Username)
	_, _, err = s.LoginUser(ctx, "l-9")
	assert.ErrorIs(t, err, sync.ErrNotFound)

	require.NoError(t, s.AdvanceLogin(ctx, "l-1", 1))
	assert.ErrorIs(t, s.AdvanceLogin(ctx, "l-1", 1), sync.ErrStale, "an old generation cannot advance")
	got, err = s.Login(ctx, "l-1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), got.Generation)

	t.Run("only one of many concurrent advances wins", func(t *testing.T) {
		var (
			wg   gosync.WaitGroup
			mu   gosync.Mutex
			wins int
		)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s.AdvanceLogin(ctx, "l-2", 1) == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, wins)
	})

	require.NoError(t, s.RevokeLogin(ctx, "l-1", at.Add(time.Minute)))
	got, err = s.Login(ctx, "l-1")
	require.NoError(t, err)
	assert.True(t, got.Revoked())
	gotLogin, _, err = s.LoginUser(ctx, "l-1")
	require.NoError(t, err)
	assert.True(t, gotLogin.Revoked(), "LoginUser reads the login as it is now")
	u := newUser("u-1", "ana")
	u.Role, u.Active, u.Territories = schema.RoleManager, false, []string{"t-9"}
	require.NoError(t, s.UpdateUser(ctx, u))
	_, gotUser, err = s.LoginUser(ctx, "l-2")
	require.NoError(t, err)
	assert.Equal(t, schema.RoleManager, gotUser.Role, "and the user as it is now")
	assert.False(t, gotUser.Active)
	assert.Equal(t, []string{"t-9"}, gotUser.Territories)
	assert.ErrorIs(t, s.AdvanceLogin(ctx, "l-1", 2), sync.ErrStale, "a revoked login cannot advance")

	require.NoError(t, s.RevokeUserLogins(ctx, "u-1", at.Add(2*time.Minute)))
	got, err = s.Login(ctx, "l-2")
	require.NoError(t, err)
	assert.True(t, got.Revoked())
}

func testLoginFailures(t *testing.T, s Store) {
	ctx := context.Background()
	const window = 15 * time.Minute
	n, _, err := s.LoginFailures(ctx, "ana", at)
	require.NoError(t, err)
	assert.Equal(t, 0, n)

	for i := 1; i <= 3; i++ {
		n, end, err := s.NoteLoginFailure(ctx, "ana", at.Add(time.Duration(i)*time.Minute), window)
		require.NoError(t, err)
		assert.Equal(t, i, n, fmt.Sprintf("failure %d", i))
		assert.Equal(t, at.Add(time.Minute+window), end, "the window starts at the first failure")
	}
	n, _, err = s.LoginFailures(ctx, "ana", at.Add(5*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	n, _, err = s.LoginFailures(ctx, "bo", at.Add(5*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, 0, n, "counted per username")

	later := at.Add(time.Hour)
	n, _, err = s.LoginFailures(ctx, "ana", later)
	require.NoError(t, err)
	assert.Equal(t, 0, n, "the window has closed")
	n, end, err := s.NoteLoginFailure(ctx, "ana", later, window)
	require.NoError(t, err)
	assert.Equal(t, 1, n, "a new window starts")
	assert.Equal(t, later.Add(window), end)

	require.NoError(t, s.ClearLoginFailures(ctx, "ana"))
	n, _, err = s.LoginFailures(ctx, "ana", later)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
}
