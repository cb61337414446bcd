package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// RepDay is one rep's line of the daily report.
type RepDay struct {
	RepID        string     `json:"rep_id"`
	FirstCheckIn *time.Time `json:"first_check_in"`
	LastCheckOut *time.Time `json:"last_check_out"`
	Visits       int        `json:"visits"`
	PlannedStops int        `json:"planned_stops"`
	VisitedStops int        `json:"visited_stops"`
	Orders       int        `json:"orders"`
	OrderAmount  int64      `json:"order_amount"`
	Photos       int        `json:"photos"`
	TimeInStoreS int64      `json:"time_in_store_s"`
	TravelM      float64    `json:"travel_m"`
	OpenVisits   int        `json:"open_visits"`
}

// DailyReport is each rep's day.
type DailyReport struct {
	Date string    `json:"date"`
	TZ   string    `json:"tz"`
	Reps []*RepDay `json:"reps"`
}

// Daily reports each rep's day in loc: the visits checked in that day
// (first check-in, last check-out, time in store of those checked out,
// those still open, straight-line travel between consecutive check-ins,
// photos taken on them), the stops planned for that date and those
// visited (that rep checked in at that customer that day), and the
// orders the rep submitted that day that are not cancelled, with their
// amount.
func (rs *Reports) Daily(ctx context.Context, p schema.Principal, date, territory, repID string, loc *time.Location) (*DailyReport, error) {
	const op = "report.Daily"
	start, end, err := schema.ReportDays(date, date, loc)
	if err != nil {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "date", "date must be a date, YYYY-MM-DD")
	}
	scope, err := rs.repReportScope(ctx, p, territory, repID)
	if err != nil {
		return nil, err
	}
	planDay, _ := time.Parse("2006-01-02", date)
	report := &DailyReport{Date: date, TZ: loc.String(), Reps: []*RepDay{}}
	for _, rep := range scope.reps {
		row := &RepDay{RepID: rep}
		visits, err := rs.repFacts(ctx, sync.FactVisit, rep, scope.territories, start, end)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		visited := map[string]bool{}
		for _, f := range visits {
			visited[f.Customer] = true
		}
		if err := rs.dayVisits(ctx, row, visits); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		stops, err := rs.repFacts(ctx, sync.FactStop, rep, scope.territories, planDay, planDay.AddDate(0, 0, 1))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for _, f := range stops {
			if f.Day == date {
				row.PlannedStops++
				if visited[f.Customer] {
					row.VisitedStops++
				}
			}
		}
		sales, err := rs.repFacts(ctx, sync.FactSale, rep, scope.territories, start, end)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for _, f := range sales {
			if f.Status != schema.OrderCancelled {
				row.Orders++
				row.OrderAmount += f.Amount
			}
		}
		report.Reps = append(report.Reps, row)
	}
	return report, nil
}

// dayVisits reads the visits of a rep's day and fills in what the daily
// report says of them.
func (rs *Reports) dayVisits(ctx context.Context, row *RepDay, facts []sync.Fact) error {
	var vs []schema.Visit
	err := rs.store.View(ctx, func(tx sync.RecordTx) error {
		for _, f := range facts {
			r, err := tx.Record(ctx, schema.Visits, f.Visit)
			if err != nil {
				return err
			}
			if r.Deleted {
				continue
			}
			var v schema.Visit
			if err := json.Unmarshal(r.Data, &v); err != nil {
				return err
			}
			vs = append(vs, v)
			for after := ""; ; {
				page, err := tx.RecordsByRef(ctx, schema.Photos, "visit:"+f.Visit, after, 200)
				if err != nil {
					return err
				}
				for _, p := range page {
					if !p.Deleted {
						row.Photos++
					}
				}
				if len(page) < 200 {
					break
				}
				after = page[len(page)-1].ID
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(vs, func(a, b schema.Visit) int { return a.CheckIn.At.Compare(b.CheckIn.At) })
	var prev *schema.GeoPoint
	for i := range vs {
		v := &vs[i]
		row.Visits++
		in := v.CheckIn.At.UTC()
		if row.FirstCheckIn == nil {
			row.FirstCheckIn = &in
		}
		if v.CheckOut == nil {
			row.OpenVisits++
		} else {
			out := v.CheckOut.At.UTC()
			if row.LastCheckOut == nil || out.After(*row.LastCheckOut) {
				row.LastCheckOut = &out
			}
			row.TimeInStoreS += int64(out.Sub(in).Seconds())
		}
		if v.CheckIn.Lat == nil || v.CheckIn.Lng == nil {
			continue
		}
		if prev != nil {
			row.TravelM += schema.DistanceM(*prev.Lat, *prev.Lng, *v.CheckIn.Lat, *v.CheckIn.Lng)
		}
		prev = &v.CheckIn
	}
	row.TravelM = math.Round(row.TravelM*10) / 10
	return nil
}
