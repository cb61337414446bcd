package report

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/fieldsync/fieldsync/sync"
)

// CountCoverage counts coverage from facts read one kind at a time, for
// stores that cannot count it themselves. facts reads the facts of a kind
// in the query's territories between two instants.
func CountCoverage(ctx context.Context, q CoverageQuery, facts func(ctx context.Context, kind string, territories []string, from, to time.Time) ([]sync.Fact, error)) ([]RepCoverage, error) {
	if len(q.Days) == 0 {
		return nil, nil
	}
	from, to := q.Days[0].Start, q.Days[len(q.Days)-1].End
	first, last := q.Days[0].Date, q.Days[len(q.Days)-1].Date
	stops, err := facts(ctx, sync.FactStop, q.Territories, from.AddDate(0, 0, -1), to.AddDate(0, 0, 1))
	if err != nil {
		return nil, fmt.Errorf("stops: %w", err)
	}
	visits, err := facts(ctx, sync.FactVisit, q.Territories, from, to)
	if err != nil {
		return nil, fmt.Errorf("visits: %w", err)
	}
	orders, err := facts(ctx, sync.FactOrder, q.Territories, from, to)
	if err != nil {
		return nil, fmt.Errorf("orders: %w", err)
	}
	dayOf := func(f sync.Fact) string {
		i, found := slices.BinarySearchFunc(q.Days, f.At, func(d Day, at time.Time) int {
			switch {
			case !at.Before(d.End):
				return -1
			case at.Before(d.Start):
				return 1
			}
			return 0
		})
		if !found {
			return ""
		}
		return q.Days[i].Date
	}
	rows := map[string]*RepCoverage{}
	row := func(rep string) *RepCoverage {
		if rows[rep] == nil {
			rows[rep] = &RepCoverage{Rep: rep}
		}
		return rows[rep]
	}
	type call struct{ rep, customer, day string }
	visited := map[call]bool{}
	for _, v := range visits {
		visited[call{v.Rep, v.Customer, dayOf(v)}] = true
	}
	planned := map[call]bool{}
	for _, s := range stops {
		if s.Day < first || s.Day > last {
			continue
		}
		r := row(s.Rep)
		r.Planned++
		c := call{s.Rep, s.Customer, s.Day}
		planned[c] = true
		if visited[c] {
			r.Visited++
		}
	}
	ordered := map[string]int{}
	for _, o := range orders {
		if o.Flag == 1 && o.Visit != "" {
			ordered[o.Visit]++
		}
	}
	for _, v := range visits {
		r := row(v.Rep)
		r.Visits++
		if !planned[call{v.Rep, v.Customer, dayOf(v)}] {
			r.Unplanned++
		}
		if n := ordered[v.Visit]; n > 0 {
			r.Orders += n
			r.Struck++
		}
		if v.Flag >= 0 {
			r.GeofenceKnown++
			r.Within += v.Flag
		}
	}
	out := make([]RepCoverage, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	return out, nil
}
