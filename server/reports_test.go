package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReportsOverHTTP(t *testing.T) {
	f := newFieldTeam(t, nil)
	ts := f.ts
	ts.createUser(t, f.admin, map[string]any{"username": "mgr2", "password": "mgr2-password", "role": "manager", "territories": []string{"t-2"}})
	mgr2 := ts.login(t, "mgr2", "mgr2-password", "laptop-2")
	runScenarios(t, ts, []scenario{
		{"manager reads coverage", "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30&tz=Europe/Berlin", f.mgr, nil, 200, ""},
		{"UTC by default", "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", f.mgr, nil, 200, ""},
		{"admin reads one territory", "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30&territory_id=t-2", f.admin, nil, 200, ""},
		{"a rep may not", "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", f.rep1, nil, 403, "forbidden"},
		{"another territory", "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30&territory_id=t-2", f.mgr, nil, 403, "forbidden"},
		{"bad time zone", "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30&tz=Mars/Olympus", f.mgr, nil, 422, "validation_failed"},
		{"no dates", "GET", "/v1/reports/coverage", f.mgr, nil, 422, "validation_failed"},
		{"unvisited", "GET", "/v1/reports/unvisited?days=30", f.mgr, nil, 200, ""},
		{"unvisited needs days", "GET", "/v1/reports/unvisited", f.mgr, nil, 422, "validation_failed"},
		{"devices", "GET", "/v1/reports/devices", f.mgr, nil, 200, ""},
		{"devices not for reps", "GET", "/v1/reports/devices", f.rep1, nil, 403, "forbidden"},
	})

	t.Run("a manager sees only its territories' reps", func(t *testing.T) {
		r := ts.call(t, "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", f.mgr.Access, nil)
		require.Equal(t, http.StatusOK, r.Status)
		reps := r.Body["reps"].([]any)
		require.Len(t, reps, 1)
		row := reps[0].(map[string]any)
		assert.Equal(t, f.rep1.UserID, row["rep_id"])
		assert.Equal(t, float64(1), row["visits"], "rep1's visit on Nov 23")
		assert.NotNil(t, row["last_push_at"], "rep1's phone pushed")

		r = ts.call(t, "GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", mgr2.Access, nil)
		require.Equal(t, http.StatusOK, r.Status)
		reps = r.Body["reps"].([]any)
		require.Len(t, reps, 1)
		assert.Equal(t, f.rep2.UserID, reps[0].(map[string]any)["rep_id"])

		r = ts.call(t, "GET", "/v1/reports/devices", f.mgr.Access, nil)
		devices := r.Body["devices"].([]any)
		require.Len(t, devices, 1)
		assert.Equal(t, "phone-1", devices[0].(map[string]any)["device_id"])
	})
}
