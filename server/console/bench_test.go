package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// BenchmarkCoveragePage renders the console's coverage page (its table),
// and its chart of coverage per day (an image the page loads after), for
// 200 reps over a month — 20 planned
// stops a day each, 18 of them visited, an order on every third visit —
// beside the coverage report API answering the same query, both over HTTP
// from the same in-process server:
//
//	go test -run '^$' -bench CoveragePage -benchtime 5x ./server/console/
func BenchmarkCoveragePage(b *testing.B) {
	reps, stops, visited, days := 200, 20, 18, 30
	if testing.Short() {
		reps = 10
	}
	srv := servertest.Start(b, servertest.Options{})
	ctx := context.Background()
	start := time.Now()
	admin, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(b, err)
	push := func(p schema.Principal, muts []any) {
		for len(muts) > 0 {
			n := min(len(muts), 500)
			raw := make([]json.RawMessage, n)
			for i, m := range muts[:n] {
				raw[i], err = json.Marshal(m)
				require.NoError(b, err)
			}
			resp, err := srv.Engine.Push(ctx, p, &schema.PushRequest{DeviceID: "bench", Mutations: raw})
			require.NoError(b, err)
			for _, r := range resp.Results {
				require.Equal(b, schema.PushApplied, r.Status, "%+v", r.Error)
			}
			muts = muts[n:]
		}
	}
	up := func(coll, id string, data any) any {
		return map[string]any{"mutation_id": uuid.NewString(), "collection": coll, "id": id, "op": "upsert", "base_version": 0, "data": data}
	}
	ap := admin.Principal("bench", "")
	setup := []any{up("products", "p-1", map[string]any{"sku": "S", "name": "N", "unit": "u", "price": 100, "active": true})}
	for t := range 10 {
		setup = append(setup, up("territories", fmt.Sprintf("t-%d", t), map[string]any{"name": "T", "region": "R"}))
	}
	push(ap, setup)
	for r := range reps {
		territory := fmt.Sprintf("t-%d", r%10)
		u := &schema.User{ID: fmt.Sprintf("u-%03d", r), Username: fmt.Sprintf("rep%03d", r), Role: schema.RoleRep,
			Territories: []string{territory}, Active: true, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		require.NoError(b, srv.Store.CreateUser(ctx, u))
		var custs, plans, facts []any
		for c := range stops {
			custs = append(custs, up("customers", fmt.Sprintf("c-%03d-%d", r, c), map[string]any{"code": fmt.Sprintf("C%03d%d", r, c),
				"name": "Shop", "territory_id": territory, "grade": "B", "lat": 52.52, "lng": 13.405}))
		}
		for d := range days {
			date := fmt.Sprintf("2026-11-%02d", d+1)
			var ss []any
			for c := range stops {
				ss = append(ss, map[string]any{"customer_id": fmt.Sprintf("c-%03d-%d", r, c), "position": c + 1, "status": "planned"})
			}
			plans = append(plans, up("route_plans", fmt.Sprintf("rp-%03d-%d", r, d), map[string]any{"rep_id": u.ID, "date": date, "stops": ss}))
			for c := range visited {
				at := time.Date(2026, 11, d+1, 8, c*20, 0, 0, time.UTC)
				vid := fmt.Sprintf("v-%03d-%d-%d", r, d, c)
				facts = append(facts, up("visits", vid, map[string]any{"customer_id": fmt.Sprintf("c-%03d-%d", r, c),
					"check_in":  map[string]any{"at": at.Format(time.RFC3339), "lat": 52.52, "lng": 13.405},
					"check_out": map[string]any{"at": at.Add(15 * time.Minute).Format(time.RFC3339), "lat": 52.52, "lng": 13.405}}))
				if c%3 == 0 {
					facts = append(facts, up("orders", "o-"+vid, map[string]any{"customer_id": fmt.Sprintf("c-%03d-%d", r, c), "visit_id": vid,
						"status": "draft", "lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 100}}}))
				}
			}
		}
		push(ap, custs)
		push(ap, plans)
		push(u.Principal("bench", ""), facts)
	}
	b.Logf("set up %d reps, %d stops, %d visits in %s", reps, reps*stops*days, reps*visited*days, time.Since(start).Round(time.Second))

	// The three requests take turns in each iteration, so that the load
	// of a shared machine falls on all of them alike; each one's mean time
	// is reported, and the page's and chart's as ratios to the API's.
	const query = "from=2026-11-01&to=2026-11-30"
	b.Run("interleaved", func(b *testing.B) {
		token := apiToken(b, srv.URL)
		hc := consoleClient(b, srv.URL)
		var api, page, chart time.Duration
		timed := func(d *time.Duration, f func()) {
			start := time.Now()
			f()
			*d += time.Since(start)
		}
		b.ResetTimer()
		for range b.N {
			timed(&api, func() {
				req, err := http.NewRequest("GET", srv.URL+"/v1/reports/coverage?"+query, nil)
				require.NoError(b, err)
				req.Header.Set("Authorization", "Bearer "+token)
				require.Contains(b, fetch(b, http.DefaultClient, req), fmt.Sprintf(`"planned_stops":%d`, reps*stops*days))
			})
			timed(&page, func() {
				req, err := http.NewRequest("GET", srv.URL+"/console/coverage?"+query, nil)
				require.NoError(b, err)
				require.Equal(b, reps, strings.Count(fetch(b, hc, req), "<tr data-key="), "a row per rep")
			})
			timed(&chart, func() {
				req, err := http.NewRequest("GET", srv.URL+"/console/coverage/chart.svg?"+query, nil)
				require.NoError(b, err)
				require.Equal(b, days, strings.Count(fetch(b, hc, req), `<rect class="bar"`), "a bar per day")
			})
		}
		n := float64(b.N)
		b.ReportMetric(api.Seconds()/n, "api-s/op")
		b.ReportMetric(page.Seconds()/n, "page-s/op")
		b.ReportMetric(chart.Seconds()/n, "chart-s/op")
		b.ReportMetric(page.Seconds()/api.Seconds(), "page/api")
		b.ReportMetric(chart.Seconds()/api.Seconds(), "chart/api")
	})
}

func fetch(b *testing.B, hc *http.Client, req *http.Request) string {
	resp, err := hc.Do(req)
	require.NoError(b, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(b, err)
	require.Equal(b, http.StatusOK, resp.StatusCode, "%s", body)
	return string(body)
}

func apiToken(b *testing.B, base string) string {
	resp, err := http.Post(base+"/v1/auth/login", "application/json", strings.NewReader(
		fmt.Sprintf(`{"username":%q,"password":%q,"device_id":"bench"}`, servertest.AdminName, servertest.AdminPassword)))
	require.NoError(b, err)
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&out))
	return out.AccessToken
}

// consoleClient signs in to the console through its form and returns a
// client that carries the session.
func consoleClient(b *testing.B, base string) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(b, err)
	hc := &http.Client{Jar: jar}
	req, err := http.NewRequest("GET", base+"/console/login", nil)
	require.NoError(b, err)
	token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(fetch(b, hc, req))
	require.Len(b, token, 2)
	resp, err := hc.PostForm(base+"/console/login", url.Values{"csrf": {token[1]}, "username": {servertest.AdminName},
		"password": {servertest.AdminPassword}, "next": {"/console/devices"}})
	require.NoError(b, err)
	resp.Body.Close()
	require.Equal(b, http.StatusOK, resp.StatusCode)
	return hc
}
