package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
