package report_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// BenchmarkCoverageMonth reads the coverage report of one month for 200
// reps with 20 planned stops a day each (120,000 stops), 18 of which they
// visit (108,000 visits), with an order on every third visit, all written
// through the engine first. The baseline reads the same month's visit and
// stop rows straight from SQLite, as the least any report must do:
//
//	go test -run '^$' -bench CoverageMonth -benchtime 5x ./sync/report/
func BenchmarkCoverageMonth(b *testing.B) {
	reps, stopsPerDay, visitedPerDay, days := 200, 20, 18, 30
	if testing.Short() {
		reps = 10
	}
	e := newEnv(b)
	e.Now = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	start := time.Now()
	var setup []storetest.Mut
	for t := range 10 {
		setup = append(setup, storetest.Up(schema.Territories, fmt.Sprintf("t-%d", t), 0, map[string]any{"name": "T", "region": "EU"}))
	}
	setup = append(setup, storetest.Up(schema.Products, "p-1", 0, map[string]any{"sku": "S", "name": "N", "unit": "u", "price": 100, "active": true}))
	e.OK("admin", setup...)
	for r := range reps {
		name := fmt.Sprintf("r%03d", r)
		e.AddUser(name, schema.RoleRep, "", fmt.Sprintf("t-%d", r%10))
		var muts []storetest.Mut
		for c := range stopsPerDay {
			muts = append(muts, storetest.Up(schema.Customers, fmt.Sprintf("c-%s-%d", name, c), 0, customer(fmt.Sprintf("t-%d", r%10), "B")))
		}
		e.OK("admin", muts...)
		muts = muts[:0]
		for d := range days {
			for c := range visitedPerDay {
				at := time.Date(2026, 11, d+1, 8, c*20, 0, 0, time.UTC)
				vid := fmt.Sprintf("v-%s-%d-%d", name, d, c)
				muts = append(muts, storetest.Up(schema.Visits, vid, 0, visit(fmt.Sprintf("c-%s-%d", name, c), at)))
				if c%3 == 0 {
					muts = append(muts, storetest.Up(schema.Orders, "o-"+vid, 0, map[string]any{"customer_id": fmt.Sprintf("c-%s-%d", name, c),
						"visit_id": vid, "status": "draft", "lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 100}}}))
				}
			}
		}
		e.OK(name, muts...)
		muts = muts[:0]
		for d := range days {
			var stops []any
			for c := range stopsPerDay {
				stops = append(stops, map[string]any{"customer_id": fmt.Sprintf("c-%s-%d", name, c), "position": c, "status": "planned"})
			}
			muts = append(muts, storetest.Up(schema.RoutePlans, fmt.Sprintf("rp-%s-%d", name, d), 0,
				map[string]any{"rep_id": "u-" + name, "date": fmt.Sprintf("2026-11-%02d", d+1), "stops": stops}))
		}
		e.OK("admin", muts...)
	}
	b.Logf("set up %d reps, %d stops, %d visits in %s", reps, reps*stopsPerDay*days, reps*visitedPerDay*days, time.Since(start).Round(time.Second))

	b.Run("coverage", func(b *testing.B) {
		for range b.N {
			report, err := e.Reports.Coverage(ctx, e.Users["admin"], "2026-11-01", "2026-11-30", "", time.UTC)
			require.NoError(b, err)
			if report.Totals.PlannedStops != reps*stopsPerDay*days || report.Totals.VisitedStops != reps*visitedPerDay*days {
				b.Fatalf("totals %+v", report.Totals)
			}
		}
	})
	b.Run("raw-rows", func(b *testing.B) {
		from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		for range b.N {
			total := 0
			for _, kind := range []string{sync.FactVisit, sync.FactStop} {
				rows, err := e.Store.Facts(ctx, kind, nil, from, to)
				require.NoError(b, err)
				total += len(rows)
			}
			if total != reps*(stopsPerDay+visitedPerDay)*days {
				b.Fatalf("rows %d", total)
			}
		}
	})
}
