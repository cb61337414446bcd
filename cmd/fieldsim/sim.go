package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

// Config is what a simulation runs with.
type Config struct {
	// URL is the fieldsync server's address.
	URL string
	// Admin and Password sign the admin in.
	Admin, Password string
	// Reps is how many reps work the day, each on a device; default 3.
	Reps int
	// Seed seeds every random choice of the day and of the faults.
	Seed uint64
	// OfflineRate is the chance per stop that a device goes offline (does
	// not sync) for the next few stops.
	OfflineRate float64
	// FaultRate is the chance per HTTP request of a device that the
	// transport injects a fault.
	FaultRate float64
	// Dir holds the devices' local stores; required. Verify reopens them,
	// so it must outlive the Result.
	Dir string
	// Retry is the devices' retry policy; default 4 attempts, 2 ms to 20 ms.
	Retry fieldsync.RetryPolicy
	// Logger receives the SDK's logs; default none.
	Logger *slog.Logger
	// Stops, when set, is told when the reps start working through their
	// stops (true) and when they are done (false): the part of the day
	// in which devices push and upload as they go, where a test may break
	// the server.
	Stops func(working bool)
	// Round, when set, is told as each round of stops across the reps
	// ends, with the round's number from 0, while the devices still work.
	Round func(round int)
}

func (c *Config) defaults() {
	if c.Reps <= 0 {
		c.Reps = 3
	}
	if c.Retry.MaxAttempts <= 0 {
		c.Retry = fieldsync.RetryPolicy{MaxAttempts: 4, BaseDelay: 2 * time.Millisecond, MaxDelay: 20 * time.Millisecond}
	}
	c.URL = strings.TrimRight(c.URL, "/")
}

// Result is what a simulation did, and what Verify checks.
type Result struct {
	// Tag prefixes every id and username of the run, so runs against one
	// server do not collide.
	Tag string
	// Devices counts the devices used (a reinstall counts as a new one).
	Devices int
	// Created counts the records the devices created, per collection.
	Created map[schema.Collection]int
	// Faults counts the injected faults per kind.
	Faults map[string]int
	// Retries, Conflicts and Rejections add up the devices' sync reports.
	Retries, Conflicts, Rejections int
	// SyncErrors counts syncs that failed (faults outlasting the retries).
	SyncErrors int
	// Offline counts the times a device went offline.
	Offline int
	// Confirmed counts the orders the manager confirmed.
	Confirmed int
	// Elapsed is the run's duration, verification excluded.
	Elapsed time.Duration
	// Expected lists every record a device created, as the device left it.
	Expected []*Expected
	// Replicas lists the devices in use at the end of the day, whose
	// stores Verify compares with the server.
	Replicas []DeviceInfo
}

// Expected is one record a device created, with the fields it set.
type Expected struct {
	Collection schema.Collection
	ID         string
	// Username is the user whose device created it.
	Username string
	// Visit, Order or Photo holds what the device set.
	Visit *schema.Visit
	Order *schema.Order
	Photo *schema.Photo
}

// DeviceInfo is how to open a device's store again.
type DeviceInfo struct {
	Username, Password, DeviceID, StorePath string
}

// user is a user the simulation made.
type user struct {
	name, password, id string
	role               schema.Role
	territory          string
}

// customer is a customer the simulation made.
type customer struct {
	id, territory string
	lat, lng      float64
}

// device is one user's phone or tablet.
type device struct {
	user    *user
	info    DeviceInfo
	client  *fieldsync.Client
	faults  *faultyTransport
	offline int // syncs still to skip
}

// sim is one running simulation.
type sim struct {
	cfg       Config
	out       io.Writer
	rng       *rand.Rand
	res       *Result
	tag       string
	base      *http.Transport
	admin     *fieldsync.Client
	adminAPI  *adminAPI // signed in on first use
	customers []customer
	products  []string
	expected  map[string]*Expected
	devices   []*device
	nDevices  int
}

// Run simulates a field day against cfg.URL, writes a summary to out and
// verifies the outcome with Verify. The Result is returned even when the
// verification fails.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	cfg.defaults()
	if cfg.Dir == "" {
		return nil, errors.New("fieldsim: Config.Dir is required")
	}
	start := time.Now()
	tag := fmt.Sprintf("sim%d-%06x", cfg.Seed, time.Now().UnixNano()&0xffffff)
	s := &sim{
		cfg: cfg, out: out, tag: tag,
		rng:      rand.New(rand.NewPCG(cfg.Seed, 0x5eed)),
		res:      &Result{Tag: tag, Created: map[schema.Collection]int{}, Faults: map[string]int{}},
		base:     http.DefaultTransport.(*http.Transport).Clone(),
		expected: map[string]*Expected{},
	}
	defer s.base.CloseIdleConnections()
	err := s.day(ctx)
	for _, d := range s.devices {
		if d.client != nil {
			d.client.Close()
		}
	}
	if s.admin != nil {
		s.admin.Close()
	}
	s.res.Elapsed = time.Since(start)
	s.res.Devices = s.nDevices
	if err != nil {
		return s.res, err
	}
	PrintSummary(out, s.res)
	if err := Verify(ctx, cfg, s.res); err != nil {
		return s.res, err
	}
	return s.res, nil
}

// PrintSummary writes what a run did.
func PrintSummary(w io.Writer, r *Result) {
	fmt.Fprintf(w, "fieldsim run %s\n", r.Tag)
	fmt.Fprintf(w, "  devices:   %d\n", r.Devices)
	total := 0
	var parts []string
	for _, c := range schema.Collections() {
		if n := r.Created[c]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%s %d", c, n))
		}
	}
	fmt.Fprintf(w, "  created:   %d records (%s)\n", total, strings.Join(parts, ", "))
	nf := 0
	parts = parts[:0]
	for _, k := range faultKinds {
		nf += r.Faults[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, r.Faults[k]))
	}
	fmt.Fprintf(w, "  faults:    %d (%s)\n", nf, strings.Join(parts, ", "))
	fmt.Fprintf(w, "  retries:   %d; failed syncs: %d; offline spells: %d\n", r.Retries, r.SyncErrors, r.Offline)
	fmt.Fprintf(w, "  conflicts: %d; rejections: %d; orders confirmed by the manager: %d\n", r.Conflicts, r.Rejections, r.Confirmed)
	fmt.Fprintf(w, "  elapsed:   %s\n", r.Elapsed.Round(time.Millisecond))
}

// password is the password of a simulated user.
func (s *sim) password(name string) string { return "fieldsim-" + name + "-pw" }

// day runs the whole simulated day.
func (s *sim) day(ctx context.Context) error {
	var err error
	s.admin, err = fieldsync.Open(ctx, fieldsync.Config{
		BaseURL: s.cfg.URL, Username: s.cfg.Admin, Password: s.cfg.Password, DeviceID: s.tag + "-admin",
		StorePath: filepath.Join(s.cfg.Dir, "admin.db"), Logger: s.cfg.Logger,
		HTTPClient: &http.Client{Transport: s.base, Timeout: 30 * time.Second},
	})
	if err != nil {
		return err
	}
	dayStart := time.Now().UTC().Add(-10 * time.Hour).Truncate(time.Minute)
	reps, manager, distributor, plans, err := s.setup(ctx, dayStart)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}

	// Morning: every device signs in and pulls.
	var repDevs []*device
	for _, u := range reps {
		d, err := s.openDevice(ctx, u, "phone")
		if err != nil {
			return err
		}
		repDevs = append(repDevs, d)
	}
	mgr, err := s.openDevice(ctx, manager, "laptop")
	if err != nil {
		return err
	}
	dist, err := s.openDevice(ctx, distributor, "tablet")
	if err != nil {
		return err
	}
	for _, d := range s.devices {
		if err := s.syncClean(ctx, d); err != nil {
			return fmt.Errorf("morning pull of %s: %w", d.info.DeviceID, err)
		}
	}

	// The stops, one round at a time across the reps.
	reinstallAt := len(plans[0].Stops) / 2
	clock := make([]time.Time, len(repDevs))
	for i := range clock {
		clock[i] = dayStart.Add(time.Duration(i) * 7 * time.Minute)
	}
	if s.cfg.Stops != nil {
		s.cfg.Stops(true)
	}
	for stop := 0; ; stop++ {
		worked := false
		for i, d := range repDevs {
			stops := s.myStops(ctx, d, plans[i])
			if stop >= len(stops) {
				continue
			}
			worked = true
			if d.offline == 0 && s.rng.Float64() < s.cfg.OfflineRate {
				d.offline = 2 + s.rng.IntN(3)
				s.res.Offline++
			}
			if err := s.visit(ctx, d, plans[i].id, stops[stop], i, stop, &clock[i], i == 0 && stop == 0); err != nil {
				return err
			}
			if i == 0 && stop == reinstallAt {
				if repDevs[0], err = s.reinstall(ctx, d); err != nil {
					return err
				}
			}
		}
		if !worked {
			break
		}
		if s.cfg.Round != nil {
			s.cfg.Round(stop)
		}
	}
	if s.cfg.Stops != nil {
		s.cfg.Stops(false)
	}

	// Afternoon: reps sync, the manager confirms a submitted order, the
	// distributor orders for a customer it serves.
	for _, d := range repDevs {
		d.offline = 0
		if err := s.syncClean(ctx, d); err != nil {
			return err
		}
	}
	if err := s.confirmOrder(ctx, mgr); err != nil {
		return err
	}
	if err := s.distributorOrder(ctx, dist, dayStart); err != nil {
		return err
	}

	// Evening: faults off, every device syncs clean; a second round pulls
	// what the others' last pushes changed.
	for round := 0; round < 2; round++ {
		for _, d := range s.devices {
			if d.client == nil {
				continue
			}
			d.faults.setEnabled(false)
			d.offline = 0
			rep, err := d.client.Sync(ctx)
			s.count(rep)
			if err != nil {
				return fmt.Errorf("final sync of %s: %w", d.info.DeviceID, err)
			}
			if n, err := d.client.Pending(ctx); err != nil || n > 0 {
				return fmt.Errorf("final sync of %s left %d changes pending (%v)", d.info.DeviceID, n, err)
			}
		}
	}
	for _, d := range s.devices {
		if d.client == nil {
			continue
		}
		rejections, err := d.client.Rejections(ctx)
		if err != nil {
			return err
		}
		for _, r := range rejections {
			fmt.Fprintf(s.out, "  rejected on %s: %s %s: %v\n", d.info.DeviceID, r.Collection, r.ID, r.Error)
		}
		s.res.Replicas = append(s.res.Replicas, d.info)
	}
	keys := make([]string, 0, len(s.expected))
	for k := range s.expected {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s.res.Expected = append(s.res.Expected, s.expected[k])
		s.res.Created[s.expected[k].Collection]++
	}
	return nil
}

// plan is a route plan the simulation made.
type plan struct {
	id    string
	Stops []customer
}

// setup creates, as the admin, the territories, customers, products,
// users and route plans of the day.
func (s *sim) setup(ctx context.Context, dayStart time.Time) (reps []*user, manager, distributor *user, plans []plan, err error) {
	t := []string{s.tag + "-north", s.tag + "-south"}
	distID := s.tag + "-dist"
	put := func(coll schema.Collection, id string, data any) {
		if err == nil {
			err = s.admin.Put(ctx, coll, id, data)
		}
	}
	put(schema.Territories, t[0], schema.Territory{Name: "North " + s.tag, Region: "EU"})
	put(schema.Territories, t[1], schema.Territory{Name: "South " + s.tag, Region: "EU"})
	origin := [][2]float64{{52.52, 13.405}, {48.137, 11.575}}
	for ti, terr := range t {
		for i := range 5 {
			c := customer{id: fmt.Sprintf("%s-c%d%d", s.tag, ti, i), territory: terr,
				lat: origin[ti][0] + float64(i)*0.01, lng: origin[ti][1] + float64(i)*0.01}
			data := schema.Customer{Code: fmt.Sprintf("C%d%d", ti, i), Name: "Outlet " + c.id, TerritoryID: terr,
				Grade: "ABCD"[i%4 : i%4+1], Lat: &c.lat, Lng: &c.lng, PaymentTermsDays: 30}
			if i < 2 {
				data.DistributorID = distID
			}
			put(schema.Customers, c.id, data)
			s.customers = append(s.customers, c)
		}
	}
	for i, p := range []schema.Product{{SKU: "COLA", Name: "Cola", Unit: "case", Price: 1299, Active: true},
		{SKU: "WATER", Name: "Water", Unit: "case", Price: 499, Active: true}} {
		id := fmt.Sprintf("%s-p%d", s.tag, i)
		p.SKU += "-" + s.tag
		put(schema.Products, id, p)
		s.products = append(s.products, id)
	}
	if err != nil {
		return
	}
	for i := range s.cfg.Reps {
		var u *user
		if u, err = s.createUser(ctx, fmt.Sprintf("%s-rep%d", s.tag, i), schema.RoleRep, "", t[i%2]); err != nil {
			return
		}
		reps = append(reps, u)
	}
	if manager, err = s.createUser(ctx, s.tag+"-mgr", schema.RoleManager, "", t...); err != nil {
		return
	}
	if distributor, err = s.createUser(ctx, s.tag+"-distr", schema.RoleDistributor, distID); err != nil {
		return
	}
	date := dayStart.Format(time.DateOnly)
	for i, u := range reps {
		var mine []customer
		for _, c := range s.customers {
			if c.territory == u.territory {
				mine = append(mine, c)
			}
		}
		s.rng.Shuffle(len(mine), func(a, b int) { mine[a], mine[b] = mine[b], mine[a] })
		mine = mine[:4]
		p := plan{id: fmt.Sprintf("%s-plan%d", s.tag, i), Stops: mine}
		rp := schema.RoutePlan{RepID: u.id, Date: date}
		for j, c := range mine {
			rp.Stops = append(rp.Stops, schema.Stop{CustomerID: c.id, Position: j + 1, Status: schema.StopPlanned})
		}
		put(schema.RoutePlans, p.id, rp)
		plans = append(plans, p)
	}
	if err != nil {
		return
	}
	rep, err := s.admin.Sync(ctx)
	if err == nil && rep.Rejected+rep.Conflicts > 0 {
		err = fmt.Errorf("the server refused part of the setup: %+v", rep)
	}
	return
}

// createUser adds a user through POST /v1/admin/users.
func (s *sim) createUser(ctx context.Context, name string, role schema.Role, distributor string, territories ...string) (*user, error) {
	if s.adminAPI == nil {
		var err error
		if s.adminAPI, err = newAdminAPI(ctx, s.cfg); err != nil {
			return nil, err
		}
	}
	a := s.adminAPI
	u := &user{name: name, password: s.password(name), role: role}
	if len(territories) > 0 {
		u.territory = territories[0]
	}
	var created schema.User
	status, err := a.call(ctx, http.MethodPost, "/v1/admin/users", map[string]any{
		"username": name, "password": u.password, "role": role, "territories": territories, "distributor_id": distributor}, &created)
	if err != nil {
		return nil, err
	}
	if status != http.StatusCreated {
		return nil, fmt.Errorf("create user %s: status %d", name, status)
	}
	u.id = created.ID
	return u, nil
}

// openDevice gives a user a new device with an empty store and a faulty
// transport.
func (s *sim) openDevice(ctx context.Context, u *user, kind string) (*device, error) {
	s.nDevices++
	id := fmt.Sprintf("%s-%s-%d", u.name, kind, s.nDevices)
	d := &device{user: u, info: DeviceInfo{Username: u.name, Password: u.password, DeviceID: id,
		StorePath: filepath.Join(s.cfg.Dir, id+".db")}}
	d.faults = newFaultyTransport(s.base, s.cfg.Seed*1000+uint64(s.nDevices), s.cfg.FaultRate, s.res.Faults)
	c, err := fieldsync.Open(ctx, fieldsync.Config{
		BaseURL: s.cfg.URL, Username: u.name, Password: u.password, DeviceID: id, StorePath: d.info.StorePath,
		HTTPClient: &http.Client{Transport: d.faults, Timeout: 10 * time.Second},
		Logger:     s.cfg.Logger, Retry: s.cfg.Retry,
	})
	if err != nil {
		return nil, err
	}
	d.client = c
	s.devices = append(s.devices, d)
	return d, nil
}

// count adds a sync report to the totals.
func (s *sim) count(rep fieldsync.SyncReport) {
	s.res.Retries += rep.Retries
	s.res.Conflicts += rep.Conflicts
	s.res.Rejections += rep.Rejected
}

// maybeSync syncs a device that is online, with probability p. A failed
// sync is counted and left for later, as a phone would.
func (s *sim) maybeSync(ctx context.Context, d *device, p float64) {
	if d.offline > 0 {
		d.offline--
		return
	}
	if s.rng.Float64() >= p {
		return
	}
	rep, err := d.client.Sync(ctx)
	s.count(rep)
	if err != nil {
		s.res.SyncErrors++
	}
}

// syncClean syncs a device until it succeeds with nothing pending, faults
// still on; after many failures it turns its faults off.
func (s *sim) syncClean(ctx context.Context, d *device) error {
	var last error
	for attempt := range 40 {
		if attempt == 30 {
			d.faults.setEnabled(false)
			defer d.faults.setEnabled(true)
		}
		rep, err := d.client.Sync(ctx)
		s.count(rep)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			s.res.SyncErrors++
			last = err
			continue
		}
		n, err := d.client.Pending(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		last = fmt.Errorf("%d changes still pending", n)
	}
	return fmt.Errorf("%s never synced clean: %w", d.info.DeviceID, last)
}

// myStops reads the rep's route plan from its device, as the app would;
// it falls back to the plan as created if the device lacks it.
func (s *sim) myStops(ctx context.Context, d *device, p plan) []customer {
	rec, err := d.client.Get(ctx, schema.RoutePlans, p.id)
	if err != nil {
		return p.Stops
	}
	var rp schema.RoutePlan
	if rec.Decode(&rp) != nil {
		return p.Stops
	}
	var out []customer
	for _, st := range rp.Stops {
		for _, c := range s.customers {
			if c.id == st.CustomerID {
				out = append(out, c)
			}
		}
	}
	return out
}

// visit works one stop: check in (sometimes far from the outlet), check
// out later, take photos, maybe take an order.
func (s *sim) visit(ctx context.Context, d *device, planID string, c customer, rep, stop int, clock *time.Time, forceSubmit bool) error {
	*clock = clock.Add(time.Duration(20+s.rng.IntN(40)) * time.Minute)
	lat, lng := c.lat, c.lng
	if s.rng.Float64() < 0.2 {
		lat += 0.05 // checked in some 5 km away
	}
	id := fmt.Sprintf("%s-v%d-%d", s.tag, rep, stop)
	v := schema.Visit{CustomerID: c.id, RoutePlanID: planID,
		CheckIn: schema.GeoPoint{At: *clock, Lat: &lat, Lng: &lng, Accuracy: 8},
		Notes:   fmt.Sprintf("stop %d of %s: shelf checked", stop+1, d.user.name)}
	if err := d.client.Put(ctx, schema.Visits, id, v); err != nil {
		return fmt.Errorf("check in: %w", err)
	}
	s.expect(&Expected{Collection: schema.Visits, ID: id, Username: d.user.name, Visit: &v})
	s.maybeSync(ctx, d, 0.5)

	*clock = clock.Add(time.Duration(10+s.rng.IntN(30)) * time.Minute)
	out := *clock
	v.CheckOut = &schema.GeoPoint{At: out, Lat: &lat, Lng: &lng, Accuracy: 10}
	v.Outcome = "done"
	if err := d.client.Put(ctx, schema.Visits, id, v); err != nil {
		return fmt.Errorf("check out: %w", err)
	}
	for p := range 1 + s.rng.IntN(3) {
		body, err := s.jpeg()
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		pid := fmt.Sprintf("%s-ph%d", id, p)
		taken := v.CheckIn.At.Add(time.Duration(p+1) * time.Minute)
		if err := d.client.AddPhoto(ctx, pid, id, body, fieldsync.PhotoInfo{TakenAt: taken, Lat: &lat, Lng: &lng}); err != nil {
			return fmt.Errorf("add photo: %w", err)
		}
		s.expect(&Expected{Collection: schema.Photos, ID: pid, Username: d.user.name,
			Photo: &schema.Photo{VisitID: id, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}})
	}
	if forceSubmit || s.rng.Float64() < 0.6 {
		o := schema.Order{CustomerID: c.id, VisitID: id, Status: schema.OrderDraft}
		if forceSubmit || s.rng.IntN(2) == 0 {
			o.Status = schema.OrderSubmitted
		}
		for _, p := range s.products[:1+s.rng.IntN(len(s.products))] {
			o.Lines = append(o.Lines, schema.OrderLine{ProductID: p, Quantity: int64(1 + s.rng.IntN(10))})
		}
		oid := "o-" + id
		if err := d.client.Put(ctx, schema.Orders, oid, o); err != nil {
			return fmt.Errorf("order: %w", err)
		}
		s.expect(&Expected{Collection: schema.Orders, ID: oid, Username: d.user.name, Order: &o})
	}
	s.maybeSync(ctx, d, 0.7)
	return nil
}

// expect records (or updates) what a device created.
func (s *sim) expect(e *Expected) { s.expected[string(e.Collection)+"/"+e.ID] = e }

// jpeg encodes a tiny JPEG of a random colour with a few random pixels,
// so that every photo has its own hash.
func (s *sim) jpeg() ([]byte, error) {
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	bg := color.RGBA{uint8(s.rng.IntN(256)), uint8(s.rng.IntN(256)), uint8(s.rng.IntN(256)), 255}
	for y := range 16 {
		for x := range 16 {
			img.Set(x, y, bg)
		}
	}
	for range 8 {
		img.Set(s.rng.IntN(16), s.rng.IntN(16), color.RGBA{uint8(s.rng.IntN(256)), uint8(s.rng.IntN(256)), uint8(s.rng.IntN(256)), 255})
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// reinstall syncs a device clean, closes it, and gives its user a fresh
// store, which pulls everything again.
func (s *sim) reinstall(ctx context.Context, d *device) (*device, error) {
	if err := s.syncClean(ctx, d); err != nil {
		return nil, fmt.Errorf("sync before reinstall: %w", err)
	}
	if err := d.client.Close(); err != nil {
		return nil, err
	}
	d.client = nil
	fresh, err := s.openDevice(ctx, d.user, "phone")
	if err != nil {
		return nil, err
	}
	if err := s.syncClean(ctx, fresh); err != nil {
		return nil, fmt.Errorf("first sync after reinstall: %w", err)
	}
	fmt.Fprintf(s.out, "  reinstalled %s as %s\n", d.info.DeviceID, fresh.info.DeviceID)
	return fresh, nil
}

// confirmOrder has the manager confirm the first submitted order it sees.
func (s *sim) confirmOrder(ctx context.Context, mgr *device) error {
	if err := s.syncClean(ctx, mgr); err != nil {
		return err
	}
	orders, err := mgr.client.List(ctx, schema.Orders)
	if err != nil {
		return err
	}
	for _, r := range orders {
		var o schema.Order
		if err := r.Decode(&o); err != nil {
			return err
		}
		if o.Status != schema.OrderSubmitted || !strings.HasPrefix(r.ID, "o-"+s.tag) {
			continue
		}
		o.Status = schema.OrderConfirmed
		if err := mgr.client.Put(ctx, schema.Orders, r.ID, o); err != nil {
			return err
		}
		s.res.Confirmed++
		break
	}
	if s.res.Confirmed == 0 {
		return errors.New("the manager sees no submitted order to confirm")
	}
	return s.syncClean(ctx, mgr)
}

// distributorOrder has the distributor order for a customer it serves.
func (s *sim) distributorOrder(ctx context.Context, dist *device, dayStart time.Time) error {
	custs, err := dist.client.List(ctx, schema.Customers)
	if err != nil {
		return err
	}
	if len(custs) == 0 {
		return errors.New("the distributor sees no customer")
	}
	c := custs[s.rng.IntN(len(custs))]
	o := schema.Order{CustomerID: c.ID, Status: schema.OrderSubmitted, Notes: "distributor restock",
		RequestedDeliveryDate: dayStart.AddDate(0, 0, 2).Format(time.DateOnly),
		Lines:                 []schema.OrderLine{{ProductID: s.products[0], Quantity: 24}}}
	id := s.tag + "-dorder"
	if err := dist.client.Put(ctx, schema.Orders, id, o); err != nil {
		return err
	}
	s.expect(&Expected{Collection: schema.Orders, ID: id, Username: dist.user.name, Order: &o})
	return s.syncClean(ctx, dist)
}

// adminAPI calls the server as the admin, without faults.
type adminAPI struct {
	url, token string
	http       *http.Client
}

// newAdminAPI signs the admin in.
func newAdminAPI(ctx context.Context, cfg Config) (*adminAPI, error) {
	return login(ctx, cfg.URL, cfg.Admin, cfg.Password)
}

// login signs a user in for raw API calls.
func login(ctx context.Context, url, username, password string) (*adminAPI, error) {
	a := &adminAPI{url: url, http: &http.Client{Timeout: 30 * time.Second}}
	var tok schema.TokenResponse
	status, err := a.call(ctx, http.MethodPost, "/v1/auth/login",
		schema.LoginRequest{Username: username, Password: password, DeviceID: "fieldsim-verify"}, &tok)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK || tok.AccessToken == "" {
		return nil, fmt.Errorf("login %s: status %d", username, status)
	}
	a.token = tok.AccessToken
	return a, nil
}

// call sends a JSON request and decodes a 2xx answer into out.
func (a *adminAPI) call(ctx context.Context, method, path string, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if b, ok := out.(*[]byte); ok {
			*b = raw
			return resp.StatusCode, nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}
