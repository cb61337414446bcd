package console

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/report"
)

// table is what a report page shows and what its CSV download holds: the
// same cells, so the download is exactly the table.
type table struct {
	Head []column
	Rows []row
	Foot []cell
}

type column struct {
	Label   string
	Numeric bool
}

type row struct {
	Key   string // the record the row is about, for links and tests
	Cells []cell
	Warn  bool // highlighted
}

type cell struct {
	Text string
	Sort string // sort key; Text when empty
	Link string
}

// csv writes the table's head, rows and foot.
func (t *table) csv(w *csv.Writer) error {
	head := make([]string, len(t.Head))
	for i, h := range t.Head {
		head[i] = h.Label
	}
	records := [][]string{head}
	for _, r := range append(t.Rows, row{Cells: t.Foot}) {
		if len(r.Cells) == 0 {
			continue
		}
		rec := make([]string, len(r.Cells))
		for i, c := range r.Cells {
			rec[i] = c.Text
		}
		records = append(records, rec)
	}
	return w.WriteAll(records)
}

// coverageQuery is the coverage page's filter.
type coverageQuery struct {
	From, To, Territory string
}

// query reads from, to and territory_id; from defaults to the first of
// this month and to to today, in the console's zone.
func (c *Console) coverageQuery(ctx *fiber.Ctx) coverageQuery {
	today := c.now().In(c.zone)
	return coverageQuery{
		From:      ctx.Query("from", today.AddDate(0, 0, 1-today.Day()).Format("2006-01-02")),
		To:        ctx.Query("to", today.Format("2006-01-02")),
		Territory: ctx.Query("territory_id"),
	}
}

// ratioSort is a sort key for an optional ratio: none sorts first.
func ratioSort(r *float64) string {
	if r == nil {
		return "-1"
	}
	return strconv.FormatFloat(*r, 'f', 4, 64)
}

func timeSort(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// coverageTable lays out a coverage report as the page shows it.
func coverageTable(l *locale, report *report.CoverageReport, names map[string]string) *table {
	num := func(n int) cell { return cell{Text: l.Num(n), Sort: strconv.Itoa(n)} }
	pct := func(r *float64) cell { return cell{Text: l.Pct(r), Sort: ratioSort(r)} }
	at := func(t *time.Time) cell { return cell{Text: l.Time(t), Sort: timeSort(t)} }
	t := &table{Head: []column{
		{Label: l.T("coverage.rep")}, {Label: l.T("coverage.planned"), Numeric: true},
		{Label: l.T("coverage.visited"), Numeric: true}, {Label: l.T("coverage.coverage"), Numeric: true},
		{Label: l.T("coverage.unplanned"), Numeric: true}, {Label: l.T("coverage.visits"), Numeric: true},
		{Label: l.T("coverage.orders"), Numeric: true}, {Label: l.T("coverage.strike_rate"), Numeric: true},
		{Label: l.T("coverage.geofence"), Numeric: true}, {Label: l.T("coverage.last_push")},
		{Label: l.T("coverage.last_pull")},
	}}
	for _, r := range report.Reps {
		name := names[r.RepID]
		if name == "" {
			name = r.RepID
		}
		t.Rows = append(t.Rows, row{Key: r.RepID, Cells: []cell{
			{Text: name, Link: "/console/reps/" + r.RepID + "/day?date=" + report.To},
			num(r.PlannedStops), num(r.VisitedStops), pct(r.Coverage), num(r.UnplannedVisits),
			num(r.Visits), num(r.Orders), pct(r.StrikeRate), pct(r.GeofenceCompliance),
			at(r.LastPushAt), at(r.LastPullAt),
		}})
	}
	tot := report.Totals
	t.Foot = []cell{{Text: l.T("coverage.totals")}, num(tot.PlannedStops), num(tot.VisitedStops),
		pct(tot.Coverage), {}, num(tot.Visits), num(tot.Orders), pct(tot.StrikeRate), {}, {}, {}}
	return t
}

// coverageReport runs the report for the page or its download, with the
// names of the reps.
func (c *Console) coverageReport(ctx *fiber.Ctx, q coverageQuery) (*report.CoverageReport, map[string]string, error) {
	report, err := c.reports.Coverage(ctx.UserContext(), viewerOf(ctx).principal(), q.From, q.To, q.Territory, c.zone)
	if err != nil {
		return nil, nil, err
	}
	names, err := c.userNames(ctx)
	return report, names, err
}

func (c *Console) userNames(ctx *fiber.Ctx) (map[string]string, error) {
	users, err := c.accounts.Users(ctx.UserContext())
	if err != nil {
		return nil, err
	}
	names := make(map[string]string, len(users))
	for _, u := range users {
		names[u.ID] = u.Username
	}
	return names, nil
}

// bar is one day of the coverage chart, laid out in the SVG's units.
type bar struct {
	X, Y, W, H float64
	Label      string // the day, shown under some bars
	Title      string // the day and its coverage
}

// chart is the coverage-per-day chart.
type chart struct {
	Width, Height float64
	Bars          []bar
	Grid          []gridLine
}

type gridLine struct {
	Y     float64
	Label string
}

// coverageChart runs the report once per day of the range (the engine's
// own numbers for each day) and lays out one bar per day.
func (c *Console) coverageChart(ctx *fiber.Ctx, l *locale, q coverageQuery) (*chart, error) {
	from, err1 := time.Parse("2006-01-02", q.From)
	to, err2 := time.Parse("2006-01-02", q.To)
	if err1 != nil || err2 != nil || to.Before(from) {
		return nil, nil // the report itself says what is wrong
	}
	const width, height, top, bottom, left = 720.0, 200.0, 10.0, 20.0, 40.0
	n := int(to.Sub(from).Hours()/24) + 1
	ch := &chart{Width: width, Height: height}
	for _, p := range []float64{0, 0.5, 1} {
		ch.Grid = append(ch.Grid, gridLine{Y: top + (1-p)*(height-top-bottom), Label: l.Pct(&p)})
	}
	w := (width - left) / float64(n)
	p := viewerOf(ctx).principal()
	for i := range n {
		day := from.AddDate(0, 0, i).Format("2006-01-02")
		r, err := c.reports.Coverage(ctx.UserContext(), p, day, day, q.Territory, c.zone)
		if err != nil {
			return nil, err
		}
		b := bar{X: left + float64(i)*w + w*0.1, W: math.Max(w*0.8, 1), Title: l.Date(day) + " " + l.Pct(r.Totals.Coverage)}
		if cov := r.Totals.Coverage; cov != nil {
			b.H = *cov * (height - top - bottom)
		}
		b.Y = height - bottom - b.H
		if i%max(1, n/6) == 0 {
			b.Label = l.Date(day)
		}
		ch.Bars = append(ch.Bars, b)
	}
	return ch, nil
}

type coverageData struct {
	Query       coverageQuery
	Territories []string
	Table       *table
	CSV, Chart  string // the download's and the chart's URLs
}

func (c *Console) coveragePage(ctx *fiber.Ctx) error {
	q := c.coverageQuery(ctx)
	l := c.localeOf(ctx)
	report, names, err := c.coverageReport(ctx, q)
	if err != nil {
		return c.fail(ctx, err)
	}
	params := url.Values{"from": {q.From}, "to": {q.To}, "territory_id": {q.Territory}}.Encode()
	d := &coverageData{Query: q, Table: coverageTable(l, report, names), Territories: viewerOf(ctx).User.Territories,
		CSV: "/console/coverage.csv?" + params, Chart: "/console/coverage/chart.svg?" + params}
	return c.render(ctx, fiber.StatusOK, "coverage", &view{locale: l, Title: "coverage.title", Nav: "coverage", Data: d})
}

// coverageChartSVG draws the chart of coverage per day as an SVG image,
// loaded by the page after its table: the table does not wait for the
// chart's report per day.
func (c *Console) coverageChartSVG(ctx *fiber.Ctx) error {
	l := c.localeOf(ctx)
	ch, err := c.coverageChart(ctx, l, c.coverageQuery(ctx))
	if err != nil {
		return c.fail(ctx, err)
	}
	if ch == nil {
		ch = &chart{Width: 720, Height: 200}
	}
	var buf bytes.Buffer
	if err := c.svg.Execute(&buf, struct {
		*locale
		Chart *chart
	}{l, ch}); err != nil {
		return fmt.Errorf("console: chart: %w", err)
	}
	ctx.Set(fiber.HeaderCacheControl, "private, no-cache")
	ctx.Set(fiber.HeaderContentType, "image/svg+xml; charset=utf-8")
	return ctx.Send(buf.Bytes())
}

// coverageCSV downloads exactly the table the coverage page shows.
func (c *Console) coverageCSV(ctx *fiber.Ctx) error {
	q := c.coverageQuery(ctx)
	report, names, err := c.coverageReport(ctx, q)
	if err != nil {
		return c.fail(ctx, err)
	}
	return sendCSV(ctx, fmt.Sprintf("coverage-%s-%s.csv", q.From, q.To), coverageTable(c.localeOf(ctx), report, names))
}

// sendCSV answers with a table as a CSV attachment.
func sendCSV(ctx *fiber.Ctx, filename string, t *table) error {
	ctx.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	ctx.Set(fiber.HeaderContentDisposition, `attachment; filename="`+filename+`"`)
	w := csv.NewWriter(ctx.Response().BodyWriter())
	if err := t.csv(w); err != nil {
		return fmt.Errorf("console: csv: %w", err)
	}
	return nil
}

// scopeOf is the territories the viewer's reports cover (nil: all).
func scopeOf(p schema.Principal) ([]string, error) { return schema.ReportScope(p, "") }
