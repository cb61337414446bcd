package report_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
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
	e.now = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	start := time.Now()
	var setup []json.RawMessage
	for t := range 10 {
		setup = append(setup, e.upsert(schema.Territories, fmt.Sprintf("t-%d", t), map[string]any{"name": "T", "region": "EU"}))
	}
	setup = append(setup, e.upsert(schema.Products, "p-1", map[string]any{"sku": "S", "name": "N", "unit": "u", "price": 100, "active": true}))
	e.ok("admin", setup...)
	for r := range reps {
		name := fmt.Sprintf("r%03d", r)
		e.addUser(name, schema.RoleRep, fmt.Sprintf("t-%d", r%10))
		var muts []json.RawMessage
		for c := range stopsPerDay {
			muts = append(muts, e.upsert(schema.Customers, fmt.Sprintf("c-%s-%d", name, c), customer(fmt.Sprintf("t-%d", r%10), "B")))
		}
		e.ok("admin", muts...)
		muts = muts[:0]
		for d := range days {
			for c := range visitedPerDay {
				at := time.Date(2026, 11, d+1, 8, c*20, 0, 0, time.UTC)
				vid := fmt.Sprintf("v-%s-%d-%d", name, d, c)
				muts = append(muts, e.upsert(schema.Visits, vid, visit(fmt.Sprintf("c-%s-%d", name, c), at)))
				if c%3 == 0 {
					muts = append(muts, e.upsert(schema.Orders, "o-"+vid, map[string]any{"customer_id": fmt.Sprintf("c-%s-%d", name, c),
						"visit_id": vid, "status": "draft", "lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 100}}}))
				}
			}
		}
		e.ok(name, muts...)
		muts = muts[:0]
		for d := range days {
			var stops []any
			for c := range stopsPerDay {
				stops = append(stops, map[string]any{"customer_id": fmt.Sprintf("c-%s-%d", name, c), "position": c, "status": "planned"})
			}
			muts = append(muts, e.upsert(schema.RoutePlans, fmt.Sprintf("rp-%s-%d", name, d),
				map[string]any{"rep_id": "u-" + name, "date": fmt.Sprintf("2026-11-%02d", d+1), "stops": stops}))
		}
		e.ok("admin", muts...)
	}
	b.Logf("set up %d reps, %d stops, %d visits in %s", reps, reps*stopsPerDay*days, reps*visitedPerDay*days, time.Since(start).Round(time.Second))

	b.Run("coverage", func(b *testing.B) {
		for range b.N {
			report, err := e.reports.Coverage(ctx, e.users["admin"], "2026-11-01", "2026-11-30", "", time.UTC)
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
				rows, err := e.store.Facts(ctx, kind, nil, from, to)
				require.NoError(b, err)
				total += len(rows)
			}
			if total != reps*(stopsPerDay+visitedPerDay)*days {
				b.Fatalf("rows %d", total)
			}
		}
	})
}
