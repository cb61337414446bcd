package fieldsync_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// The admin signs in like every test user, with password(adminName).
const adminName = "admin"

// testServer is a real fieldsync server on a random loopback port with a
// fresh SQLite store and photo folder.
type testServer struct {
	URL    string
	Store  *sqlitestore.Store
	client *servertest.Client
	// HTTP checks every exchange with the server against the OpenAPI
	// document.
	HTTP    *http.Client
	adminMu gosync.Mutex
	admin   string // the admin's access token
}

// serverOption changes the configuration of a test server.
type serverOption func(*sync.Config, *server.Config)

func startServer(tb testing.TB, opts ...serverOption) *testServer {
	tb.Helper()
	// Each option sees both configurations; what it does to one takes
	// effect when that one is built.
	var engineCfg sync.Config
	srv := servertest.Start(tb, servertest.Options{
		AdminPassword: password(adminName),
		Engine: func(c *sync.Config) {
			for _, o := range opts {
				o(c, &server.Config{})
			}
			engineCfg = *c
		},
		Server: func(c *server.Config) {
			for _, o := range opts {
				scratch := engineCfg
				o(&scratch, c)
			}
		},
	})
	return &testServer{URL: srv.URL, Store: srv.Store, client: srv.Client(), HTTP: srv.HTTP}
}

// quietLogger shows logs only with go test -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// call sends a request with a bearer token and an optional JSON body and
// returns the status and the raw answer; the exchange is checked against
// the OpenAPI document.
func (ts *testServer) call(tb testing.TB, method, path, token string, body any) (int, []byte) {
	tb.Helper()
	r := ts.client.Call(tb, method, path, token, body)
	return r.Status, r.Raw
}

// asAdmin is call with the admin's token, signing in again when it has
// expired.
func (ts *testServer) asAdmin(tb testing.TB, method, path string, body any) (int, []byte) {
	tb.Helper()
	ts.adminMu.Lock()
	defer ts.adminMu.Unlock()
	if ts.admin != "" {
		if status, raw := ts.call(tb, method, path, ts.admin, body); status != http.StatusUnauthorized {
			return status, raw
		}
	}
	ts.admin = ts.login(tb, adminName, password(adminName))
	return ts.call(tb, method, path, ts.admin, body)
}

func (ts *testServer) login(tb testing.TB, username, password string) string {
	tb.Helper()
	return ts.client.Login(tb, username, password, "test").Access
}

// password is the password the test users get.
func password(username string) string { return username + "-password" }

// createUser makes a user through the admin API.
func (ts *testServer) createUser(tb testing.TB, username string, role schema.Role, territories ...string) {
	tb.Helper()
	status, raw := ts.asAdmin(tb, "POST", "/v1/admin/users", map[string]any{
		"username": username, "password": password(username), "role": role, "territories": territories})
	require.Equalf(tb, http.StatusCreated, status, "create user: %s", raw)
}

// open opens a client of a user on a device, with a store in a temp dir
// and fast retries.
func (ts *testServer) open(tb testing.TB, username, device string, tweak ...func(*fieldsync.Config)) *fieldsync.Client {
	tb.Helper()
	cfg := ts.config(tb, username, device)
	for _, f := range tweak {
		f(&cfg)
	}
	return openClient(tb, cfg)
}

func (ts *testServer) config(tb testing.TB, username, device string) fieldsync.Config {
	cfg := fieldsync.Config{
		BaseURL: ts.URL, Username: username, Password: password(username), DeviceID: device,
		StorePath: filepath.Join(tb.TempDir(), "fieldsync.db"),
		Logger:    quietLogger(),
		Retry:     fieldsync.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond},
	}
	if ts.HTTP != nil {
		cfg.HTTPClient = &http.Client{Transport: ts.HTTP.Transport, Timeout: fieldsync.DefaultRequestTimeout}
	}
	return cfg
}

func openClient(tb testing.TB, cfg fieldsync.Config) *fieldsync.Client {
	tb.Helper()
	c, err := fieldsync.Open(context.Background(), cfg)
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	return c
}

// stored is a record as the server has it: its envelope, and its data
// decoded.
type stored struct {
	schema.Envelope
	Fields map[string]any
}

// serverRecords pulls everything as the admin, from the beginning, and
// returns the envelopes by "collection/id". It fails on a record pulled
// twice.
func (ts *testServer) serverRecords(tb testing.TB) map[string]stored {
	tb.Helper()
	all := map[string]stored{}
	checkpoint := ""
	for {
		status, raw := ts.asAdmin(tb, "POST", "/v1/sync/pull", schema.PullRequest{Checkpoint: checkpoint, Limit: 1000})
		require.Equalf(tb, http.StatusOK, status, "pull: %s", raw)
		var page schema.PullResponse
		require.NoError(tb, json.Unmarshal(raw, &page))
		for _, e := range page.Changes {
			key := string(e.Collection) + "/" + e.ID
			_, twice := all[key]
			require.Falsef(tb, twice, "%s pulled twice from the beginning", key)
			r := stored{Envelope: *e}
			require.NoError(tb, json.Unmarshal(e.Data, &r.Fields))
			all[key] = r
		}
		if !page.HasMore {
			return all
		}
		checkpoint = page.Checkpoint
	}
}

// serverRecord returns one record as the server has it.
func (ts *testServer) serverRecord(tb testing.TB, coll schema.Collection, id string) stored {
	tb.Helper()
	e, ok := ts.serverRecords(tb)[string(coll)+"/"+id]
	require.Truef(tb, ok, "%s %s is not on the server", coll, id)
	return e
}

// team is a server with two territories, customers in each, a product,
// and a rep for each territory.
type team struct {
	*testServer
}

func newTeam(tb testing.TB, opts ...serverOption) *team {
	tb.Helper()
	ts := startServer(tb, opts...)
	ts.createUser(tb, "rep1", schema.RoleRep, "t-1")
	ts.createUser(tb, "rep2", schema.RoleRep, "t-2")
	admin := ts.open(tb, adminName, "laptop")
	ctx := context.Background()
	put := func(coll schema.Collection, id string, data any) {
		require.NoError(tb, admin.Put(ctx, coll, id, data))
	}
	put(schema.Territories, "t-1", schema.Territory{Name: "North", Region: "EU"})
	put(schema.Territories, "t-2", schema.Territory{Name: "South", Region: "EU"})
	put(schema.Customers, "c-1", schema.Customer{Code: "C1", Name: "Corner Shop", TerritoryID: "t-1", Grade: "A", Lat: ptr(52.52), Lng: ptr(13.405), CreditLimit: 500_000})
	put(schema.Customers, "c-2", schema.Customer{Code: "C2", Name: "Kiosk", TerritoryID: "t-1", Grade: "C"})
	put(schema.Customers, "c-3", schema.Customer{Code: "C3", Name: "Market", TerritoryID: "t-2", Grade: "B"})
	put(schema.Products, "p-1", schema.Product{SKU: "SKU1", Name: "Cola", Unit: "case", Price: 1299, Active: true})
	rep, err := admin.Sync(ctx)
	require.NoError(tb, err)
	require.Equal(tb, 6, rep.Applied, "%+v", rep)
	return &team{ts}
}

func ptr[T any](v T) *T { return &v }

// visit is a finished visit to a customer (a rep may have one open visit
// at a time).
func visit(customer, notes string) schema.Visit {
	in := time.Now().UTC().Truncate(time.Second).Add(-30 * time.Minute)
	return schema.Visit{CustomerID: customer, Notes: notes,
		CheckIn:  schema.GeoPoint{At: in, Lat: ptr(52.52), Lng: ptr(13.405)},
		CheckOut: &schema.GeoPoint{At: in.Add(20 * time.Minute), Lat: ptr(52.52), Lng: ptr(13.405)}}
}

// decode returns a record's data as T.
func decode[T any](tb testing.TB, r *fieldsync.Record) T {
	tb.Helper()
	var v T
	require.NoError(tb, r.Decode(&v))
	return v
}

// edit changes a record the device has the way an app does: read it,
// change it, put it whole.
func edit[T any](tb testing.TB, c *fieldsync.Client, coll schema.Collection, id string, change func(*T)) {
	tb.Helper()
	ctx := context.Background()
	rec, err := c.Get(ctx, coll, id)
	require.NoError(tb, err)
	v := decode[T](tb, rec)
	change(&v)
	require.NoError(tb, c.Put(ctx, coll, id, v))
}

// jpeg returns n bytes that start like a JPEG and are otherwise random.
func jpeg(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}

// fault is what the faulty transport does to a request.
type fault int

const (
	pass       fault = iota
	loseAnswer       // the server handles the request; the answer is lost
	refuse           // the connection fails before anything is sent
	answer503        // a proxy answers 503
	answer400        // a proxy answers 400
)

// faultyTransport lets tests break requests on their way: inject decides
// the fate of the n-th request (from 1) to a path.
type faultyTransport struct {
	mu     gosync.Mutex
	inject func(path string, n int) fault
	seen   map[string]int
}

func (f *faultyTransport) set(inject func(path string, n int) fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inject, f.seen = inject, map[string]int{}
}

// count returns how many requests went to a path.
func (f *faultyTransport) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen[path]
}

func (f *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	f.seen[req.URL.Path]++
	what := pass
	if f.inject != nil {
		what = f.inject(req.URL.Path, f.seen[req.URL.Path])
	}
	f.mu.Unlock()
	switch what {
	case loseAnswer:
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return nil, errors.New("connection reset by peer (injected)")
	case refuse:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("connection refused (injected)")
	case answer503, answer400:
		if req.Body != nil {
			io.Copy(io.Discard, req.Body)
			req.Body.Close()
		}
		status, code := http.StatusServiceUnavailable, "unavailable"
		if what == answer400 {
			status, code = http.StatusBadRequest, "bad_request"
		}
		return &http.Response{
			StatusCode: status, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req,
			Header: http.Header{"Content-Type": {"application/json"}},
			Body:   io.NopCloser(strings.NewReader(`{"error":{"code":"` + code + `","message":"injected"}}`)),
		}, nil
	}
	return http.DefaultTransport.RoundTrip(req)
}

// faultyClient returns a config tweak that sends through f.
func faultyClient(f *faultyTransport) func(*fieldsync.Config) {
	return func(c *fieldsync.Config) { c.HTTPClient = &http.Client{Transport: f, Timeout: 10 * time.Second} }
}

// on returns an injection that does what to the requests to path whose
// number is in ns (every request when ns is empty).
func on(path string, what fault, ns ...int) func(string, int) fault {
	return func(p string, n int) fault {
		if p != path {
			return pass
		}
		if len(ns) == 0 {
			return what
		}
		for _, m := range ns {
			if m == n {
				return what
			}
		}
		return pass
	}
}
