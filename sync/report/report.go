package report

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// CoverageRow is one rep's line of the coverage report.
type CoverageRow struct {
	RepID              string     `json:"rep_id"`
	PlannedStops       int        `json:"planned_stops"`
	VisitedStops       int        `json:"visited_stops"`
	Coverage           *float64   `json:"coverage"`
	UnplannedVisits    int        `json:"unplanned_visits"`
	Visits             int        `json:"visits"`
	Orders             int        `json:"orders"`
	StrikeRate         *float64   `json:"strike_rate"`
	GeofenceCompliance *float64   `json:"geofence_compliance"`
	LastPushAt         *time.Time `json:"last_push_at"`
	LastPullAt         *time.Time `json:"last_pull_at"`
	// OpenVisits counts the rep's visits with no check-out: in progress,
	// or left without one.
	OpenVisits int `json:"open_visits"`
}

// CoverageTotals sums the coverage report's rows.
type CoverageTotals struct {
	PlannedStops int      `json:"planned_stops"`
	VisitedStops int      `json:"visited_stops"`
	Coverage     *float64 `json:"coverage"`
	Visits       int      `json:"visits"`
	Orders       int      `json:"orders"`
	StrikeRate   *float64 `json:"strike_rate"`
}

// CoverageReport is planned stops against visits made, per rep.
type CoverageReport struct {
	From   string         `json:"from"`
	To     string         `json:"to"`
	TZ     string         `json:"tz"`
	Reps   []*CoverageRow `json:"reps"`
	Totals CoverageTotals `json:"totals"`
}

// ratio returns part/whole rounded to four places, or nil when whole is 0.
func ratio(part, whole int) *float64 {
	if whole == 0 {
		return nil
	}
	r := math.Round(float64(part)/float64(whole)*10000) / 10000
	return &r
}

// Coverage reports, for the reps of p's territories (or of one of them),
// planned stops against visits made between two dates in loc.
func (rs *Reports) Coverage(ctx context.Context, p schema.Principal, from, to, territory string, loc *time.Location) (*CoverageReport, error) {
	scope, err := schema.ReportScope(p, territory)
	if err != nil {
		return nil, err
	}
	start, end, err := schema.ReportDays(from, to, loc)
	if err != nil {
		return nil, err
	}
	q := CoverageQuery{Territories: scope}
	for d := start; d.Before(end); d = d.AddDate(0, 0, 1) {
		q.Days = append(q.Days, Day{Date: d.Format("2006-01-02"), Start: d.UTC(), End: d.AddDate(0, 0, 1).UTC()})
	}
	_, first := start.Zone()
	_, last := end.Add(-time.Nanosecond).Zone()
	if first == last && end.Sub(start) == time.Duration(len(q.Days))*24*time.Hour {
		q.Offset = &first
	}
	counts, err := rs.store.CoverageCounts(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("report.Coverage: %w", err)
	}
	rows := map[string]*CoverageRow{}
	row := func(rep string) *CoverageRow {
		if rows[rep] == nil {
			rows[rep] = &CoverageRow{RepID: rep}
		}
		return rows[rep]
	}
	struck, known, within := map[string]int{}, map[string]int{}, map[string]int{}
	for _, c := range counts {
		r := row(c.Rep)
		r.PlannedStops, r.VisitedStops, r.Visits, r.UnplannedVisits, r.Orders = c.Planned, c.Visited, c.Visits, c.Unplanned, c.Orders
		struck[c.Rep], known[c.Rep], within[c.Rep] = c.Struck, c.GeofenceKnown, c.Within
	}
	open, err := rs.store.Facts(ctx, sync.FactOpen, scope, start.UTC(), end.UTC())
	if err != nil {
		return nil, fmt.Errorf("report.Coverage: %w", err)
	}
	for _, f := range open {
		row(f.Rep).OpenVisits++
	}
	assigned, err := rs.assignedReps(ctx, scope)
	if err != nil {
		return nil, err
	}
	for _, rep := range assigned {
		row(rep)
	}
	if scope != nil {
		// Facts in scope may name reps who are not (a rep moved away);
		// a report lists only the reps of the caller's territories.
		for rep := range rows {
			if !slices.Contains(assigned, rep) {
				delete(rows, rep)
			}
		}
	}
	if err := rs.addFreshness(ctx, rows); err != nil {
		return nil, err
	}
	report := &CoverageReport{From: from, To: to, TZ: loc.String(), Reps: []*CoverageRow{}}
	totalStruck := 0
	for _, r := range rows {
		r.Coverage = ratio(r.VisitedStops, r.PlannedStops)
		r.StrikeRate = ratio(struck[r.RepID], r.Visits)
		r.GeofenceCompliance = ratio(within[r.RepID], known[r.RepID])
		report.Reps = append(report.Reps, r)
		t := &report.Totals
		t.PlannedStops += r.PlannedStops
		t.VisitedStops += r.VisitedStops
		t.Visits += r.Visits
		t.Orders += r.Orders
		totalStruck += struck[r.RepID]
	}
	slices.SortFunc(report.Reps, func(a, b *CoverageRow) int { return strings.Compare(a.RepID, b.RepID) })
	report.Totals.Coverage = ratio(report.Totals.VisitedStops, report.Totals.PlannedStops)
	report.Totals.StrikeRate = ratio(totalStruck, report.Totals.Visits)
	return report, nil
}

// assignedReps lists the active reps assigned to a territory in scope (all,
// when nil), so that a rep who did nothing shows as such.
func (rs *Reports) assignedReps(ctx context.Context, scope []string) ([]string, error) {
	users, err := rs.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("report.Coverage: %w", err)
	}
	var out []string
	for _, u := range users {
		if u.Role == schema.RoleRep && u.Active && (scope == nil || slices.ContainsFunc(u.Territories, func(t string) bool { return slices.Contains(scope, t) })) {
			out = append(out, u.ID)
		}
	}
	return out, nil
}

// addFreshness fills in when each rep's devices last pushed and pulled.
func (rs *Reports) addFreshness(ctx context.Context, rows map[string]*CoverageRow) error {
	syncs, err := rs.store.DeviceSyncs(ctx)
	if err != nil {
		return fmt.Errorf("report.Coverage: %w", err)
	}
	latest := func(cur *time.Time, t time.Time) *time.Time {
		if t.IsZero() || (cur != nil && !t.After(*cur)) {
			return cur
		}
		return &t
	}
	for _, d := range syncs {
		if r := rows[d.UserID]; r != nil {
			r.LastPushAt = latest(r.LastPushAt, d.LastPushAt)
			r.LastPullAt = latest(r.LastPullAt, d.LastPullAt)
		}
	}
	return nil
}

// UnvisitedCustomer is a customer nobody visited for the report's days.
type UnvisitedCustomer struct {
	CustomerID  string     `json:"customer_id"`
	Name        string     `json:"name"`
	Grade       string     `json:"grade"`
	TerritoryID string     `json:"territory_id"`
	LastVisitAt *time.Time `json:"last_visit_at"`
}

// Unvisited lists the customers of p's territories (or of one of them)
// with no visit in the last days days: never visited first, then the
// longest unvisited.
func (rs *Reports) Unvisited(ctx context.Context, p schema.Principal, daysAgo int, territory string) ([]UnvisitedCustomer, error) {
	scope, err := schema.ReportScope(p, territory)
	if err != nil {
		return nil, err
	}
	if daysAgo < 1 || daysAgo > 3650 {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "days", "days must be between 1 and 3650")
	}
	customers, err := rs.store.Facts(ctx, sync.FactCustomer, scope, sync.Epoch, sync.Epoch.Add(time.Second))
	if err != nil {
		return nil, fmt.Errorf("report.Unvisited: %w", err)
	}
	cutoff := rs.now().Add(-time.Duration(daysAgo) * 24 * time.Hour)
	out := []UnvisitedCustomer{}
	for _, c := range customers {
		last, err := rs.store.LatestFact(ctx, sync.FactVisit, c.Customer)
		if err != nil && !errors.Is(err, sync.ErrNotFound) {
			return nil, fmt.Errorf("report.Unvisited: %w", err)
		}
		u := UnvisitedCustomer{CustomerID: c.Customer, Name: c.Label, Grade: c.Grade, TerritoryID: c.Territory}
		if last != nil {
			if !last.At.Before(cutoff) {
				continue
			}
			at := last.At
			u.LastVisitAt = &at
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b UnvisitedCustomer) int {
		switch {
		case a.LastVisitAt == nil && b.LastVisitAt != nil:
			return -1
		case a.LastVisitAt != nil && b.LastVisitAt == nil:
			return 1
		case a.LastVisitAt != nil && !a.LastVisitAt.Equal(*b.LastVisitAt):
			return a.LastVisitAt.Compare(*b.LastVisitAt)
		}
		return strings.Compare(a.CustomerID, b.CustomerID)
	})
	return out, nil
}

// DeviceRow is when one device of a user last synced; a user who never
// synced has one row with no device.
type DeviceRow struct {
	UserID     string      `json:"user_id"`
	Username   string      `json:"username"`
	Role       schema.Role `json:"role"`
	DeviceID   *string     `json:"device_id"`
	LastPushAt *time.Time  `json:"last_push_at"`
	LastPullAt *time.Time  `json:"last_pull_at"`
}

// Devices reports when each device of the users p oversees (the reps of
// its territories; everyone, for an admin) last pushed and pulled.
func (rs *Reports) Devices(ctx context.Context, p schema.Principal, territory string) ([]DeviceRow, error) {
	scope, err := schema.ReportScope(p, territory)
	if err != nil {
		return nil, err
	}
	users, err := rs.store.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("report.Devices: %w", err)
	}
	syncs, err := rs.store.DeviceSyncs(ctx)
	if err != nil {
		return nil, fmt.Errorf("report.Devices: %w", err)
	}
	byUser := map[string][]DeviceSync{}
	for _, d := range syncs {
		byUser[d.UserID] = append(byUser[d.UserID], d)
	}
	when := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	out := []DeviceRow{}
	for _, u := range users {
		inScope := scope == nil || (u.Role == schema.RoleRep && slices.ContainsFunc(u.Territories, func(t string) bool { return slices.Contains(scope, t) }))
		if !inScope {
			continue
		}
		if len(byUser[u.ID]) == 0 {
			out = append(out, DeviceRow{UserID: u.ID, Username: u.Username, Role: u.Role})
		}
		for _, d := range byUser[u.ID] {
			device := d.DeviceID
			out = append(out, DeviceRow{UserID: u.ID, Username: u.Username, Role: u.Role, DeviceID: &device,
				LastPushAt: when(d.LastPushAt), LastPullAt: when(d.LastPullAt)})
		}
	}
	return out, nil
}
