package console

import (
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// targetsData is the targets page: the engine's targets report of a year
// laid out a row per rep and month, and the reps a target can be split
// for.
type targetsData struct {
	Year      int
	Territory string
	Table     *table
	Reps      []*schema.User
	Notice    string
}

func (c *Console) targetsPage(ctx *fiber.Ctx) error {
	l := c.localeOf(ctx)
	d := &targetsData{Year: c.now().In(c.zone).Year(), Territory: ctx.Query("territory_id")}
	if s := ctx.Query("year"); s != "" {
		y, err := strconv.Atoi(s)
		if err != nil || y < 2000 || y > 9999 {
			return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "year", "year must be a year such as 2027"))
		}
		d.Year = y
	}
	if ctx.Query("done") == "split" {
		d.Notice = "targets.split_done"
	}
	p := viewerOf(ctx).principal()
	y := strconv.Itoa(d.Year)
	report, err := c.engine.Targets(ctx.UserContext(), p, y+"-01", y+"-12", d.Territory, "", c.zone)
	if err != nil {
		return c.fail(ctx, err)
	}
	names, err := c.userNames(ctx)
	if err != nil {
		return c.fail(ctx, err)
	}
	d.Table = targetsTable(l, report, names)
	scope, err := scopeOf(p)
	if err != nil {
		return c.fail(ctx, err)
	}
	users, err := c.accounts.Users(ctx.UserContext())
	if err != nil {
		return c.fail(ctx, err)
	}
	for _, u := range users {
		if u.Active && isRepIn(u, scope) {
			d.Reps = append(d.Reps, u)
		}
	}
	slices.SortFunc(d.Reps, func(a, b *schema.User) int { return strings.Compare(a.Username, b.Username) })
	return c.render(ctx, fiber.StatusOK, "targets", &view{Title: "targets.title", Nav: "targets", Data: d})
}

// targetsTable lays out a targets report: a row per rep and month, then
// the rep's year.
func targetsTable(l *locale, r *sync.TargetsReport, names map[string]string) *table {
	money := func(n int64) cell { return cell{Text: l.Money(n), Sort: strconv.FormatInt(n, 10)} }
	count := func(n int64) cell { return cell{Text: l.Num(int(n)), Sort: strconv.FormatInt(n, 10)} }
	t := &table{Head: []column{{Label: l.T("targets.rep")}, {Label: l.T("targets.month")},
		{Label: l.T("targets.target_amount"), Numeric: true}, {Label: l.T("targets.actual_amount"), Numeric: true},
		{Label: l.T("targets.attainment"), Numeric: true}, {Label: l.T("targets.target_visits"), Numeric: true},
		{Label: l.T("targets.actual_visits"), Numeric: true}}}
	line := func(rep, period string, periodText string, a *sync.Attainment) row {
		name := names[rep]
		if name == "" {
			name = rep
		}
		return row{Key: rep + "/" + period, Cells: []cell{{Text: name}, {Text: periodText, Sort: period},
			money(a.TargetOrderAmount), money(a.ActualOrderAmount), {Text: l.Pct(a.Attainment), Sort: ratioSort(a.Attainment)},
			count(a.TargetVisits), count(a.ActualVisits)}}
	}
	for _, rep := range r.Reps {
		for _, m := range rep.Months {
			t.Rows = append(t.Rows, line(rep.RepID, m.Month, m.Month, m))
		}
		if rep.Year != nil {
			t.Rows = append(t.Rows, line(rep.RepID, "year", l.T("targets.year"), rep.Year))
		}
	}
	return t
}

// targetsSplit writes a rep's twelve monthly targets of a year through
// the engine's split, evenly.
func (c *Console) targetsSplit(ctx *fiber.Ctx) error {
	year, err := strconv.Atoi(ctx.FormValue("year"))
	if err != nil {
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "year", "year must be a year such as 2027"))
	}
	amount, err := minorUnits(ctx.FormValue("order_amount"))
	if err != nil {
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "order_amount", "the order amount is a number with at most two decimals"))
	}
	visits, err := strconv.ParseInt(strings.TrimSpace(ctx.FormValue("visits")), 10, 64)
	if err != nil {
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "visits", "visits must be a whole number"))
	}
	req := &sync.SplitRequest{RepID: ctx.FormValue("rep_id"), Year: year, OrderAmount: amount, Visits: visits}
	if _, err := c.engine.SplitTargets(ctx.UserContext(), viewerOf(ctx).principal(), req); err != nil {
		return c.fail(ctx, err)
	}
	return ctx.Redirect("/console/targets?done=split&year="+url.QueryEscape(strconv.Itoa(year)), fiber.StatusSeeOther)
}

// minorUnits reads an amount in major units with at most two decimals
// ("1500", "1500.5", "1500.50") as minor units.
func minorUnits(s string) (int64, error) {
	s = strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 2 || whole == "" {
		return 0, strconv.ErrSyntax
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w < 0 || w > math.MaxInt64/100-1 {
		return 0, strconv.ErrSyntax
	}
	f := int64(0)
	if frac != "" {
		if f, err = strconv.ParseInt(frac+strings.Repeat("0", 2-len(frac)), 10, 64); err != nil || f < 0 {
			return 0, strconv.ErrSyntax
		}
	}
	return w*100 + f, nil
}
