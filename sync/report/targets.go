package report

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Attainment is targets against what was done over one period: a month,
// a quarter or the report's whole range. Amounts in minor units.
type Attainment struct {
	Month             string   `json:"month,omitempty"`
	Quarter           string   `json:"quarter,omitempty"`
	Year              string   `json:"year,omitempty"`
	TargetOrderAmount int64    `json:"target_order_amount"`
	ActualOrderAmount int64    `json:"actual_order_amount"`
	TargetVisits      int64    `json:"target_visits"`
	ActualVisits      int64    `json:"actual_visits"`
	Attainment        *float64 `json:"attainment"`
}

// add sums o into a.
func (a *Attainment) add(o *Attainment) {
	a.TargetOrderAmount += o.TargetOrderAmount
	a.ActualOrderAmount += o.ActualOrderAmount
	a.TargetVisits += o.TargetVisits
	a.ActualVisits += o.ActualVisits
}

// settle works out the attainment: actual ÷ target order amount, to four
// places, null when the target is 0.
func (a *Attainment) settle() {
	a.Attainment = nil
	if a.TargetOrderAmount != 0 {
		r := math.Round(float64(a.ActualOrderAmount)/float64(a.TargetOrderAmount)*10000) / 10000
		a.Attainment = &r
	}
}

// RepTargets is one rep's line of the targets report.
type RepTargets struct {
	RepID    string        `json:"rep_id"`
	Months   []*Attainment `json:"months"`
	Quarters []*Attainment `json:"quarters"`
	Year     *Attainment   `json:"year"`
}

// TargetsReport is targets against actuals per rep, month, quarter and
// the whole range.
type TargetsReport struct {
	From string        `json:"from"`
	To   string        `json:"to"`
	TZ   string        `json:"tz"`
	Reps []*RepTargets `json:"reps"`
}

// months parses a report's month range, inclusive, at most three years.
func months(from, to string) ([]string, error) {
	f, err1 := time.Parse("2006-01", from)
	t, err2 := time.Parse("2006-01", to)
	switch {
	case err1 != nil || !schema.ValidMonth(from):
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "from", "from must be a month, YYYY-MM")
	case err2 != nil || !schema.ValidMonth(to):
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "to", "to must be a month, YYYY-MM")
	case t.Before(f):
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "to", "to must not be before from")
	case t.After(f.AddDate(3, -1, 0)):
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "to", "a targets report covers at most 36 months")
	}
	var out []string
	for m := f; !m.After(t); m = m.AddDate(0, 1, 0) {
		out = append(out, m.Format("2006-01"))
	}
	return out, nil
}

// Targets reports, per rep in scope, the monthly targets against the
// order amount of the rep's orders that are confirmed, shipped or
// delivered, counted in the month of their submission in loc, and the
// visits made, counted in the month of their check-in in loc. Quarters
// and the year are sums of the months in the range; "year" is the whole
// range.
func (rs *Reports) Targets(ctx context.Context, p schema.Principal, from, to, territory, repID string, loc *time.Location) (*TargetsReport, error) {
	const op = "report.Targets"
	ms, err := months(from, to)
	if err != nil {
		return nil, err
	}
	scope, err := rs.repReportScope(ctx, p, territory, repID)
	if err != nil {
		return nil, err
	}
	first, _ := time.Parse("2006-01", ms[0])
	last, _ := time.Parse("2006-01", ms[len(ms)-1])
	start, _ := time.ParseInLocation("2006-01", ms[0], loc)
	end := start.AddDate(0, len(ms), 0)
	report := &TargetsReport{From: from, To: to, TZ: loc.String(), Reps: []*RepTargets{}}
	for _, rep := range scope.reps {
		byMonth := make(map[string]*Attainment, len(ms))
		row := &RepTargets{RepID: rep, Year: &Attainment{Year: yearLabel(ms)}}
		for _, m := range ms {
			byMonth[m] = &Attainment{Month: m}
			row.Months = append(row.Months, byMonth[m])
		}
		targets, err := rs.store.RepFacts(ctx, sync.FactTarget, rep, first, last.AddDate(0, 1, 0))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for _, f := range targets {
			if a := byMonth[f.Day]; a != nil {
				a.TargetOrderAmount += f.Amount
				a.TargetVisits += f.Count
			}
		}
		sales, err := rs.repFacts(ctx, sync.FactSale, rep, scope.territories, start, end)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for _, f := range sales {
			if a := byMonth[f.At.In(loc).Format("2006-01")]; a != nil && sold(f.Status) {
				a.ActualOrderAmount += f.Amount
			}
		}
		visits, err := rs.repFacts(ctx, sync.FactVisit, rep, scope.territories, start, end)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		for _, f := range visits {
			if a := byMonth[f.At.In(loc).Format("2006-01")]; a != nil {
				a.ActualVisits++
			}
		}
		var q *Attainment
		for _, a := range row.Months {
			a.settle()
			if label := quarterOf(a.Month); q == nil || q.Quarter != label {
				q = &Attainment{Quarter: label}
				row.Quarters = append(row.Quarters, q)
			}
			q.add(a)
			row.Year.add(a)
		}
		for _, q := range row.Quarters {
			q.settle()
		}
		row.Year.settle()
		report.Reps = append(report.Reps, row)
	}
	return report, nil
}

// sold reports whether an order of a status counts as sold in target
// attainment: confirmed, shipped or delivered.
func sold(status string) bool {
	switch status {
	case schema.OrderConfirmed, schema.OrderShipped, schema.OrderDelivered:
		return true
	}
	return false
}

// quarterOf names the quarter of a month: 2027-02 is 2027-Q1.
func quarterOf(month string) string {
	t, _ := time.Parse("2006-01", month)
	return fmt.Sprintf("%04d-Q%d", t.Year(), (int(t.Month())+2)/3)
}

// yearLabel names the range of months: the year when it lies in one, else
// first-last.
func yearLabel(ms []string) string {
	a, b := ms[0][:4], ms[len(ms)-1][:4]
	if a == b {
		return a
	}
	return a + "-" + b
}
