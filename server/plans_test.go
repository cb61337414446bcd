package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
)

func TestPlansOverHTTP(t *testing.T) {
	f := newFieldTeam(t, nil)
	ts := f.ts
	r := ts.call(t, "POST", "/v1/targets/split", f.mgr.Access, map[string]any{"rep_id": f.rep1.UserID, "year": 2027, "order_amount": 18000000, "visits": 1440})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Len(t, r.Body["targets"], 12)
	jan := r.Body["targets"].([]any)[0].(map[string]any)
	assert.Equal(t, "targets", jan["collection"])
	assert.Equal(t, 1500000.0, jan["data"].(map[string]any)["order_amount"])

	runScenarios(t, ts, []scenario{
		{"a rep may not split", "POST", "/v1/targets/split", f.rep1, map[string]any{"rep_id": f.rep1.UserID, "year": 2027}, 403, "forbidden"},
		{"bad weights", "POST", "/v1/targets/split", f.admin, map[string]any{"rep_id": f.rep1.UserID, "year": 2027, "weights": []int{1, 2}}, 422, "validation_failed"},
		{"not json", "POST", "/v1/targets/split", f.admin, "{", 400, "bad_request"},
		{"targets report", "GET", "/v1/reports/targets?from=2027-01&to=2027-12&tz=Asia/Shanghai", f.mgr, nil, 200, ""},
		{"a rep reads its own targets", "GET", "/v1/reports/targets?from=2027-01&to=2027-12", f.rep1, nil, 200, ""},
		{"not another rep's", "GET", "/v1/reports/targets?from=2027-01&to=2027-12&rep_id=" + f.rep2.UserID, f.rep1, nil, 403, "forbidden"},
		{"bad months", "GET", "/v1/reports/targets?from=2027-13&to=2027-12", f.mgr, nil, 422, "validation_failed"},
		{"daily report", "GET", "/v1/reports/daily?date=2026-11-23&tz=Europe/Berlin", f.mgr, nil, 200, ""},
		{"a rep reads its own day", "GET", "/v1/reports/daily?date=2026-11-23", f.rep1, nil, 200, ""},
		{"daily needs a date", "GET", "/v1/reports/daily", f.mgr, nil, 422, "validation_failed"},
		{"credit report", "GET", "/v1/reports/credit?min_ratio=0.8", f.mgr, nil, 200, ""},
		{"credit not for reps", "GET", "/v1/reports/credit", f.rep1, nil, 403, "forbidden"},
		{"bad ratio", "GET", "/v1/reports/credit?min_ratio=lots", f.mgr, nil, 422, "validation_failed"},
		{"audit", "GET", "/v1/audit?limit=5", f.admin, nil, 200, ""},
		{"audit not for reps", "GET", "/v1/audit", f.rep1, nil, 403, "forbidden"},
		{"audit bad cursor", "GET", "/v1/audit?cursor=!!", f.admin, nil, 400, "bad_request"},
		{"audit bad limit", "GET", "/v1/audit?limit=0", f.admin, nil, 422, "validation_failed"},
		{"no token", "GET", "/v1/reports/daily?date=2026-11-23", session{}, nil, 401, "unauthorized"},
	})

	t.Run("the daily report counts rep1's open visit", func(t *testing.T) {
		r := ts.call(t, "GET", "/v1/reports/daily?date=2026-11-23", f.rep1.Access, nil)
		require.Equal(t, http.StatusOK, r.Status)
		reps := r.Body["reps"].([]any)
		require.Len(t, reps, 1)
		row := reps[0].(map[string]any)
		assert.Equal(t, f.rep1.UserID, row["rep_id"])
		assert.Equal(t, 1.0, row["visits"])
		assert.Equal(t, 1.0, row["open_visits"])
	})
}

// Sign-ins, refused sign-ins, sign-outs and user changes are in the audit
// trail, and no password, hash or token is.
func TestAuditOfSignInsAndUsers(t *testing.T) {
	f := newFieldTeam(t, nil)
	ts := f.ts
	r := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "rep1", "password": "not-rep1-password", "device_id": "phone-x"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	r = ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "nobody", "password": "secret-typed-here", "device_id": "phone-y"})
	require.Equal(t, http.StatusUnauthorized, r.Status)
	s := ts.login(t, "rep1", "rep1-password", "phone-z")
	require.Equal(t, http.StatusNoContent, ts.call(t, "POST", "/v1/auth/logout", s.Access, nil).Status)
	r = ts.call(t, "PATCH", "/v1/admin/users/"+f.rep2.UserID, f.admin.Access, map[string]any{"territories": []string{"t-1", "t-2"}, "password": "rep2-new-password"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	r = ts.call(t, "GET", "/v1/audit?limit=1000", f.admin.Access, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	for _, secret := range []string{"rep1-password", "not-rep1-password", "secret-typed-here", "rep2-new-password", "nobody", "$2a$", s.Access, s.Refresh, f.admin.Access} {
		assert.NotContains(t, string(r.Raw), secret)
	}
	count := map[string]int{}
	var failed []map[string]any
	for _, e := range r.Body["entries"].([]any) {
		m := e.(map[string]any)
		count[m["action"].(string)]++
		if m["action"] == "login_failed" {
			failed = append(failed, m)
		}
		if m["action"] == "user_update" {
			assert.Equal(t, f.rep2.UserID, m["id"])
			changes := m["changes"].(map[string]any)
			assert.Equal(t, map[string]any{"from": []any{"t-2"}, "to": []any{"t-1", "t-2"}}, changes["territories"])
			assert.Equal(t, map[string]any{"from": nil, "to": "(changed)"}, changes["password"])
		}
	}
	// Signed in: admin, rep1, rep2, mgr by the team, rep1 again here.
	assert.Equal(t, 5, count["login"])
	assert.Equal(t, 2, count["login_failed"])
	assert.Equal(t, 1, count["logout"])
	assert.Equal(t, 4, count["user_create"], "the first admin and the team")
	assert.Equal(t, 1, count["user_update"])
	assert.GreaterOrEqual(t, count["create"], 5, "the team's records")
	require.Len(t, failed, 2)
	devices := []string{failed[0]["device_id"].(string), failed[1]["device_id"].(string)}
	assert.ElementsMatch(t, []string{"phone-x", "phone-y"}, devices)
	for _, e := range failed {
		if e["device_id"] == "phone-x" {
			assert.Equal(t, f.rep1.UserID, e["user_id"], "a known user's refused sign-in names it")
		} else {
			assert.Equal(t, "", e["user_id"], "an unknown name is not recorded")
		}
	}

	r = ts.call(t, "GET", "/v1/audit?limit=1000", f.mgr.Access, nil)
	require.Equal(t, http.StatusOK, r.Status)
	for _, e := range r.Body["entries"].([]any) {
		m := e.(map[string]any)
		assert.NotContains(t, []string{"login", "login_failed", "logout", "user_create", "user_update"}, m["action"])
		assert.False(t, strings.HasPrefix(m["id"].(string), "t-2") || m["id"] == "c-2", "a manager sees only its territories: %v", m)
	}
}

func TestImportOverHTTP(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.ImportLimit = 200 })
	admin := ts.login(t, adminName, adminPassword, "laptop")
	send := func(path, contentType, body string) response {
		t.Helper()
		req, err := http.NewRequest("POST", ts.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+admin.Access)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		r := response{Status: resp.StatusCode, Raw: raw}
		require.NoError(t, json.Unmarshal(raw, &r.Body), string(raw))
		return r
	}
	file := "name,region\nNorth,EU\nSouth,EU\n"
	r := send("/v1/admin/import/territories?dry_run=true", "text/csv", file)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	assert.Equal(t, 2.0, r.Body["created"])
	r = send("/v1/admin/import/territories", "text/csv; charset=utf-8", file)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	assert.Equal(t, 2.0, r.Body["created"])
	r = send("/v1/admin/import/territories", "text/csv", file)
	assert.Equal(t, 2.0, r.Body["unchanged"], "the same file twice changes nothing")

	tests := []struct {
		name, path, ctype, body string
		status                  int
		code                    string
	}{
		{"not CSV", "/v1/admin/import/territories", "application/json", "{}", 415, "unsupported_media_type"},
		{"not importable", "/v1/admin/import/orders", "text/csv", file, 404, "not_found"},
		{"bad switch", "/v1/admin/import/territories?dry_run=yes", "text/csv", file, 422, "validation_failed"},
		{"over the limit", "/v1/admin/import/territories", "text/csv", "name,region\n" + strings.Repeat("Somewhere,EU\n", 20), 413, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(tt.path, tt.ctype, tt.body)
			assert.Equal(t, tt.status, r.Status, string(r.Raw))
			assert.Equal(t, tt.code, r.ErrorCode())
		})
	}
}
