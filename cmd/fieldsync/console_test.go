package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// chromiumPath finds the system Chromium. Under CI=true a missing
// Chromium fails the test; elsewhere the test is skipped, saying so.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
	}
	t.Skip("skipping the browser tests: chromium is not installed (apt-get install -y chromium)")
	return ""
}

// browser starts a headless Chromium with a fresh profile and returns a
// context to drive one tab of it.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx, chromedp.Sleep(0)), "start chromium")
	return ctx
}

// consoleFixture is a running fieldsync with a region's data loaded
// through the API: a manager of t-1, three reps (two in t-1, one in t-2)
// with route plans and visits on 2026-11-23.
type consoleFixture struct {
	base    string
	api     *servertest.Client
	admin   client
	manager client
	reps    map[string]string // rep username → id
	users   map[string]string // username → id
}

const (
	consoleDay      = "2026-11-23"
	consolePassword = "console-password-1"
)

func startConsole(t *testing.T) *consoleFixture {
	t.Helper()
	p := startBinary(t, t.TempDir(), "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	f := &consoleFixture{base: "http://" + p.addr, reps: map[string]string{}, users: map[string]string{}}
	f.api = servertest.Connect(t, f.base)
	f.admin = client{api: f.api, token: signIn(t, f.api, "admin", "admin-password-1")}
	users := []struct {
		name, role  string
		territories []string
	}{{"mgr", "manager", []string{"t-1"}}, {"rep1", "rep", []string{"t-1"}}, {"rep2", "rep", []string{"t-1"}}, {"rep3", "rep", []string{"t-2"}}}
	for _, u := range users {
		var out struct{ ID string }
		status := f.admin.post(t, "/v1/admin/users", map[string]any{"username": u.name, "password": consolePassword, "role": u.role, "territories": u.territories}, &out)
		require.Equal(t, http.StatusCreated, status)
		f.users[u.name] = out.ID
		if u.role == "rep" {
			f.reps[u.name] = out.ID
		}
	}
	f.manager = client{api: f.api, token: signIn(t, f.api, "mgr", consolePassword)}

	customer := func(id, territory string, lat, lng float64) map[string]any {
		return mutation("m-"+id, "customers", id, 0, map[string]any{"code": id, "name": "Shop " + id, "territory_id": territory,
			"grade": "A", "lat": lat, "lng": lng, "credit_limit": 100000000})
	}
	stops := func(ids ...string) []map[string]any {
		out := []map[string]any{}
		for i, id := range ids {
			out = append(out, map[string]any{"customer_id": id, "position": i + 1, "status": "planned"})
		}
		return out
	}
	seed := []map[string]any{
		mutation("m-t1", "territories", "t-1", 0, map[string]any{"name": "North", "region": "R"}),
		mutation("m-t2", "territories", "t-2", 0, map[string]any{"name": "South", "region": "R"}),
		customer("c-1", "t-1", 52.5000, 13.4000), customer("c-2", "t-1", 52.5100, 13.4100),
		customer("c-3", "t-1", 52.5200, 13.4200), customer("c-4", "t-1", 52.4900, 13.3900),
		customer("c-9", "t-2", 48.1000, 11.5000),
		mutation("m-p1", "products", "p-1", 0, map[string]any{"sku": "P1", "name": "Cola", "unit": "case", "price": 1250, "active": true}),
		mutation("m-r1", "route_plans", "rp-1", 0, map[string]any{"rep_id": f.reps["rep1"], "date": consoleDay, "stops": stops("c-1", "c-2", "c-3")}),
		mutation("m-r2", "route_plans", "rp-2", 0, map[string]any{"rep_id": f.reps["rep2"], "date": consoleDay, "stops": stops("c-3", "c-4")}),
		mutation("m-r3", "route_plans", "rp-3", 0, map[string]any{"rep_id": f.reps["rep3"], "date": consoleDay, "stops": stops("c-9")}),
	}
	for i, r := range f.admin.push(t, seed...) {
		require.Equal(t, schema.PushApplied, r.Status, "seed %d: %+v", i, r.Error)
	}
	visit := func(id, customer, at, out string, lat, lng float64) map[string]any {
		return mutation("m-"+id, "visits", id, 0, map[string]any{"customer_id": customer,
			"check_in":  map[string]any{"at": consoleDay + "T" + at + ":00Z", "lat": lat, "lng": lng, "accuracy": 10},
			"check_out": map[string]any{"at": consoleDay + "T" + out + ":00Z", "lat": lat, "lng": lng, "accuracy": 10}})
	}
	rep1 := client{api: f.api, token: signIn(t, f.api, "rep1", consolePassword)}
	for i, r := range rep1.push(t,
		visit("v-1", "c-1", "08:00", "08:20", 52.5000, 13.4000), // inside the geofence
		visit("v-2", "c-2", "09:00", "09:30", 52.5300, 13.4400), // far outside
		visit("v-3", "c-4", "10:00", "10:10", 52.4900, 13.3900), // unplanned
		mutation("m-o1", "orders", "o-1", 0, map[string]any{"customer_id": "c-1", "visit_id": "v-1", "status": "submitted",
			"lines": []map[string]any{{"product_id": "p-1", "quantity": 4, "unit_price": 1250}}}),
	) {
		require.Equal(t, schema.PushApplied, r.Status, "rep1 %d: %+v", i, r.Error)
	}
	rep2 := client{api: f.api, token: signIn(t, f.api, "rep2", consolePassword)}
	for i, r := range rep2.push(t, visit("v-4", "c-3", "11:00", "11:45", 52.5200, 13.4200)) {
		require.Equal(t, schema.PushApplied, r.Status, "rep2 %d: %+v", i, r.Error)
	}
	return f
}

// signInConsole signs in through the console's form.
func signInConsole(t *testing.T, ctx context.Context, base, user, password string) {
	t.Helper()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/console/login"),
		chromedp.WaitVisible("#username"),
		chromedp.SendKeys("#username", user),
		chromedp.SendKeys("#password", password),
		chromedp.Click("#sign-in"),
		chromedp.WaitNotPresent("#login-form"), // the next page has loaded
		chromedp.WaitReady("main"),
	))
}

// screenshot saves the page as name.png in $FIELDSYNC_CONSOLE_SCREENSHOTS
// when it is set (how docs/console/*.png are made); it does nothing
// otherwise.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("FIELDSYNC_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// evaluate runs JavaScript in the page, awaiting a promise, and returns
// its value.
func evaluate[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(t, err, "%s", js)
	return v
}

// status fetches a URL from the page, with its cookies, and returns the
// HTTP status.
func status(t *testing.T, ctx context.Context, method, path string) int {
	t.Helper()
	js := fmt.Sprintf(`fetch(%q, {method: %q, redirect: "manual", credentials: "same-origin"}).then(r => r.status)`, path, method)
	return evaluate[int](t, ctx, js)
}

func TestConsoleManager(t *testing.T) {
	f := startConsole(t)
	ctx := browser(t)
	signInConsole(t, ctx, f.base, "mgr", consolePassword)

	t.Run("coverage equals the API's per rep", func(t *testing.T) {
		var api struct {
			Reps []struct {
				RepID        string   `json:"rep_id"`
				PlannedStops int      `json:"planned_stops"`
				VisitedStops int      `json:"visited_stops"`
				Coverage     *float64 `json:"coverage"`
				Unplanned    int      `json:"unplanned_visits"`
				Visits       int      `json:"visits"`
				Orders       int      `json:"orders"`
				StrikeRate   *float64 `json:"strike_rate"`
			} `json:"reps"`
		}
		require.Equal(t, http.StatusOK, f.manager.get(t, "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", &api))
		require.Len(t, api.Reps, 2, "the manager sees the reps of t-1 only")
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/coverage?from=2026-11-01&to=2026-11-30"),
			chromedp.WaitVisible("#report")))
		rows := evaluate[[]map[string]string](t, ctx, `Array.from(document.querySelectorAll("#report tbody tr")).map(r => {
			const c = Array.from(r.cells).map(td => td.textContent.trim());
			return {key: r.dataset.key, rep: c[0], planned: c[1], visited: c[2], coverage: c[3], unplanned: c[4], visits: c[5], orders: c[6], strike: c[7]};
		})`)
		require.Len(t, rows, len(api.Reps))
		pct := func(r *float64) string {
			if r == nil {
				return "—"
			}
			return fmt.Sprintf("%.1f%%", *r*100)
		}
		byKey := map[string]map[string]string{}
		for _, r := range rows {
			byKey[r["key"]] = r
		}
		for _, want := range api.Reps {
			got := byKey[want.RepID]
			require.NotNil(t, got, "a row for rep %s", want.RepID)
			assert.Equal(t, pct(want.Coverage), got["coverage"], "coverage of %s", got["rep"])
			assert.Equal(t, fmt.Sprint(want.PlannedStops), got["planned"])
			assert.Equal(t, fmt.Sprint(want.VisitedStops), got["visited"])
			assert.Equal(t, fmt.Sprint(want.Unplanned), got["unplanned"])
			assert.Equal(t, fmt.Sprint(want.Visits), got["visits"])
			assert.Equal(t, fmt.Sprint(want.Orders), got["orders"])
			assert.Equal(t, pct(want.StrikeRate), got["strike"])
		}
		assert.Equal(t, "rep1", byKey[f.reps["rep1"]]["rep"], "reps by username")
		assert.Equal(t, "66.7%", byKey[f.reps["rep1"]]["coverage"], "2 of 3 planned stops")
		screenshot(t, ctx, "coverage")
		chart := evaluate[string](t, ctx, `fetch(document.getElementById("coverage-chart").src).then(r => r.text())`)
		bars := strings.Count(chart, `<rect class="bar"`)
		assert.Equal(t, 30, bars, "one bar per day of November")
	})

	t.Run("the CSV holds what the table shows", func(t *testing.T) {
		cells := evaluate[[][]string](t, ctx, `Array.from(document.querySelectorAll("#report tr")).map(r => Array.from(r.cells).map(c => c.textContent.trim()))`)
		text := evaluate[string](t, ctx, `fetch(document.getElementById("csv").href).then(r => r.text())`)
		got, err := csv.NewReader(strings.NewReader(text)).ReadAll()
		require.NoError(t, err)
		assert.Equal(t, cells, got)
	})

	t.Run("a rep's day shows one marker per planned stop and per visit", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/reps/"+f.reps["rep1"]+"/day?date="+consoleDay),
			chromedp.WaitVisible("#map[data-markers]")))
		count := func(sel string) int {
			return evaluate[int](t, ctx, fmt.Sprintf("document.querySelectorAll(%q).length", sel))
		}
		screenshot(t, ctx, "rep-day")
		assert.Equal(t, 3, count("#map path.fs-stop"), "three planned stops")
		assert.Equal(t, 3, count("#map path.fs-visit"), "three visits")
		assert.Equal(t, 2, count("#map path.fs-inside"), "two check-ins inside the geofence")
		assert.Equal(t, 1, count("#map path.fs-outside"), "one outside")
		assert.Equal(t, 1, count("#map path.fs-route"), "the route between check-ins")
		assert.Equal(t, 3, count("#timeline li[data-visit]"), "a timeline entry per visit")
		figures, err := chromedp.Run(ctx, chromedp.Text("#figures"))
		require.NoError(t, err)
		assert.Contains(t, figures, "1 h 0 min", "time in store: 20 + 30 + 10 minutes")
		timeline, err := chromedp.Run(ctx, chromedp.Text("#timeline"))
		require.NoError(t, err)
		assert.Contains(t, timeline, "50.00", "the visit's order: 4 × 12.50")
	})

	t.Run("a rep's day counts orders on the day they were submitted", func(t *testing.T) {
		// The daily report counts an order on the day the server accepted
		// its submission (the fixture's: when it was pushed), not on the
		// visit's day.
		var o struct {
			Changes []struct {
				ID   string `json:"id"`
				Data struct {
					SubmittedAt time.Time `json:"submitted_at"`
				} `json:"data"`
			} `json:"changes"`
		}
		require.Equal(t, http.StatusOK, f.manager.post(t, "/v1/sync/pull", map[string]any{"collections": []string{"orders"}}, &o))
		require.Len(t, o.Changes, 1)
		require.False(t, o.Changes[0].Data.SubmittedAt.IsZero())
		today := o.Changes[0].Data.SubmittedAt.UTC().Format("2006-01-02") // the console's zone is UTC
		require.NotEqual(t, consoleDay, today)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/reps/"+f.reps["rep1"]+"/day?date="+today),
			chromedp.WaitVisible("#figures")))
		orders := evaluate[[]string](t, ctx, `["orders", "order_amount"].map(f => document.querySelector("#figures dd[data-field=" + f + "]").dataset.value)`)
		assert.Equal(t, []string{"1", "5000"}, orders)
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/reps/"+f.reps["rep1"]+"/day?date="+consoleDay),
			chromedp.WaitVisible("#figures")))
		orders = evaluate[[]string](t, ctx, `["orders", "order_amount"].map(f => document.querySelector("#figures dd[data-field=" + f + "]").dataset.value)`)
		assert.Equal(t, []string{"0", "0"}, orders)
	})

	t.Run("a rep's day figures equal the daily report's", func(t *testing.T) {
		var api struct {
			Reps []map[string]any `json:"reps"`
		}
		require.Equal(t, http.StatusOK, f.manager.get(t, "/v1/reports/daily?date="+consoleDay+"&rep_id="+f.reps["rep1"], &api))
		require.Len(t, api.Reps, 1)
		shown := evaluate[map[string]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll("#figures dd[data-field]")).map(d => [d.dataset.field, d.dataset.value]))`)
		fields := []string{"first_check_in", "last_check_out", "visits", "planned_stops", "visited_stops", "orders", "order_amount",
			"photos", "time_in_store_s", "travel_m", "open_visits"}
		require.Len(t, shown, len(fields), "the page shows every figure of the daily report")
		for _, field := range fields {
			want, got := api.Reps[0][field], shown[field]
			switch w := want.(type) {
			case float64:
				n, err := strconv.ParseFloat(got, 64)
				require.NoError(t, err, field)
				assert.InDelta(t, w, n, 1e-9, field)
			case string:
				wt, err := time.Parse(time.RFC3339, w)
				require.NoError(t, err, field)
				gt, err := time.Parse(time.RFC3339, got)
				require.NoError(t, err, field)
				assert.True(t, wt.Equal(gt), "%s: API %s, page %s", field, w, got)
			default:
				t.Fatalf("%s: unexpected %T %v in the daily report", field, want, want)
			}
		}
		assert.Equal(t, float64(3), api.Reps[0]["visits"], "the fixture's three visits of rep1")
		assert.Positive(t, api.Reps[0]["travel_m"], "rep1 moved between check-ins")
	})

	t.Run("a rep of another territory is not found", func(t *testing.T) {
		assert.Equal(t, http.StatusNotFound, status(t, ctx, "GET", "/console/reps/"+f.reps["rep3"]+"/day?date="+consoleDay))
	})

	t.Run("a form post without its token is refused", func(t *testing.T) {
		assert.Equal(t, http.StatusForbidden, status(t, ctx, "POST", "/console/orders/o-1"))
		assert.Equal(t, http.StatusForbidden, status(t, ctx, "POST", "/console/logout"))
		var o struct {
			Changes []struct {
				ID   string         `json:"id"`
				Data map[string]any `json:"data"`
			} `json:"changes"`
		}
		require.Equal(t, http.StatusOK, f.manager.post(t, "/v1/sync/pull", map[string]any{"collections": []string{"orders"}}, &o))
		for _, c := range o.Changes {
			if c.ID == "o-1" {
				assert.Equal(t, "submitted", c.Data["status"], "the order is untouched")
			}
		}
	})

	t.Run("confirming an order from the page goes through the engine", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/orders?from=2026-11-01&to=2026-11-30"),
			chromedp.WaitVisible(`tr[data-key="o-1"] button[data-action="confirm"]`),
			chromedp.Click(`tr[data-key="o-1"] button[data-action="confirm"]`),
			chromedp.WaitVisible(`tr[data-key="o-1"] td.status-confirmed`)))
		screenshot(t, ctx, "orders")
	})

	t.Run("unvisited outlets, devices and Chinese", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/unvisited?days=1"), chromedp.WaitVisible("#map[data-markers]")))
		assert.Equal(t, 4, evaluate[int](t, ctx, `document.querySelectorAll("#report tbody tr").length`), "the four outlets of t-1, last visited days ago")
		assert.Equal(t, 4, evaluate[int](t, ctx, `document.querySelectorAll("#map path.fs-outlet").length`), "each on the map")
		screenshot(t, ctx, "unvisited")
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/devices"), chromedp.WaitVisible("#report")))
		screenshot(t, ctx, "devices")
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/lang/zh-Hans"), chromedp.WaitVisible("#report")))
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/coverage?from=2026-11-01&to=2026-11-30"), chromedp.WaitVisible("#report")))
		title, err := chromedp.Run(ctx, chromedp.Text("h1"))
		require.NoError(t, err)
		assert.Equal(t, "拜访覆盖率", title)
		screenshot(t, ctx, "coverage-zh")
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/lang/en"), chromedp.WaitVisible("#report")))
	})

	t.Run("signing out ends the session", func(t *testing.T) {
		cookie := sessionCookie(t, ctx)
		assert.Equal(t, http.StatusOK, consoleGet(t, f.base, cookie, "/console/coverage"), "the session works outside the browser too")
		require.NoError(t, chromedp.Do(ctx, chromedp.Click("#logout"), chromedp.WaitVisible("#login-form")))
		assert.Equal(t, http.StatusSeeOther, consoleGet(t, f.base, cookie, "/console/coverage"), "the old cookie leads to sign-in")
		assert.Contains(t, evaluate[string](t, ctx, `fetch("/console/coverage").then(r => r.url)`), "/console/login", "the browser is sent to sign in")
	})
}

// sessionCookie returns the browser's console session cookie.
func sessionCookie(t *testing.T, ctx context.Context) *http.Cookie {
	t.Helper()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	require.NoError(t, err)
	for _, c := range res.Cookies {
		if c.Name == "fieldsync_console" {
			assert.True(t, c.HTTPOnly, "HttpOnly")
			assert.Equal(t, network.CookieSameSiteStrict, c.SameSite, "SameSite=Strict")
			return &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	t.Fatal("no session cookie")
	return nil
}

// consoleGet fetches a console page with a session cookie, not following
// redirects, and returns the status.
func consoleGet(t *testing.T, base string, cookie *http.Cookie, path string) int {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	require.NoError(t, err)
	req.AddCookie(cookie)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestConsoleRefusesRepsAndEndsDeactivatedSessions(t *testing.T) {
	f := startConsole(t)
	ctx := browser(t)

	signInConsole(t, ctx, f.base, "rep1", consolePassword)
	problem, err := chromedp.Run(ctx, chromedp.Text("#problem"))
	require.NoError(t, err)
	assert.Contains(t, problem, "managers and admins")
	assert.Equal(t, http.StatusForbidden, status(t, ctx, "GET", "/console/coverage"))

	signInConsole(t, ctx, f.base, "mgr", consolePassword)
	cookie := sessionCookie(t, ctx)
	require.Equal(t, http.StatusOK, consoleGet(t, f.base, cookie, "/console/coverage"))
	require.Equal(t, http.StatusOK, f.admin.call(t, http.MethodPatch, "/v1/admin/users/"+f.users["mgr"], `{"active":false}`, nil))
	assert.Equal(t, http.StatusSeeOther, consoleGet(t, f.base, cookie, "/console/coverage"), "deactivation ends the session at once")
}

// customerCodes pulls the customers an API client may read and returns
// their codes.
func customerCodes(t *testing.T, c client) map[string]bool {
	t.Helper()
	var page struct {
		Changes []struct {
			Data map[string]any `json:"data"`
		} `json:"changes"`
	}
	require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/pull", map[string]any{"collections": []string{"customers"}, "limit": 1000}, &page))
	codes := map[string]bool{}
	for _, ch := range page.Changes {
		if code, ok := ch.Data["code"].(string); ok {
			codes[code] = true
		}
	}
	return codes
}

func TestConsoleImportPreviewsThenImports(t *testing.T) {
	f := startConsole(t)
	ctx := browser(t)
	signInConsole(t, ctx, f.base, "admin", "admin-password-1")
	file := filepath.Join(t.TempDir(), "customers.csv")
	csvText := "code,name,territory_id,grade,lat,lng\n" +
		"IMP-1,Corner Shop,t-1,A,52.51,13.41\n" +
		"IMP-2,Station Kiosk,t-404,B,52.52,13.42\n" + // no such territory
		"IMP-3,Market Stall,t-1,B,95,13.43\n" + // latitude out of range
		"IMP-4,Bakery,t-2,C,48.11,11.51\n"
	require.NoError(t, os.WriteFile(file, []byte(csvText), 0o600))

	// A CSV body: the request is made by hand and sent through the checked
	// client.
	req, err := http.NewRequest("POST", f.base+"/v1/admin/import/customers?dry_run=true", strings.NewReader(csvText))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.admin.token)
	req.Header.Set("Content-Type", "text/csv")
	resp := f.api.Do(t, req)
	var api struct {
		Created int `json:"created"`
		Errors  []struct {
			Line    int    `json:"line"`
			Field   string `json:"field"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	require.Equal(t, http.StatusOK, resp.Status, "%s", resp.Raw)
	require.NoError(t, json.Unmarshal(resp.Raw, &api))
	require.Len(t, api.Errors, 2, "the API's dry run finds the two bad rows")

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/admin/import"),
		chromedp.WaitVisible("#preview-form"),
		chromedp.SetValue("#collection", "customers"),
		chromedp.SetUploadFiles("#csv-file", []string{file}),
		chromedp.Click("#preview"),
		chromedp.WaitVisible(`#import-result[data-dry-run="true"]`)))
	screenshot(t, ctx, "import")
	shown := evaluate[[]map[string]string](t, ctx, `Array.from(document.querySelectorAll("#import-errors tbody tr")).map(r => {
		const c = Array.from(r.cells).map(td => td.textContent.trim());
		return {line: c[0], field: c[1], message: c[2]};
	})`)
	require.Len(t, shown, len(api.Errors), "the preview lists every error")
	for i, want := range api.Errors {
		assert.Equal(t, fmt.Sprint(want.Line), shown[i]["line"])
		assert.Equal(t, want.Field, shown[i]["field"])
		assert.Equal(t, want.Message, shown[i]["message"])
	}
	assert.Equal(t, "3", shown[0]["line"], "the header is line 1: the unknown territory is on line 3")
	assert.Equal(t, "territory_id", shown[0]["field"])
	assert.Equal(t, "4", shown[1]["line"])
	assert.Equal(t, "lat", shown[1]["field"])
	created, err := chromedp.Run(ctx, chromedp.Text("#import-created"))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprint(api.Created), created)
	codes := customerCodes(t, f.admin)
	for _, code := range []string{"IMP-1", "IMP-2", "IMP-3", "IMP-4"} {
		assert.False(t, codes[code], "the preview wrote %s", code)
	}
	assert.Equal(t, http.StatusForbidden, status(t, ctx, "POST", "/console/admin/import"), "an import without its form token")

	t.Run("importing the file with errors writes nothing", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Click("#import"),
			chromedp.WaitVisible(`#import-result[data-written="false"][data-dry-run="false"]`)))
		assert.False(t, customerCodes(t, f.admin)["IMP-1"])
	})

	t.Run("skipping the bad rows imports the good ones", func(t *testing.T) {
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/admin/import"),
			chromedp.WaitVisible("#preview-form"),
			chromedp.SetUploadFiles("#csv-file", []string{file}),
			chromedp.Click("#preview"),
			chromedp.WaitVisible(`#import-result[data-dry-run="true"]`),
			chromedp.Click("#skip-invalid"),
			chromedp.Click("#import"),
			chromedp.WaitVisible(`#import-result[data-written="true"]`)))
		created, err := chromedp.Run(ctx, chromedp.Text("#import-created"))
		require.NoError(t, err)
		assert.Equal(t, "2", created)
		codes := customerCodes(t, f.admin)
		assert.True(t, codes["IMP-1"])
		assert.True(t, codes["IMP-4"])
		assert.False(t, codes["IMP-2"])
		assert.False(t, codes["IMP-3"])
	})
}

func TestConsoleTargets(t *testing.T) {
	f := startConsole(t)
	ctx := browser(t)
	signInConsole(t, ctx, f.base, "mgr", consolePassword)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/targets?year=2026"),
		chromedp.WaitVisible("#split-form"),
		chromedp.SetValue("#split-rep", f.reps["rep1"]),
		chromedp.SetValue("#split-year", "2026"),
		chromedp.SendKeys("#split-amount", "12000.00"),
		chromedp.SendKeys("#split-visits", "120"),
		chromedp.Click("#split"),
		chromedp.WaitVisible("#notice")))
	screenshot(t, ctx, "targets")

	var api struct {
		Reps []struct {
			RepID  string `json:"rep_id"`
			Months []struct {
				Month             string   `json:"month"`
				TargetOrderAmount int64    `json:"target_order_amount"`
				ActualOrderAmount int64    `json:"actual_order_amount"`
				TargetVisits      int64    `json:"target_visits"`
				ActualVisits      int64    `json:"actual_visits"`
				Attainment        *float64 `json:"attainment"`
			} `json:"months"`
		} `json:"reps"`
	}
	require.Equal(t, http.StatusOK, f.manager.get(t, "/v1/reports/targets?from=2026-01&to=2026-12", &api))
	rows := evaluate[map[string][]string](t, ctx, `Object.fromEntries(Array.from(document.querySelectorAll("#report tbody tr")).map(r =>
		[r.dataset.key, Array.from(r.cells).map(td => td.dataset.sort)]))`)
	checked := 0
	for _, rep := range api.Reps {
		for _, m := range rep.Months {
			got := rows[rep.RepID+"/"+m.Month]
			require.Len(t, got, 7, "a row for %s in %s", rep.RepID, m.Month)
			attainment := "-1"
			if m.Attainment != nil {
				attainment = strconv.FormatFloat(*m.Attainment, 'f', 4, 64)
			}
			assert.Equal(t, []string{fmt.Sprint(m.TargetOrderAmount), fmt.Sprint(m.ActualOrderAmount), attainment,
				fmt.Sprint(m.TargetVisits), fmt.Sprint(m.ActualVisits)}, got[2:], "%s %s", rep.RepID, m.Month)
			checked++
		}
	}
	assert.Equal(t, 2*12, checked, "the two reps of t-1, twelve months each")
	nov := rows[f.reps["rep1"]+"/2026-11"]
	require.NotNil(t, nov)
	assert.Equal(t, []string{"100000", "3"}, []string{nov[2], nov[6]}, "a twelfth of 12,000.00; rep1's three visits")
	assert.Equal(t, http.StatusForbidden, status(t, ctx, "POST", "/console/targets/split"), "a split without its form token")
}
