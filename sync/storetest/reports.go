package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

func testReports(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("Facts", func(t *testing.T) { testFacts(t, newStore(t)) })
	t.Run("DeviceSyncs", func(t *testing.T) { testDeviceSyncs(t, newStore(t)) })
	t.Run("UserList", func(t *testing.T) { testUserList(t, newStore(t)) })
	t.Run("CoverageCounts", func(t *testing.T) { testCoverageCounts(t, newStore(t)) })
}

// testCoverageCounts: two days in a zone an hour ahead of UTC; u-1 plans
// c-1 and c-2 on day 1 and c-1 on day 2, visits c-1 on day 1 (with two
// orders, one cancelled), c-2 at 23:30 UTC on day 1 (00:30 local on day
// 2: unplanned there), c-1 on day 2 (no geofence known); u-2 visits c-3 in
// t-2, unplanned.
func testCoverageCounts(t *testing.T, s Store) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+1", 3600)
	local := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, zone).UTC() }
	fact := func(coll schema.Collection, id string, f ...sync.Fact) {
		r := rec(id, 1, []string{string(coll) + "|all"}, `{}`)
		r.Collection, r.Facts = coll, f
		put(t, s, r, 0)
	}
	stop := func(rep, customer, territory, day string) sync.Fact {
		d, _ := time.Parse("2006-01-02", day)
		return sync.Fact{Kind: sync.FactStop, Rep: rep, Customer: customer, Territory: territory, Day: day, At: d}
	}
	fact(schema.RoutePlans, "rp-1", stop("u-1", "c-1", "t-1", "2026-11-01"), stop("u-1", "c-2", "t-1", "2026-11-01"))
	fact(schema.RoutePlans, "rp-2", stop("u-1", "c-1", "t-1", "2026-11-02"))
	fact(schema.RoutePlans, "rp-3", stop("u-1", "c-1", "t-1", "2026-11-05")) // outside the days
	visit := func(id, rep, customer, territory string, at time.Time, flag int) sync.Fact {
		return sync.Fact{Kind: sync.FactVisit, Rep: rep, Customer: customer, Territory: territory, Visit: id, At: at, Flag: flag}
	}
	fact(schema.Visits, "v-1", visit("v-1", "u-1", "c-1", "t-1", local(1, 10, 0), 1))
	fact(schema.Visits, "v-2", visit("v-2", "u-1", "c-2", "t-1", local(2, 0, 30), 0))
	fact(schema.Visits, "v-3", visit("v-3", "u-1", "c-1", "t-1", local(2, 9, 0), -1))
	fact(schema.Visits, "v-4", visit("v-4", "u-2", "c-3", "t-2", local(1, 12, 0), 1))
	fact(schema.Visits, "v-5", visit("v-5", "u-1", "c-1", "t-1", local(3, 9, 0), 1)) // after the days
	order := func(visitID string, flag int) sync.Fact {
		return sync.Fact{Kind: sync.FactOrder, Rep: "u-1", Customer: "c-1", Territory: "t-1", Visit: visitID, At: local(1, 10, 0), Flag: flag}
	}
	fact(schema.Orders, "o-1", order("v-1", 1))
	fact(schema.Orders, "o-2", order("v-1", 1))
	fact(schema.Orders, "o-3", order("v-1", 0))

	q := report.CoverageQuery{Days: []report.Day{
		{Date: "2026-11-01", Start: local(1, 0, 0), End: local(2, 0, 0)},
		{Date: "2026-11-02", Start: local(2, 0, 0), End: local(3, 0, 0)},
	}}
	want := []report.RepCoverage{
		{Rep: "u-1", Planned: 3, Visited: 2, Visits: 3, Unplanned: 1, Orders: 2, Struck: 1, GeofenceKnown: 2, Within: 1},
		{Rep: "u-2", Planned: 0, Visited: 0, Visits: 1, Unplanned: 1, GeofenceKnown: 1, Within: 1},
	}
	sorted := func(rs []report.RepCoverage) []report.RepCoverage {
		slices.SortFunc(rs, func(a, b report.RepCoverage) int { return strings.Compare(a.Rep, b.Rep) })
		return rs
	}
	got, err := s.CoverageCounts(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, want, sorted(got))
	generic, err := report.CountCoverage(ctx, q, s.Facts)
	require.NoError(t, err)
	assert.Equal(t, want, sorted(generic), "the shared counter agrees")
	offset := 3600
	q.Offset = &offset
	got, err = s.CoverageCounts(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, want, sorted(got), "told the zone's one offset")
	q.Offset = nil

	q.Territories = []string{"t-2"}
	got, err = s.CoverageCounts(ctx, q)
	require.NoError(t, err)
	assert.Equal(t, want[1:], got, "one territory")
	q.Territories = []string{}
	got, err = s.CoverageCounts(ctx, q)
	require.NoError(t, err)
	assert.Empty(t, got, "no territories")
}

func factsOf(t *testing.T, s Store, kind string, territories []string, from, to time.Time) []sync.Fact {
	t.Helper()
	got, err := s.Facts(context.Background(), kind, territories, from, to)
	require.NoError(t, err)
	return got
}

func testFacts(t *testing.T, s Store) {
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 9, 0, 0, 0, time.UTC) }
	visit := func(id, territory, customer string, d, flag int) *sync.Record {
		r := rec(id, 1, []string{"visits|all"}, `{}`)
		r.Collection = schema.Visits
		r.Facts = []sync.Fact{{Kind: sync.FactVisit, Rep: "u-1", Customer: customer, Territory: territory, Visit: id, At: day(d), Flag: flag}}
		return r
	}
	put(t, s, visit("v-1", "t-1", "c-1", 1, 1), 0)
	put(t, s, visit("v-2", "t-1", "c-1", 5, 0), 0)
	put(t, s, visit("v-3", "t-2", "c-2", 5, -1), 0)
	plan := rec("rp-1", 1, []string{"route_plans|all"}, `{}`)
	plan.Collection = schema.RoutePlans
	plan.Facts = []sync.Fact{
		{Kind: sync.FactStop, Rep: "u-1", Customer: "c-1", Territory: "t-1", Day: "2026-11-05", At: time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)},
		{Kind: sync.FactStop, Rep: "u-1", Customer: "c-3", Territory: "t-1", Day: "2026-11-05", At: time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)},
	}
	put(t, s, plan, 0)

	all := factsOf(t, s, sync.FactVisit, nil, day(1), day(6))
	assert.Len(t, all, 3)
	assert.ElementsMatch(t, []string{"v-2", "v-3"}, visitIDs(factsOf(t, s, sync.FactVisit, nil, day(2), day(6))), "from is inclusive, by time")
	assert.ElementsMatch(t, []string{"v-1"}, visitIDs(factsOf(t, s, sync.FactVisit, nil, day(1), day(5))), "to is exclusive")
	assert.ElementsMatch(t, []string{"v-1", "v-2"}, visitIDs(factsOf(t, s, sync.FactVisit, []string{"t-1"}, day(1), day(6))), "by territory")
	assert.ElementsMatch(t, []string{"v-1", "v-2", "v-3"}, visitIDs(factsOf(t, s, sync.FactVisit, []string{"t-1", "t-2"}, day(1), day(6))))
	assert.Empty(t, factsOf(t, s, sync.FactVisit, []string{}, day(1), day(6)), "no territories: nothing")
	assert.Len(t, factsOf(t, s, sync.FactStop, []string{"t-1"}, day(1), day(6)), 2, "a record's several facts")
	assert.Empty(t, factsOf(t, s, sync.FactOrder, nil, day(1), day(6)), "by kind")

	for _, f := range all {
		if f.Visit == "v-1" {
			assert.Equal(t, sync.Fact{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Territory: "t-1", Visit: "v-1", At: day(1), Flag: 1}, f,
				"every field comes back")
		}
	}

	latest, err := s.LatestFact(ctx, sync.FactVisit, "c-1")
	require.NoError(t, err)
	assert.Equal(t, "v-2", latest.Visit)
	_, err = s.LatestFact(ctx, sync.FactVisit, "c-9")
	assert.ErrorIs(t, err, sync.ErrNotFound)

	repAfter := func(rep string, after time.Time, except string) bool {
		t.Helper()
		var later bool
		require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
			var err error
			later, err = tx.RepFactAfter(ctx, sync.FactVisit, rep, after, except)
			return err
		}))
		return later
	}
	assert.True(t, repAfter("u-1", day(4), ""), "v-2 and v-3 are later")
	assert.False(t, repAfter("u-1", day(5), ""), "strictly later")
	assert.False(t, repAfter("u-2", day(1).Add(-time.Hour), ""), "by rep")
	assert.True(t, repAfter("u-1", day(5).Add(-time.Hour), "v-2"), "v-3 counts when v-2 is left out")

	// A new version's facts replace the old; a deleted record has none.
	moved := visit("v-2", "t-2", "c-1", 4, 1)
	moved.Version = 2
	put(t, s, moved, 1)
	assert.True(t, repAfter("u-1", day(4), ""), "v-3 is still later")
	assert.True(t, repAfter("u-1", day(4).Add(-time.Hour), "v-3"), "v-2's new fact counts")
	assert.False(t, repAfter("u-1", day(4), "v-3"), "v-2 moved back: its old fact no longer counts")
	assert.ElementsMatch(t, []string{"v-1"}, visitIDs(factsOf(t, s, sync.FactVisit, []string{"t-1"}, day(1), day(6))))
	gone := rec("v-1", 2, []string{"visits|all"}, `null`)
	gone.Collection, gone.Deleted, gone.Data = schema.Visits, true, nil
	put(t, s, gone, 1)
	assert.ElementsMatch(t, []string{"v-2", "v-3"}, visitIDs(factsOf(t, s, sync.FactVisit, nil, day(1), day(6))))
	latest, err = s.LatestFact(ctx, sync.FactVisit, "c-1")
	require.NoError(t, err)
	assert.Equal(t, day(4), latest.At)

	customer := rec("c-1", 1, []string{"customers|all"}, `{}`)
	customer.Facts = []sync.Fact{{Kind: sync.FactCustomer, Customer: "c-1", Territory: "t-1", Label: "Ana's", Grade: "A", At: sync.Epoch}}
	put(t, s, customer, 0)
	got := factsOf(t, s, sync.FactCustomer, []string{"t-1"}, sync.Epoch, sync.Epoch.Add(time.Second))
	require.Len(t, got, 1)
	assert.Equal(t, "Ana's", got[0].Label)
	assert.Equal(t, sync.Epoch, got[0].At)
}

func visitIDs(facts []sync.Fact) []string {
	var out []string
	for _, f := range facts {
		out = append(out, f.Visit)
	}
	return out
}

func testDeviceSyncs(t *testing.T, s Store) {
	ctx := context.Background()
	got, err := s.DeviceSyncs(ctx)
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, s.NoteDeviceSync(ctx, "u-1", "phone", true, at))
	require.NoError(t, s.NoteDeviceSync(ctx, "u-1", "phone", false, at.Add(time.Minute)))
	require.NoError(t, s.NoteDeviceSync(ctx, "u-1", "phone", true, at.Add(-time.Hour)))
	require.NoError(t, s.NoteDeviceSync(ctx, "u-1", "tablet", false, at))
	require.NoError(t, s.NoteDeviceSync(ctx, "u-0", "phone", false, at))
	got, err = s.DeviceSyncs(ctx)
	require.NoError(t, err)
	assert.Equal(t, []report.DeviceSync{
		{UserID: "u-0", DeviceID: "phone", LastPullAt: at},
		{UserID: "u-1", DeviceID: "phone", LastPushAt: at, LastPullAt: at.Add(time.Minute)},
		{UserID: "u-1", DeviceID: "tablet", LastPullAt: at},
	}, got, "an older time never replaces a newer one; never is the zero time")
}

func testUserList(t *testing.T, s Store) {
	ctx := context.Background()
	got, err := s.Users(ctx)
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, s.CreateUser(ctx, newUser("u-2", "bo")))
	require.NoError(t, s.CreateUser(ctx, newUser("u-1", "ana")))
	got, err = s.Users(ctx)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, newUser("u-1", "ana"), got[0], "in id order")
	assert.Equal(t, "u-2", got[1].ID)
}
