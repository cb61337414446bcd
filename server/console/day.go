package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// repDay is one rep's day as the console shows it: the plan, the visits
// with their orders and photos, and the day's figures.
type repDay struct {
	Rep    *schema.User
	Date   string
	Stops  []dayStop
	Visits []dayVisit
	// Figures are the rep's line of the engine's daily report, so that
	// the page and GET /v1/reports/daily agree.
	Figures sync.RepDay
	MapJSON string
}

type dayStop struct {
	Position   int
	CustomerID string
	Name       string
	Lat, Lng   *float64
	Status     string
	Visited    bool
}

type dayVisit struct {
	ID, CustomerID, Name string
	In                   time.Time
	Out                  *time.Time
	Lat, Lng             *float64
	Within               *bool
	Geofence             string // inside, outside, or empty when unknown
	DurationS            *int64
	InStoreS             int64 // time in store of a closed visit
	Orders               []dayOrder
	Photos               []dayPhoto
}

type dayOrder struct {
	ID, Status string
	Total      int64
}

type dayPhoto struct {
	SHA256, ContentType string
	Thumb               bool // a thumbnail can be made (JPEG, PNG, WebP)
	Uploaded            bool
	ExifDisagrees       bool
}

// mapPoint is a marker of the day's map.
type mapPoint struct {
	Lat   float64 `json:"lat"`
	Lng   float64 `json:"lng"`
	Label string  `json:"label"`
	Kind  string  `json:"kind"` // stop, inside, outside, unknown
}

// loadDay reads the rep's day within the viewer's scope: the route plan
// stops of customers in scope and the rep's visits checked in on the date
// in the console's zone.
func (c *Console) loadDay(ctx context.Context, p schema.Principal, repID, date string) (*repDay, error) {
	scope, err := scopeOf(p)
	if err != nil {
		return nil, err
	}
	day, err := time.ParseInLocation("2006-01-02", date, c.zone)
	if err != nil {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "date", "date must be a date, YYYY-MM-DD")
	}
	rep, err := c.repInScope(ctx, repID, scope)
	if err != nil {
		return nil, err
	}
	facts, err := c.records.Facts(ctx, sync.FactVisit, scope, day.UTC(), day.AddDate(0, 0, 1).UTC())
	if err != nil {
		return nil, fmt.Errorf("console.loadDay: %w", err)
	}
	d := &repDay{Rep: rep, Date: date}
	err = c.records.View(ctx, func(tx sync.RecordTx) error {
		customers := customerCache{tx: tx, seen: map[string]*schema.Customer{}}
		if err := d.readStops(ctx, tx, &customers, scope); err != nil {
			return err
		}
		for _, f := range facts {
			if f.Rep != repID {
				continue
			}
			if err := d.readVisit(ctx, tx, &customers, f.Visit); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console.loadDay: %w", err)
	}
	slices.SortFunc(d.Visits, func(a, b dayVisit) int { return a.In.Compare(b.In) })
	d.markVisited()
	if d.Figures, err = c.figures(ctx, p, repID, date); err != nil {
		return nil, fmt.Errorf("console.loadDay: %w", err)
	}
	d.MapJSON, err = d.mapJSON()
	return d, err
}

// repInScope returns the rep if the viewer's scope reaches it.
func (c *Console) repInScope(ctx context.Context, repID string, scope []string) (*schema.User, error) {
	users, err := c.accounts.Users(ctx)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if u.ID == repID && isRepIn(u, scope) {
			return u, nil
		}
	}
	return nil, schema.Errorf(schema.CodeNotFound, "no such rep in the territories you oversee")
}

// isRepIn reports whether u is a rep of one of the territories of scope
// (of any, when scope is nil).
func isRepIn(u *schema.User, scope []string) bool {
	return u.Role == schema.RoleRep && (scope == nil || slices.ContainsFunc(u.Territories, func(t string) bool { return slices.Contains(scope, t) }))
}

type customerCache struct {
	tx   sync.RecordTx
	seen map[string]*schema.Customer
}

// customer returns a customer record's data, nil when missing or deleted.
func (cc *customerCache) customer(ctx context.Context, id string) (*schema.Customer, error) {
	if c, ok := cc.seen[id]; ok {
		return c, nil
	}
	var cust *schema.Customer
	if err := readData(ctx, cc.tx, schema.Customers, id, &cust); err != nil {
		return nil, err
	}
	cc.seen[id] = cust
	return cust, nil
}

// readData decodes a record's data into *out, leaving it nil when the
// record is missing or deleted.
func readData[T any](ctx context.Context, tx sync.RecordTx, coll schema.Collection, id string, out **T) error {
	r, err := tx.Record(ctx, coll, id)
	if errors.Is(err, sync.ErrNotFound) {
		return nil
	}
	if err != nil || r.Deleted {
		return err
	}
	*out = new(T)
	return json.Unmarshal(r.Data, *out)
}

// found is a record found by reference, its data decoded.
type found[T any] struct {
	ID        string
	UpdatedAt time.Time
	Data      T
}

// byRef decodes the current, not deleted records of coll that refer to
// ref.
func byRef[T any](ctx context.Context, tx sync.RecordTx, coll schema.Collection, ref string) ([]found[T], error) {
	var out []found[T]
	after := ""
	for {
		recs, err := tx.RecordsByRef(ctx, coll, ref, after, 200)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			after = r.ID
			if r.Deleted {
				continue
			}
			f := found[T]{ID: r.ID, UpdatedAt: r.UpdatedAt}
			if err := json.Unmarshal(r.Data, &f.Data); err != nil {
				return nil, err
			}
			out = append(out, f)
		}
		if len(recs) < 200 {
			return out, nil
		}
	}
}

func (d *repDay) readStops(ctx context.Context, tx sync.RecordTx, customers *customerCache, scope []string) error {
	plans, err := byRef[schema.RoutePlan](ctx, tx, schema.RoutePlans, "rep-date:"+d.Rep.ID+":"+d.Date)
	if err != nil {
		return err
	}
	for _, plan := range plans {
		for _, s := range plan.Data.Stops {
			cust, err := customers.customer(ctx, s.CustomerID)
			if err != nil {
				return err
			}
			if scope != nil && (cust == nil || !slices.Contains(scope, cust.TerritoryID)) {
				continue
			}
			st := dayStop{Position: s.Position, CustomerID: s.CustomerID, Name: s.CustomerID, Status: s.Status}
			if cust != nil {
				st.Name, st.Lat, st.Lng = cust.Name, cust.Lat, cust.Lng
			}
			d.Stops = append(d.Stops, st)
		}
	}
	slices.SortFunc(d.Stops, func(a, b dayStop) int { return a.Position - b.Position })
	return nil
}

func (d *repDay) readVisit(ctx context.Context, tx sync.RecordTx, customers *customerCache, id string) error {
	var v *schema.Visit
	if err := readData(ctx, tx, schema.Visits, id, &v); err != nil || v == nil {
		return err
	}
	cust, err := customers.customer(ctx, v.CustomerID)
	if err != nil {
		return err
	}
	dv := dayVisit{ID: id, CustomerID: v.CustomerID, Name: v.CustomerID, In: v.CheckIn.At, Lat: v.CheckIn.Lat,
		Lng: v.CheckIn.Lng, Within: v.WithinGeofence, DurationS: v.DurationS}
	if cust != nil {
		dv.Name = cust.Name
	}
	if v.CheckOut != nil {
		out := v.CheckOut.At
		dv.Out = &out
		if v.DurationS != nil {
			dv.InStoreS = *v.DurationS
		}
	}
	if v.WithinGeofence != nil {
		dv.Geofence = map[bool]string{true: "inside", false: "outside"}[*v.WithinGeofence]
	}
	orders, err := byRef[schema.Order](ctx, tx, schema.Orders, "visit:"+id)
	if err != nil {
		return err
	}
	for _, o := range orders {
		dv.Orders = append(dv.Orders, dayOrder{ID: o.ID, Status: o.Data.Status, Total: o.Data.Total})
	}
	photos, err := byRef[schema.Photo](ctx, tx, schema.Photos, "visit:"+id)
	if err != nil {
		return err
	}
	for _, f := range photos {
		dv.Photos = append(dv.Photos, photoOf(f.Data))
	}
	d.Visits = append(d.Visits, dv)
	return nil
}

// markVisited marks the stops at whose customer the rep checked in.
func (d *repDay) markVisited() {
	visited := map[string]bool{}
	for _, v := range d.Visits {
		visited[v.CustomerID] = true
	}
	for i := range d.Stops {
		d.Stops[i].Visited = visited[d.Stops[i].CustomerID]
	}
}

// figures reads the rep's line of the daily report for the day in the
// console's zone, as the viewer would through the API.
func (c *Console) figures(ctx context.Context, p schema.Principal, repID, date string) (sync.RepDay, error) {
	r, err := c.engine.Daily(ctx, p, date, "", repID, c.zone)
	if err != nil {
		return sync.RepDay{}, err
	}
	for _, row := range r.Reps {
		if row.RepID == repID {
			return *row, nil
		}
	}
	return sync.RepDay{RepID: repID}, nil
}

// mapJSON is what the map script draws: stops in order, visits where they
// checked in, and the route between check-ins.
func (d *repDay) mapJSON() (string, error) {
	m := struct {
		Stops  []mapPoint   `json:"stops"`
		Visits []mapPoint   `json:"visits"`
		Route  [][2]float64 `json:"route"`
	}{Stops: []mapPoint{}, Visits: []mapPoint{}, Route: [][2]float64{}}
	for _, s := range d.Stops {
		if s.Lat != nil && s.Lng != nil {
			m.Stops = append(m.Stops, mapPoint{Lat: *s.Lat, Lng: *s.Lng, Label: fmt.Sprintf("%d. %s", s.Position, s.Name), Kind: "stop"})
		}
	}
	for _, v := range d.Visits {
		if v.Lat == nil || v.Lng == nil {
			continue
		}
		kind := v.Geofence
		if kind == "" {
			kind = "unknown"
		}
		m.Visits = append(m.Visits, mapPoint{Lat: *v.Lat, Lng: *v.Lng, Label: v.Name, Kind: kind})
		m.Route = append(m.Route, [2]float64{*v.Lat, *v.Lng})
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func (c *Console) dayPage(ctx *fiber.Ctx) error {
	date := ctx.Query("date", c.now().In(c.zone).Format("2006-01-02"))
	d, err := c.loadDay(ctx.UserContext(), viewerOf(ctx).principal(), ctx.Params("id"), date)
	if err != nil {
		return c.fail(ctx, err)
	}
	return c.render(ctx, fiber.StatusOK, "day", &view{Title: "day.title", Nav: "coverage", Map: true, Data: d})
}
