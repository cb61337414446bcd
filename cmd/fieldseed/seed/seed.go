// Package seed loads a realistic fieldsync data set through the push API,
// the way an ERP integration would: territories, rep and manager users,
// customers, products, price lists and route plans.
//
// Everything is derived from a seed: the same Config loads the same
// records with the same mutation ids, so running it again gets the
// server's remembered answers and writes nothing.
package seed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// DeviceID is the device the seeding admin session signs in on.
const DeviceID = "fieldseed"

// MaxBatch is the most mutations sent in one push.
const MaxBatch = 500

// Config says which server to load and how much. Zero counts take the
// defaults of Defaults.
type Config struct {
	// URL is the server's base address, such as http://127.0.0.1:8080.
	URL string
	// Admin and Password sign in the admin that loads the data.
	Admin    string
	Password string
	// UserPassword is the password of every user created; empty means
	// "<username>-password".
	UserPassword string
	// Territories, RepsPerTerritory, Customers, Products and PriceLists
	// are how many of each to load.
	Territories      int
	RepsPerTerritory int
	Customers        int
	Products         int
	PriceLists       int
	// Days is how many days of route plans each rep gets, from today.
	Days int
	// Seed drives every pseudo-random choice.
	Seed uint64
	// HTTPClient sends the requests; default one with a 2-minute timeout.
	HTTPClient *http.Client
	// Now is the clock that says which day is today; default time.Now.
	Now func() time.Time
}

// Defaults returns the default data set: 5 territories of 4 reps, 2,000
// customers, 200 products, 10 price lists and 30 days of route plans.
func Defaults() Config {
	return Config{Territories: 5, RepsPerTerritory: 4, Customers: 2000, Products: 200, PriceLists: 10, Days: 30, Seed: 1}
}

// Summary counts what Run loaded.
type Summary struct {
	// Territories … RoutePlans count the records sent.
	Territories, Customers, Products, PriceLists, RoutePlans int
	// Reps and Managers count the users; UsersCreated those that did not
	// exist yet.
	Reps, Managers, UsersCreated int
	// Mutations counts the mutations pushed, Batches the pushes.
	Mutations, Batches int
	// Applied, AlreadyThere, Conflicts and Rejected count the answers.
	// Applied mutations wrote their record; AlreadyThere ones were answered
	// again for a record an earlier run wrote (nothing new was written). A
	// conflict means the record exists with other data (seeded with another
	// Config).
	Applied, AlreadyThere, Conflicts, Rejected int
	// Rejections describes the first few rejections.
	Rejections []string
	// Elapsed is the time Run took.
	Elapsed time.Duration
}

// userPassword returns the password a seeded user gets under cfg.
func (cfg Config) userPassword(username string) string {
	if cfg.UserPassword != "" {
		return cfg.UserPassword
	}
	return username + "-password"
}

// RepName returns the username of the n-th rep (from 1); reps are numbered
// across territories, RepsPerTerritory to a territory.
func RepName(n int) string { return fmt.Sprintf("rep%d", n) }

// TerritoryID returns the id of the i-th territory (from 0).
func TerritoryID(i int) string { return fmt.Sprintf("t-%02d", i+1) }

// Run loads the data set cfg describes and writes the users' passwords and
// a summary to w. Records the server rejects make it return an error after
// everything was sent.
func Run(ctx context.Context, w io.Writer, cfg Config) (Summary, error) {
	const op = "seed.Run"
	start := time.Now()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.Territories < 1 || cfg.RepsPerTerritory < 0 || cfg.Customers < 0 || cfg.Products < 0 || cfg.PriceLists < 0 || cfg.Days < 0 {
		return Summary{}, fmt.Errorf("%s: counts must not be negative, and there must be a territory", op)
	}
	a := &adminSession{base: strings.TrimRight(cfg.URL, "/"), hc: cfg.HTTPClient, user: cfg.Admin, pass: cfg.Password}
	d := generate(cfg)
	var sum Summary
	there, err := a.existing(ctx)
	if err != nil {
		return sum, fmt.Errorf("%s: %w", op, err)
	}
	a.there = there
	sum.Territories, sum.Customers, sum.Products, sum.PriceLists = len(d.territories), len(d.customers), len(d.products), len(d.priceLists)

	if err := a.push(ctx, &sum, d.territories); err != nil {
		return sum, fmt.Errorf("%s: %w", op, err)
	}
	fmt.Fprintf(w, "%-12s %-22s %-8s %s\n", "USER", "PASSWORD", "ROLE", "TERRITORIES")
	repIDs := map[string]string{}
	for _, u := range d.users {
		id, created, err := a.ensureUser(ctx, u, cfg.userPassword(u.username))
		if err != nil {
			return sum, fmt.Errorf("%s: %w", op, err)
		}
		if created {
			sum.UsersCreated++
		}
		if u.role == schema.RoleRep {
			sum.Reps++
			repIDs[u.username] = id
		} else {
			sum.Managers++
		}
		fmt.Fprintf(w, "%-12s %-22s %-8s %s\n", u.username, cfg.userPassword(u.username), u.role, strings.Join(u.territories, ","))
	}
	plans := d.routePlans(cfg, repIDs)
	sum.RoutePlans = len(plans)
	for _, ms := range [][]schema.Mutation{d.customers, d.products, d.priceLists, plans} {
		if err := a.push(ctx, &sum, ms); err != nil {
			return sum, fmt.Errorf("%s: %w", op, err)
		}
	}
	sum.Elapsed = time.Since(start)
	fmt.Fprintf(w, "\nloaded %d territories, %d reps, %d managers (%d new), %d customers, %d products, %d price lists, %d route plans\n",
		sum.Territories, sum.Reps, sum.Managers, sum.UsersCreated, sum.Customers, sum.Products, sum.PriceLists, sum.RoutePlans)
	fmt.Fprintf(w, "pushed %d mutations in %d batches: %d applied, %d already there, %d conflicts (exist with other data), %d rejected; elapsed %s\n",
		sum.Mutations, sum.Batches, sum.Applied, sum.AlreadyThere, sum.Conflicts, sum.Rejected, sum.Elapsed.Round(time.Millisecond))
	for _, r := range sum.Rejections {
		fmt.Fprintf(w, "rejected: %s\n", r)
	}
	if sum.Rejected > 0 {
		return sum, fmt.Errorf("%s: the server rejected %d records", op, sum.Rejected)
	}
	return sum, nil
}

// create returns the mutation that creates a record. Its id is a hash of
// the record, so the same record is always the same mutation.
func create(coll schema.Collection, id string, data any) schema.Mutation {
	raw, err := json.Marshal(data)
	if err != nil {
		panic(err) // the records are plain structs
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s/%s\n", coll, id)
	h.Write(raw)
	return schema.Mutation{MutationID: "seed-" + hex.EncodeToString(h.Sum(nil))[:32], Collection: coll, ID: id, Op: schema.MutationUpsert, Data: raw}
}

// user is a user to create.
type user struct {
	username    string
	role        schema.Role
	territories []string
}

// dataset is the generated records, except the route plans, which need the
// reps' ids.
type dataset struct {
	territories, customers, products, priceLists []schema.Mutation
	users                                        []user
	byTerritory                                  [][]string // customer ids per territory
}

// city is where a territory's customers are.
type city struct {
	name, region string
	lat, lng     float64
}

var cities = []city{
	{"Berlin", "North", 52.5200, 13.4050}, {"Munich", "South", 48.1372, 11.5756},
	{"Cologne", "West", 50.9375, 6.9603}, {"Leipzig", "East", 51.3397, 12.3731},
	{"Hamburg", "North", 53.5511, 9.9937}, {"Stuttgart", "South", 48.7758, 9.1829},
	{"Frankfurt", "West", 50.1109, 8.6821}, {"Dresden", "East", 51.0504, 13.7373},
	{"Hanover", "North", 52.3759, 9.7320}, {"Nuremberg", "South", 49.4521, 11.0767},
}

var (
	shopKinds  = []string{"Corner Shop", "Mini Market", "Kiosk", "Supermarket", "Pharmacy", "Bakery", "Petrol Station", "Cafe", "Cash & Carry", "Deli"}
	surnames   = []string{"Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Yilmaz", "Nowak", "Rossi"}
	firstNames = []string{"Anna", "Ben", "Clara", "David", "Elif", "Felix", "Greta", "Hannah", "Jonas", "Lena", "Mehmet", "Nina", "Paul", "Sara", "Tim"}
	streets    = []string{"Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schulstraße", "Marktplatz", "Lindenallee", "Kirchgasse", "Ringstraße"}
	roles      = []string{"Owner", "Store Manager", "Buyer", "Cashier"}
	brands     = []string{"Fizz", "Alpen", "Sunny", "Nordic", "Crispy", "Golden", "Vita", "Urban"}
	items      = []struct{ name, unit string }{{"Cola 0.5 l", "each"}, {"Water 1.5 l", "each"}, {"Orange Juice 1 l", "each"}, {"Crisps 150 g", "pack"}, {"Chocolate 100 g", "each"}, {"Coffee 500 g", "pack"}, {"Beer 24×0.33 l", "case"}, {"Cola 24×0.33 l", "case"}, {"Rice", "kg"}, {"Flour", "kg"}, {"Biscuits 200 g", "pack"}, {"Energy Drink 0.25 l", "each"}}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// territoryCity returns the city of the i-th territory and the
// territory's name.
func territoryCity(i int) (city, string) {
	c := cities[i%len(cities)]
	if n := i / len(cities); n > 0 {
		return c, fmt.Sprintf("%s %d", c.name, n+1)
	}
	return c, c.name
}

// generate makes the data set of cfg. Each kind of record has its own
// random stream, so that changing one count leaves the others' records as
// they were.
func generate(cfg Config) *dataset {
	d := &dataset{byTerritory: make([][]string, cfg.Territories)}
	regions := map[string][]string{}
	var regionOrder []string
	for i := range cfg.Territories {
		c, name := territoryCity(i)
		tid := TerritoryID(i)
		d.territories = append(d.territories, create(schema.Territories, tid, schema.Territory{Name: name, Region: c.region}))
		if _, ok := regions[c.region]; !ok {
			regionOrder = append(regionOrder, c.region)
		}
		regions[c.region] = append(regions[c.region], tid)
		for r := range cfg.RepsPerTerritory {
			d.users = append(d.users, user{RepName(i*cfg.RepsPerTerritory + r + 1), schema.RoleRep, []string{tid}})
		}
	}
	for _, region := range regionOrder {
		d.users = append(d.users, user{"manager-" + strings.ToLower(region), schema.RoleManager, regions[region]})
	}

	rc := rand.New(rand.NewPCG(cfg.Seed, 1))
	for k := range cfg.Customers {
		t := k % cfg.Territories
		c, _ := territoryCity(t)
		id := fmt.Sprintf("c-%05d", k+1)
		d.byTerritory[t] = append(d.byTerritory[t], id)
		lat, lng := around(rc, c.lat, c.lng, 12_000)
		grade := grades(rc)
		contacts := []schema.Contact{{Name: pick(rc, firstNames) + " " + pick(rc, surnames), Role: pick(rc, roles), Phone: fmt.Sprintf("+49 %d %07d", 30+rc.IntN(900), rc.IntN(10_000_000))}}
		if rc.IntN(3) == 0 {
			contacts = append(contacts, schema.Contact{Name: pick(rc, firstNames) + " " + pick(rc, surnames), Role: pick(rc, roles)})
		}
		limit := map[string]int64{"A": 5_000_000, "B": 2_000_000, "C": 1_000_000, "D": 300_000}[grade]
		cust := schema.Customer{
			Code:             fmt.Sprintf("C%05d", k+1),
			Name:             pick(rc, surnames) + "'s " + pick(rc, shopKinds),
			Address:          fmt.Sprintf("%s %d, %s", pick(rc, streets), 1+rc.IntN(180), c.name),
			TerritoryID:      TerritoryID(t),
			Lat:              &lat,
			Lng:              &lng,
			Grade:            grade,
			Contacts:         contacts,
			CreditLimit:      limit + int64(rc.IntN(10))*limit/10,
			PaymentTermsDays: pick(rc, []int{0, 7, 14, 30, 60}),
			Tags:             []string{strings.ToLower(c.name)},
		}
		d.customers = append(d.customers, create(schema.Customers, id, cust))
	}

	rp := rand.New(rand.NewPCG(cfg.Seed, 2))
	prices := make([]int64, cfg.Products)
	for k := range cfg.Products {
		it := pick(rp, items)
		prices[k] = int64(49 + rp.IntN(4950))
		if it.unit == "case" {
			prices[k] *= 6
		}
		d.products = append(d.products, create(schema.Products, fmt.Sprintf("p-%04d", k+1), schema.Product{
			SKU: fmt.Sprintf("SKU-%05d", k+1), Name: pick(rp, brands) + " " + it.name, Unit: it.unit, Price: prices[k], Active: rp.IntN(20) != 0}))
	}

	rl := rand.New(rand.NewPCG(cfg.Seed, 3))
	year := cfg.Now().Year()
	for k := range cfg.PriceLists {
		t := k % cfg.Territories
		_, tname := territoryCity(t)
		pl := schema.PriceList{Name: fmt.Sprintf("Key accounts %s %d", tname, k/cfg.Territories+1),
			ValidFrom: fmt.Sprintf("%d-01-01", year), ValidTo: fmt.Sprintf("%d-12-31", year)}
		custs := d.byTerritory[t]
		for _, i := range rl.Perm(len(custs))[:min(len(custs), 5+rl.IntN(26))] {
			pl.CustomerIDs = append(pl.CustomerIDs, custs[i])
		}
		for _, i := range rl.Perm(cfg.Products)[:min(cfg.Products, 10+rl.IntN(41))] {
			item := schema.PriceItem{ProductID: fmt.Sprintf("p-%04d", i+1), Price: prices[i] * int64(85+rl.IntN(11)) / 100}
			if rl.IntN(4) == 0 {
				item.MinQuantity = 10
			}
			pl.Items = append(pl.Items, item)
		}
		d.priceLists = append(d.priceLists, create(schema.PriceLists, fmt.Sprintf("pl-%02d", k+1), pl))
	}
	return d
}

// routePlans makes each rep's plans for cfg.Days days from today: 8 to 20
// stops at the customers of the rep's territory. A plan's stops depend
// only on the seed, the rep and the date, so runs on later days add the
// new days and leave the others as they were.
func (d *dataset) routePlans(cfg Config, repIDs map[string]string) []schema.Mutation {
	today := cfg.Now()
	var out []schema.Mutation
	for _, u := range d.users {
		if u.role != schema.RoleRep {
			continue
		}
		custs := d.byTerritory[territoryIndex(u.territories[0])]
		for day := range cfg.Days {
			date := today.AddDate(0, 0, day).Format(time.DateOnly)
			id := "rp-" + u.username + "-" + date
			h := fnv.New64a()
			h.Write([]byte(id))
			r := rand.New(rand.NewPCG(cfg.Seed, h.Sum64()))
			plan := schema.RoutePlan{RepID: repIDs[u.username], Date: date}
			for pos, i := range r.Perm(len(custs))[:min(len(custs), 8+r.IntN(13))] {
				from := 8*60 + pos*30
				plan.Stops = append(plan.Stops, schema.Stop{CustomerID: custs[i], Position: pos, Status: schema.StopPlanned,
					WindowStart: fmt.Sprintf("%02d:%02d", from/60, from%60), WindowEnd: fmt.Sprintf("%02d:%02d", (from+25)/60, (from+25)%60)})
			}
			out = append(out, create(schema.RoutePlans, id, plan))
		}
	}
	return out
}

// territoryIndex is the inverse of TerritoryID.
func territoryIndex(id string) int {
	var n int
	fmt.Sscanf(id, "t-%d", &n)
	return n - 1
}

// grades draws a grade: 10% A, 20% B, 40% C, 30% D.
func grades(r *rand.Rand) string {
	switch n := r.IntN(10); {
	case n < 1:
		return "A"
	case n < 3:
		return "B"
	case n < 7:
		return "C"
	}
	return "D"
}

// around returns a point within radius metres of a centre, denser near it,
// rounded to 6 decimals (about 10 cm).
func around(r *rand.Rand, lat, lng, radius float64) (float64, float64) {
	dist := radius * math.Sqrt(r.Float64())
	angle := 2 * math.Pi * r.Float64()
	dlat := dist * math.Cos(angle) / 111_320
	dlng := dist * math.Sin(angle) / (111_320 * math.Cos(lat*math.Pi/180))
	round := func(v float64) float64 { return math.Round(v*1e6) / 1e6 }
	return round(lat + dlat), round(lng + dlng)
}

// adminSession calls the API as the admin, signing in again when the
// access token has expired.
type adminSession struct {
	base, user, pass, token string
	hc                      *http.Client
	there                   map[string]bool // records on the server before the run (recordKey)
}

// call sends a JSON request and decodes a 2xx answer into out. It returns
// the status, and an error for network failures and statuses other than
// 2xx and those in ok.
func (a *adminSession) call(ctx context.Context, method, path, token string, in, out any, ok ...int) (int, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode/100 == 2 {
		if out != nil {
			return resp.StatusCode, json.Unmarshal(raw, out)
		}
		return resp.StatusCode, nil
	}
	for _, s := range ok {
		if s == resp.StatusCode {
			return resp.StatusCode, nil
		}
	}
	return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(raw))
}

// login signs a user in and returns its access token and user id.
func (a *adminSession) login(ctx context.Context, username, password string) (token, id string, err error) {
	var ans schema.TokenResponse
	_, err = a.call(ctx, "POST", "/v1/auth/login", "", schema.LoginRequest{Username: username, Password: password, DeviceID: DeviceID}, &ans)
	if err != nil {
		return "", "", err
	}
	if ans.User == nil {
		return "", "", errors.New("the sign-in answer names no user")
	}
	return ans.AccessToken, ans.User.ID, nil
}

// asAdmin is call with the admin's token.
func (a *adminSession) asAdmin(ctx context.Context, method, path string, in, out any, ok ...int) (int, error) {
	if a.token != "" {
		status, err := a.call(ctx, method, path, a.token, in, out, append(ok, http.StatusUnauthorized)...)
		if status != http.StatusUnauthorized {
			return status, err
		}
	}
	token, _, err := a.login(ctx, a.user, a.pass)
	if err != nil {
		return 0, fmt.Errorf("admin sign-in: %w", err)
	}
	a.token = token
	return a.call(ctx, method, path, a.token, in, out, ok...)
}

// ensureUser creates a user, or finds the id of the one of that name by
// signing it in with the password it would have been given.
func (a *adminSession) ensureUser(ctx context.Context, u user, password string) (id string, created bool, err error) {
	var ans struct {
		ID string `json:"id"`
	}
	status, err := a.asAdmin(ctx, "POST", "/v1/admin/users", map[string]any{
		"username": u.username, "password": password, "role": u.role, "territories": u.territories}, &ans, http.StatusConflict)
	if err != nil {
		return "", false, fmt.Errorf("create user %s: %w", u.username, err)
	}
	if status != http.StatusConflict {
		return ans.ID, true, nil
	}
	_, id, err = a.login(ctx, u.username, password)
	if err != nil {
		return "", false, fmt.Errorf("user %s exists but does not sign in with the seeded password: %w", u.username, err)
	}
	return id, false, nil
}

// recordKey names a record in the set of those already on the server.
func recordKey(c schema.Collection, id string) string { return string(c) + "/" + id }

// existing pulls, as the admin, which records the server has before this
// run writes any.
func (a *adminSession) existing(ctx context.Context) (map[string]bool, error) {
	there := map[string]bool{}
	checkpoint := ""
	for {
		var page schema.PullResponse
		if _, err := a.asAdmin(ctx, "POST", "/v1/sync/pull", schema.PullRequest{Checkpoint: checkpoint, Limit: 500}, &page); err != nil {
			return nil, err
		}
		for _, c := range page.Changes {
			there[recordKey(c.Collection, c.ID)] = !c.Deleted
		}
		if !page.HasMore {
			return there, nil
		}
		checkpoint = page.Checkpoint
	}
}

// push sends mutations in batches of at most MaxBatch and counts the
// answers.
func (a *adminSession) push(ctx context.Context, sum *Summary, ms []schema.Mutation) error {
	for len(ms) > 0 {
		batch := ms[:min(len(ms), MaxBatch)]
		ms = ms[len(batch):]
		req, err := schema.NewPushRequest(DeviceID, batch)
		if err != nil {
			return err
		}
		var ans schema.PushResponse
		if _, err := a.asAdmin(ctx, "POST", "/v1/sync/push", req, &ans); err != nil {
			return err
		}
		if len(ans.Results) != len(batch) {
			return errors.New("push: the server answered a different number of results")
		}
		sum.Batches++
		sum.Mutations += len(batch)
		for i, r := range ans.Results {
			switch r.Status {
			case schema.PushApplied, schema.PushMerged:
				// Mutation ids derive from the records, so an earlier run's
				// record is answered again, not written again.
				if a.there[recordKey(batch[i].Collection, batch[i].ID)] {
					sum.AlreadyThere++
				} else {
					sum.Applied++
				}
			case schema.PushConflict:
				sum.Conflicts++
			default:
				sum.Rejected++
				if len(sum.Rejections) < 5 {
					msg := "no reason given"
					if r.Error != nil {
						msg = r.Error.Error()
					}
					sum.Rejections = append(sum.Rejections, fmt.Sprintf("%s %s: %s", batch[i].Collection, batch[i].ID, msg))
				}
			}
		}
	}
	return nil
}
