package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/report"
)

func TestListUsers(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	ids := map[string]string{"admin": admin.UserID}
	for _, u := range []map[string]any{
		{"username": "rita", "password": "rita-pass-1", "role": "rep", "territories": []string{"t-north"}},
		{"username": "rob", "password": "rob-pass-12", "role": "rep", "territories": []string{"t-south"}},
		{"username": "max", "password": "max-pass-12", "role": "manager", "territories": []string{"t-north", "t-south"}},
		{"username": "dora", "password": "dora-pass-1", "role": "distributor", "distributor_id": "dist-1"},
	} {
		ids[u["username"].(string)] = ts.createUser(t, admin, u)
	}
	r := ts.call(t, "PATCH", "/v1/admin/users/"+ids["rob"], admin.Access, map[string]any{"active": false})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	names := func(r response) []string {
		t.Helper()
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		out := []string{}
		users, _ := r.Body["users"].([]any)
		for _, u := range users {
			user := u.(map[string]any)
			assert.NotContains(t, user, "password_hash")
			out = append(out, str(user["username"]))
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"admin", "rita", "rob", "max", "dora"}},
		{"?role=rep", []string{"rita", "rob"}},
		{"?territory=t-north", []string{"rita", "max"}},
		{"?role=rep&territory=t-south", []string{"rob"}},
		{"?active=false", []string{"rob"}},
		{"?active=true&role=rep", []string{"rita"}},
		{"?territory=t-west", []string{}},
	} {
		t.Run("filter "+tc.query, func(t *testing.T) {
			got := names(ts.call(t, "GET", "/v1/admin/users"+tc.query, admin.Access, nil))
			assert.ElementsMatch(t, tc.want, got)
		})
	}

	t.Run("pages", func(t *testing.T) {
		seen := []string{}
		cursor, pages := "", 0
		for {
			r := ts.call(t, "GET", "/v1/admin/users?limit=2&cursor="+cursor, admin.Access, nil)
			page := names(r)
			assert.LessOrEqual(t, len(page), 2)
			seen = append(seen, page...)
			pages++
			cursor = str(r.Body["next_cursor"])
			if cursor == "" {
				break
			}
			require.Less(t, pages, 10, "paging ends")
		}
		assert.Equal(t, 3, pages)
		assert.ElementsMatch(t, []string{"admin", "rita", "rob", "max", "dora"}, seen, "every user once")
		r := ts.call(t, "GET", "/v1/admin/users?limit=5", admin.Access, nil)
		assert.Len(t, names(r), 5)
		assert.Equal(t, "", str(r.Body["next_cursor"]), "a full last page says there is no more")
	})

	t.Run("bad queries", func(t *testing.T) {
		for query, field := range map[string]string{
			"?role=boss":         "role",
			"?territory=t%20x":   "territory",
			"?active=maybe":      "active",
			"?limit=0":           "limit",
			"?limit=501":         "limit",
			"?limit=ten":         "limit",
			"?cursor=%%%":        "cursor",
			"?cursor=Zm9vIGJhcg": "cursor", // "foo bar": not an id
		} {
			r := ts.call(t, "GET", "/v1/admin/users"+query, admin.Access, nil)
			assert.Equal(t, http.StatusUnprocessableEntity, r.Status, query)
			assert.Equal(t, "validation_failed", r.ErrorCode(), query)
			e, _ := r.Body["error"].(map[string]any)
			assert.Equal(t, field, e["field"], query)
		}
	})

	t.Run("admins only", func(t *testing.T) {
		manager := ts.login(t, "max", "max-pass-12", "d-max")
		r := ts.call(t, "GET", "/v1/admin/users", manager.Access, nil)
		assert.Equal(t, http.StatusForbidden, r.Status)
		assert.Equal(t, http.StatusUnauthorized, ts.call(t, "GET", "/v1/admin/users", "", nil).Status)
	})
}

// Passwords the server sets are hashed at its configured work factor, and
// a factor bcrypt does not take is refused when the server is built.
func TestPasswordCost(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.PasswordCost = 5 })
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	id := ts.createUser(t, admin, map[string]any{"username": "rita", "password": "rita-pass-1", "role": "rep", "territories": []string{"t-north"}})
	costOf := func() int {
		u, err := ts.Store.User(context.Background(), id)
		require.NoError(t, err)
		cost, err := bcrypt.Cost([]byte(u.PasswordHash))
		require.NoError(t, err)
		return cost
	}
	assert.Equal(t, 5, costOf(), "a new user")
	r := ts.call(t, "PATCH", "/v1/admin/users/"+id, admin.Access, map[string]any{"password": "rita-pass-2"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	assert.Equal(t, 5, costOf(), "a changed password")
	ts.login(t, "rita", "rita-pass-2", "d-rita")

	srv := servertest.Start(t, servertest.Options{})
	for _, cost := range []int{bcrypt.MinCost - 1, bcrypt.MaxCost + 1} {
		cfg := server.Config{Store: srv.Store, Engine: srv.Engine, Reports: report.New(srv.Store, nil), Secret: srv.Secret,
			Photos: media.NewPhotos(nil, 1), PasswordCost: cost}
		_, err := server.New(cfg)
		assert.ErrorContains(t, err, fmt.Sprintf("password cost %d is outside bcrypt's 4 to 31", cost))
	}
	hash, err := server.HashPassword("rita-pass-3", 0)
	require.NoError(t, err)
	cost, err := bcrypt.Cost([]byte(hash))
	require.NoError(t, err)
	assert.Equal(t, server.DefaultPasswordCost, cost, "0 stands for the default")
}
