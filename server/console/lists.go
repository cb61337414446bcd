package console

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// unvisitedData is the unvisited outlets page.
type unvisitedData struct {
	Days            int
	Grade           string
	Territory       string
	Table           *table
	MapJSON         string
	WithoutLocation int
}

func (c *Console) unvisitedPage(ctx *fiber.Ctx) error {
	l := c.localeOf(ctx)
	d := &unvisitedData{Days: 30, Grade: strings.ToUpper(ctx.Query("grade")), Territory: ctx.Query("territory_id")}
	if s := ctx.Query("days"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "days", "days must be a whole number of days"))
		}
		d.Days = n
	}
	p := viewerOf(ctx).principal()
	customers, err := c.reports.Unvisited(ctx.UserContext(), p, d.Days, d.Territory)
	if err != nil {
		return c.fail(ctx, err)
	}
	points := struct {
		Points []mapPoint `json:"points"`
	}{Points: []mapPoint{}}
	d.Table = &table{Head: []column{{Label: l.T("unvisited.customer")}, {Label: l.T("unvisited.grade")},
		{Label: l.T("unvisited.territory")}, {Label: l.T("unvisited.last_visit")}}}
	err = c.records.View(ctx.UserContext(), func(tx sync.RecordTx) error {
		for _, u := range customers {
			if d.Grade != "" && u.Grade != d.Grade {
				continue
			}
			last := cell{Text: l.T("unvisited.never"), Sort: ""}
			if u.LastVisitAt != nil {
				last = cell{Text: l.Time(u.LastVisitAt), Sort: timeSort(u.LastVisitAt)}
			}
			d.Table.Rows = append(d.Table.Rows, row{Key: u.CustomerID, Cells: []cell{{Text: u.Name}, {Text: u.Grade}, {Text: u.TerritoryID}, last}})
			var cust *schema.Customer
			if err := readData(ctx.UserContext(), tx, schema.Customers, u.CustomerID, &cust); err != nil {
				return err
			}
			if cust == nil || cust.Lat == nil || cust.Lng == nil {
				d.WithoutLocation++
				continue
			}
			points.Points = append(points.Points, mapPoint{Lat: *cust.Lat, Lng: *cust.Lng, Label: u.Name, Kind: u.Grade})
		}
		return nil
	})
	if err != nil {
		return c.fail(ctx, err)
	}
	b, err := json.Marshal(points)
	if err != nil {
		return err
	}
	d.MapJSON = string(b)
	return c.render(ctx, fiber.StatusOK, "unvisited", &view{locale: l, Title: "unvisited.title", Nav: "unvisited", Map: true, Data: d})
}

// silentAfter is how long without a push or pull marks a device silent.
const silentAfter = 24 * time.Hour

func (c *Console) devicesPage(ctx *fiber.Ctx) error {
	l := c.localeOf(ctx)
	rows, err := c.reports.Devices(ctx.UserContext(), viewerOf(ctx).principal(), ctx.Query("territory_id"))
	if err != nil {
		return c.fail(ctx, err)
	}
	t := &table{Head: []column{{Label: l.T("devices.user")}, {Label: l.T("devices.role")}, {Label: l.T("devices.device")},
		{Label: l.T("devices.last_push")}, {Label: l.T("devices.last_pull")}}}
	now := c.now()
	for _, r := range rows {
		device := l.T("devices.none")
		if r.DeviceID != nil {
			device = *r.DeviceID
		}
		latest := r.LastPushAt
		if latest == nil || (r.LastPullAt != nil && r.LastPullAt.After(*latest)) {
			latest = r.LastPullAt
		}
		t.Rows = append(t.Rows, row{Key: r.UserID, Warn: latest == nil || now.Sub(*latest) > silentAfter, Cells: []cell{
			{Text: r.Username}, {Text: l.T("role." + string(r.Role))}, {Text: device},
			{Text: l.Time(r.LastPushAt), Sort: timeSort(r.LastPushAt)}, {Text: l.Time(r.LastPullAt), Sort: timeSort(r.LastPullAt)},
		}})
	}
	return c.render(ctx, fiber.StatusOK, "devices", &view{locale: l, Title: "devices.title", Nav: "devices", Data: t})
}

// orderStatuses are the statuses the orders page filters by.
var orderStatuses = []string{"draft", "submitted", "credit_hold", "confirmed", "shipped", "delivered", "cancelled"}

type orderRow struct {
	ID, Customer, PlacedBy, Status string
	Total                          int64
	At                             time.Time
	Actions                        []string // approve, confirm, cancel
}

type ordersData struct {
	From, To, Status string
	Statuses         []string
	Orders           []orderRow
	Truncated        bool
}

// maxListed is the most rows a list page shows.
const maxListed = 1000

// dateRange reads from and to (default the last 30 days to today) and
// returns the instants they span in the console's zone.
func (c *Console) dateRange(ctx *fiber.Ctx, defaultDays int) (from, to string, start, end time.Time, err error) {
	today := c.now().In(c.zone)
	from = ctx.Query("from", today.AddDate(0, 0, 1-defaultDays).Format("2006-01-02"))
	to = ctx.Query("to", today.Format("2006-01-02"))
	start, err1 := time.ParseInLocation("2006-01-02", from, c.zone)
	last, err2 := time.ParseInLocation("2006-01-02", to, c.zone)
	switch {
	case err1 != nil:
		err = schema.FieldErrorf(schema.CodeValidationFailed, "from", "from must be a date, YYYY-MM-DD")
	case err2 != nil || last.Before(start):
		err = schema.FieldErrorf(schema.CodeValidationFailed, "to", "to must be a date, YYYY-MM-DD, not before from")
	case last.Sub(start) > 366*24*time.Hour:
		err = schema.FieldErrorf(schema.CodeValidationFailed, "to", "a range covers at most a year")
	}
	return from, to, start.UTC(), last.AddDate(0, 0, 1).UTC(), err
}

func (c *Console) ordersPage(ctx *fiber.Ctx) error {
	d := &ordersData{Status: ctx.Query("status"), Statuses: orderStatuses}
	var start, end time.Time
	var err error
	if d.From, d.To, start, end, err = c.dateRange(ctx, 30); err != nil {
		return c.fail(ctx, err)
	}
	p := viewerOf(ctx).principal()
	scope, err := scopeOf(p)
	if err != nil {
		return c.fail(ctx, err)
	}
	facts, err := c.records.Facts(ctx.UserContext(), sync.FactOrder, scope, start, end)
	if err != nil {
		return c.fail(ctx, err)
	}
	names, err := c.userNames(ctx)
	if err != nil {
		return c.fail(ctx, err)
	}
	// An order's fact is dated by its visit's check-in, or by its last
	// write when it has no visit: find the orders of the customers with
	// facts in range and keep those whose date falls in it.
	visits := map[string]map[string]bool{}
	for _, f := range facts {
		if visits[f.Customer] == nil {
			visits[f.Customer] = map[string]bool{}
		}
		visits[f.Customer][f.Visit] = true
	}
	err = c.records.View(ctx.UserContext(), func(tx sync.RecordTx) error {
		customers := customerCache{tx: tx, seen: map[string]*schema.Customer{}}
		for cid, vs := range visits {
			orders, err := byRef[schema.Order](ctx.UserContext(), tx, schema.Orders, "customer:"+cid)
			if err != nil {
				return err
			}
			cust, err := customers.customer(ctx.UserContext(), cid)
			if err != nil {
				return err
			}
			for _, o := range orders {
				inRange := vs[o.Data.VisitID] && o.Data.VisitID != "" ||
					o.Data.VisitID == "" && !o.UpdatedAt.Before(start) && o.UpdatedAt.Before(end)
				if !inRange || (d.Status != "" && o.Data.Status != d.Status) {
					continue
				}
				if len(d.Orders) == maxListed {
					d.Truncated = true
					return nil
				}
				r := orderRow{ID: o.ID, Customer: cid, PlacedBy: names[o.Data.PlacedBy], Status: o.Data.Status,
					Total: o.Data.Total, At: o.UpdatedAt, Actions: orderActions(o.Data.Status)}
				if cust != nil {
					r.Customer = cust.Name
				}
				d.Orders = append(d.Orders, r)
			}
		}
		return nil
	})
	if err != nil {
		return c.fail(ctx, err)
	}
	slices.SortFunc(d.Orders, func(a, b orderRow) int { return b.At.Compare(a.At) })
	return c.render(ctx, fiber.StatusOK, "orders", &view{Title: "orders.title", Nav: "orders", Data: d})
}

// orderActions are what a manager may do to an order in a status: approve
// or cancel a credit hold, confirm or cancel a submitted order.
func orderActions(status string) []string {
	switch status {
	case "credit_hold":
		return []string{"approve", "cancel"}
	case "submitted":
		return []string{"confirm", "cancel"}
	}
	return nil
}

// orderAction moves an order through the engine's push, as the viewer:
// the same rules, scoping and audit as any other write.
func (c *Console) orderAction(ctx *fiber.Ctx) error {
	id, action := ctx.Params("id"), ctx.FormValue("action")
	to := map[string]string{"approve": "confirmed", "confirm": "confirmed", "cancel": "cancelled"}[action]
	if to == "" {
		return c.fail(ctx, schema.FieldErrorf(schema.CodeValidationFailed, "action", "action must be approve, confirm or cancel"))
	}
	p := viewerOf(ctx).principal()
	if err := c.moveOrder(ctx.UserContext(), p, id, to); err != nil {
		return c.fail(ctx, err)
	}
	back := "/console/orders"
	if q := ctx.FormValue("back"); strings.HasPrefix(q, "?") {
		back += q
	}
	return ctx.Redirect(back, fiber.StatusSeeOther)
}

// moveOrder pushes an order's new status on top of the version the
// viewer may read.
func (c *Console) moveOrder(ctx context.Context, p schema.Principal, id, status string) error {
	var (
		data    map[string]any
		version int64
	)
	err := c.records.View(ctx, func(tx sync.RecordTx) error {
		r, err := tx.Record(ctx, schema.Orders, id)
		if errors.Is(err, sync.ErrNotFound) || (err == nil && (r.Deleted || !schema.Intersects(r.Tokens, schema.ReadTokens(p)))) {
			return schema.Errorf(schema.CodeNotFound, "no such order")
		}
		if err != nil {
			return err
		}
		version = r.Version
		return json.Unmarshal(r.Data, &data)
	})
	if err != nil {
		return err
	}
	data["status"] = status
	body, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return c.pushOne(ctx, p, schema.Orders, id, version, body)
}
