package report_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// The golden scenario (testdata/reports/scenario.json), November 2026:
//
//	rep1 (t-north) plans: Nov 2 cn1 cn2 · Nov 3 cn1 cn3 · Nov 11 cn2            = 5 stops
//	   visits: v1 cn1 Nov 2 08:00Z · v2 cn2 Nov 2 · v3 cn3 Nov 3 (1.1 km off, outside
//	   the geofence) · v4 cn2 Nov 10 23:30Z (Nov 11 00:30 in Berlin) · v5 cn3 Nov 15
//	   (unplanned, never checked out: open) · v11 cn5 Oct 31 (before the month)
//	   orders: o1 submitted and o2 draft on v1, o3 cancelled on v3, o4 on v5
//	   → Berlin: visited cn1/2, cn2/2, cn3/3, cn2/11 = 4 of 5; unplanned 1 (v5);
//	     orders 3 (o3 cancelled); struck visits v1, v5 = 2 of 5; geofence 4 of 5
//	   → UTC: v4 falls on Nov 10, so 3 of 5 visited and 2 unplanned
//	rep2 (t-north) plans: Nov 2 cn3 · Nov 20 cn1 cn2                            = 3 stops
//	   visits: v6 cn3 Nov 2 · v7 cn1 Nov 20 · v12 cn2 Nov 30 23:30Z (Dec 1 in Berlin)
//	   orders: o5 on v7
//	   → Berlin: 2 of 3, 2 visits, 0 unplanned, 1 order, strike 1/2
//	   → UTC: v12 counts too: 3 visits, 1 unplanned, strike 1/3
//	rep3 (t-south) plans: Nov 5 cs1 cs2 · Nov 6 cs1                             = 3 stops
//	   visits: v8 cs1 Nov 5 · v9 cs1 Nov 6 · v10 cs2 Nov 25 (unplanned); no orders
//	   → 2 of 3, 3 visits, 1 unplanned, strike 0
//	Unvisited for 30 days on Dec 2 12:00Z (since Nov 2 12:00Z): cn4 and cs3 never,
//	cn5 last on Oct 31; every other customer was visited since.

type scenario struct {
	Now    time.Time `json:"now"`
	Pushes []struct {
		User      string            `json:"user"`
		Mutations []schema.Mutation `json:"mutations"`
	} `json:"pushes"`
}

func loadScenario(t *testing.T) *storetest.Bed {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "scenario.json"))
	require.NoError(t, err)
	var sc scenario
	require.NoError(t, json.Unmarshal(raw, &sc))
	e := newEnv(t)
	e.Now = sc.Now
	e.AddUser("rep3", schema.RoleRep, "", "t-south")
	e.AddUser("north", schema.RoleManager, "", "t-north")
	e.AddUser("south", schema.RoleManager, "", "t-south")
	e.SetScope("rep1", schema.RoleRep, "t-north")
	e.SetScope("rep2", schema.RoleRep, "t-north")
	e.SetScope("mgr", schema.RoleManager, "t-elsewhere")
	for _, push := range sc.Pushes {
		muts := make([]storetest.Mut, len(push.Mutations))
		for i, m := range push.Mutations {
			muts[i] = storetest.Mut{ID: m.MutationID, Op: m.Op, Collection: m.Collection, RecordID: m.ID, Base: m.BaseVersion}
			if len(m.Data) > 0 {
				muts[i].Data = m.Data
			}
		}
		e.OK(push.User, muts...)
	}
	return e
}

func golden(t *testing.T, name string, got any) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	raw, err := json.Marshal(got)
	require.NoError(t, err)
	assert.JSONEq(t, string(want), string(raw), name)
}

func TestReportsGolden(t *testing.T) {
	e := loadScenario(t)
	ctx := context.Background()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)

	report, err := e.Reports.Coverage(ctx, e.Users["admin"], "2026-11-01", "2026-11-30", "", berlin)
	require.NoError(t, err)
	golden(t, "coverage-admin-berlin.json", report)

	report, err = e.Reports.Coverage(ctx, e.Users["admin"], "2026-11-01", "2026-11-30", "", time.UTC)
	require.NoError(t, err)
	golden(t, "coverage-admin-utc.json", report)

	report, err = e.Reports.Coverage(ctx, e.Users["north"], "2026-11-01", "2026-11-30", "", berlin)
	require.NoError(t, err)
	golden(t, "coverage-north-berlin.json", report)

	report, err = e.Reports.Coverage(ctx, e.Users["admin"], "2026-11-01", "2026-11-30", "t-north", berlin)
	require.NoError(t, err)
	golden(t, "coverage-north-berlin.json", report) // the admin asking for one territory

	unvisited, err := e.Reports.Unvisited(ctx, e.Users["admin"], 30, "")
	require.NoError(t, err)
	golden(t, "unvisited-admin-30.json", map[string]any{"customers": unvisited})
}

func TestReportScope(t *testing.T) {
	e := loadScenario(t)
	ctx := context.Background()
	south, err := e.Reports.Coverage(ctx, e.Users["south"], "2026-11-01", "2026-11-30", "", time.UTC)
	require.NoError(t, err)
	require.Len(t, south.Reps, 1, "a manager sees only the reps of its territories")
	assert.Equal(t, "u-rep3", south.Reps[0].RepID)
	unvisited, err := e.Reports.Unvisited(ctx, e.Users["south"], 30, "")
	require.NoError(t, err)
	require.Len(t, unvisited, 1)
	assert.Equal(t, "cs3", unvisited[0].CustomerID, "and only their customers")

	_, err = e.Reports.Coverage(ctx, e.Users["south"], "2026-11-01", "2026-11-30", "t-north", time.UTC)
	assert.Equal(t, schema.CodeForbidden, schema.ErrorCode(err), "not another territory")
	_, err = e.Reports.Coverage(ctx, e.Users["rep1"], "2026-11-01", "2026-11-30", "", time.UTC)
	assert.Equal(t, schema.CodeForbidden, schema.ErrorCode(err), "not a rep")
	elsewhere, err := e.Reports.Coverage(ctx, e.Users["mgr"], "2026-11-01", "2026-11-30", "", time.UTC)
	require.NoError(t, err)
	assert.Empty(t, elsewhere.Reps, "a manager of a territory with no one in it")

	devices, err := e.Reports.Devices(ctx, e.Users["north"], "")
	require.NoError(t, err)
	var users []string
	for _, d := range devices {
		users = append(users, d.UserID)
		require.NotNil(t, d.DeviceID)
		assert.Equal(t, "dev-"+d.Username, *d.DeviceID)
		require.NotNil(t, d.LastPushAt)
		assert.Nil(t, d.LastPullAt, "never pulled")
	}
	assert.Equal(t, []string{"u-rep1", "u-rep2"}, users)
}

func TestReportEdges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.OK("admin",
		storetest.Up(schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"}),
		storetest.Up(schema.Customers, "c-1", 0, customer("t-1", "A")),
		storetest.Up(schema.RoutePlans, "rp-1", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23",
			"stops": []any{map[string]any{"customer_id": "c-1", "position": 1, "status": "planned"}}}),
	)
	// 23:30 on Nov 23 in New York is 04:30 UTC on Nov 24.
	e.OK("rep1", storetest.Up(schema.Visits, "v-late", 0, visit("c-1", time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC))))
	ny, err := time.LoadLocation("America/New_York")
	require.NoError(t, err)

	local, err := e.Reports.Coverage(ctx, e.Users["admin"], "2026-11-23", "2026-11-23", "", ny)
	require.NoError(t, err)
	require.Len(t, local.Reps, 2)
	assert.Equal(t, 1, local.Reps[0].VisitedStops, "the late check-in counts for its local day")
	utc, err := e.Reports.Coverage(ctx, e.Users["admin"], "2026-11-23", "2026-11-23", "", time.UTC)
	require.NoError(t, err)
	assert.Equal(t, 0, utc.Reps[0].VisitedStops, "in UTC it is the next day")
	assert.Equal(t, 0, utc.Reps[0].Visits)

	for name, args := range map[string][2]string{
		"bad from":      {"2026-11-31", "2026-12-01"},
		"to before":     {"2026-11-23", "2026-11-01"},
		"over a year":   {"2025-01-01", "2026-11-01"},
		"not a date":    {"yesterday", "2026-11-01"},
		"missing dates": {"", ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.Reports.Coverage(ctx, e.Users["admin"], args[0], args[1], "", time.UTC)
			assert.Equal(t, schema.CodeValidationFailed, schema.ErrorCode(err))
		})
	}
	_, err = e.Reports.Unvisited(ctx, e.Users["admin"], 0, "")
	assert.Equal(t, schema.CodeValidationFailed, schema.ErrorCode(err))
}
