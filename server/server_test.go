package server_test

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
)

func TestFiberFailuresUseTheContractShape(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.BodyLimit = 64 << 10 })
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown route", "GET", "/v1/nothing-here", "", 404, "not_found"},
		{"unknown top-level route", "GET", "/index.php", "", 404, "not_found"},
		{"wrong method", "DELETE", "/v1/auth/login", "", 405, "method_not_allowed"},
		{"malformed JSON", "POST", "/v1/auth/login", `{"username": "a", `, 400, "bad_request"},
		{"not an object", "POST", "/v1/auth/login", `[1,2]`, 400, "bad_request"},
		{"body over the limit", "POST", "/v1/auth/login", `{"username":"` + strings.Repeat("a", 100<<10) + `"}`, 413, "payload_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := ts.call(t, tt.method, tt.path, "", body)
			assert.Equal(t, tt.status, r.Status, string(r.Raw))
			require.NotNil(t, r.Body, "JSON body: %s", r.Raw)
			assert.Equal(t, tt.code, r.ErrorCode())
			msg := r.Body["error"].(map[string]any)["message"].(string)
			assert.NotEmpty(t, msg)
		})
	}
}

func TestHealthAndReadiness(t *testing.T) {
	ts := startServer(t)
	r := ts.call(t, "GET", "/healthz", "", nil)
	assert.Equal(t, http.StatusOK, r.Status)
	r = ts.call(t, "GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusOK, r.Status)
	assert.Equal(t, "ok", r.Body["checks"].(map[string]any)["records"])

	broken := startServer(t)
	require.NoError(t, os.RemoveAll(filepath.Join(broken.Dir, "photos")), "the photo folder goes away")
	r = broken.call(t, "GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.Status)
	assert.Equal(t, "unavailable", r.ErrorCode())
	assert.Contains(t, string(r.Raw), "the photo store not answering", "names the store that is down")
	assert.NotContains(t, string(r.Raw), "record store", "and only that one")
	assert.NotContains(t, string(r.Raw), broken.Dir, "no path leaks")
	assert.Equal(t, http.StatusOK, broken.call(t, "GET", "/healthz", "", nil).Status, "alive while not ready")

	require.NoError(t, ts.Store.Close())
	r = ts.call(t, "GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, r.Status, "a closed record store is not ready")
	assert.Contains(t, string(r.Raw), "the record store not answering", "names the store that is down")
}

func TestInternalErrorsLeakNothing(t *testing.T) {
	ts := startServer(t)
	require.NoError(t, ts.Store.Close())
	r := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": adminName, "password": adminPassword, "device_id": "d"})
	assert.Equal(t, http.StatusInternalServerError, r.Status)
	assert.Equal(t, "internal", r.ErrorCode())
	assert.Equal(t, "internal error", r.Body["error"].(map[string]any)["message"])
	assert.NotContains(t, string(r.Raw), "sql")
}

func TestMetrics(t *testing.T) {
	ts := startServer(t)
	ts.call(t, "GET", "/healthz", "", nil)
	ts.call(t, "POST", "/v1/auth/login", "", `{}`)
	ts.call(t, "GET", "/no/such/thing", "", nil)
	groups := ts.metricValue(t, "fieldsync_store_commit_group_size_count")
	units := ts.metricValue(t, "fieldsync_store_commit_group_size_sum")
	locked := ts.metricValue(t, `fieldsync_push_decisions_total{how="locked"}`)
	admin := ts.login(t, adminName, adminPassword, "d")
	push := ts.call(t, "POST", "/v1/sync/push", admin.Access, map[string]any{"device_id": "d", "mutations": []any{map[string]any{
		"mutation_id": "m-1", "op": "upsert", "collection": "territories", "id": "t-1", "base_version": 0, "data": map[string]any{"name": "North", "region": "EU"}}}})
	require.Equal(t, http.StatusOK, push.Status, string(push.Raw))
	assert.Greater(t, ts.metricValue(t, "fieldsync_store_commit_group_size_count"), groups, "the push's write transaction is counted")
	assert.Greater(t, ts.metricValue(t, "fieldsync_store_commit_group_size_sum"), units)
	assert.Equal(t, locked+1, ts.metricValue(t, `fieldsync_push_decisions_total{how="locked"}`), "a push of one mutation is decided under the write lock")
	r := ts.call(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, r.Status)
	text := string(r.Raw)
	for _, want := range []string{
		`fieldsync_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`fieldsync_http_requests_total{method="POST",route="/v1/auth/login",status="422"} 1`,
		`fieldsync_http_requests_total{method="GET",route="unmatched",status="404"} 1`,
		`fieldsync_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="0.001"}`,
		`fieldsync_store_commit_group_size_bucket{le="64"}`,
		`fieldsync_push_decisions_total{how="ahead"} 0`,
		`fieldsync_push_decisions_total{how="again"} 0`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		assert.Contains(t, text, want)
	}
}

func TestRateLimitSlowsDownAndTheWindowEnds(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	ts := startServer(t, func(c *server.Config) {
		c.Now = func() time.Time { return clock() }
		c.LoginFailureLimit = 2
		c.LoginFailureWindow = time.Minute
		c.LoginBackoff = time.Second
	})
	bad := map[string]string{"username": adminName, "password": "wrong-password", "device_id": "d"}
	good := map[string]string{"username": adminName, "password": adminPassword, "device_id": "d"}
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/login", "", bad).Status)
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/login", "", bad).Status)
	r := ts.call(t, "POST", "/v1/auth/login", "", good)
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	assert.Equal(t, "rate_limited", r.ErrorCode())
	assert.Equal(t, "1", r.Header.Get("Retry-After"), "slowed down, not locked out")

	now = now.Add(time.Second)
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/login", "", bad).Status, "the next attempt is allowed")
	r = ts.call(t, "POST", "/v1/auth/login", "", good)
	require.Equal(t, http.StatusTooManyRequests, r.Status)
	assert.Equal(t, "2", r.Header.Get("Retry-After"), "each further failure doubles the wait")
	now = now.Add(2 * time.Second)
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/login", "", bad).Status)
	r = ts.call(t, "POST", "/v1/auth/login", "", good)
	assert.Equal(t, "4", r.Header.Get("Retry-After"))

	for range 10 { // the waits never pass the window's end
		now = now.Add(time.Duration(max(1, atoi(r.Header.Get("Retry-After")))) * time.Second)
		ts.call(t, "POST", "/v1/auth/login", "", bad)
		r = ts.call(t, "POST", "/v1/auth/login", "", good)
		if r.Status == http.StatusOK {
			break
		}
		require.Equal(t, http.StatusTooManyRequests, r.Status)
		assert.LessOrEqual(t, atoi(r.Header.Get("Retry-After")), 60)
	}

	now = now.Add(61 * time.Second)
	r = ts.call(t, "POST", "/v1/auth/login", "", good)
	assert.Equal(t, http.StatusOK, r.Status, "the count ends with the window")
	ts.call(t, "POST", "/v1/auth/login", "", bad)
	ts.call(t, "POST", "/v1/auth/login", "", bad)
	now = now.Add(time.Second)
	r = ts.call(t, "POST", "/v1/auth/login", "", good)
	require.Equal(t, http.StatusOK, r.Status, "a good login clears the count")
	ts.call(t, "POST", "/v1/auth/login", "", bad)
	r = ts.call(t, "POST", "/v1/auth/login", "", good)
	assert.Equal(t, http.StatusOK, r.Status, "a cleared count starts again from nothing")
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// clientFrom is an HTTP client whose connections come from a loopback
// address of its own (127.0.0.2, …): another client address.
func clientFrom(ip string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
}

func TestNobodyLocksOutAUserFromAnotherAddress(t *testing.T) {
	now := time.Now()
	ts := startServer(t, func(c *server.Config) { c.Now = func() time.Time { return now } })
	attacker, owner := clientFrom("127.0.0.2"), clientFrom("127.0.0.3")
	bad := map[string]string{"username": adminName, "password": "wrong-password", "device_id": "d"}
	good := map[string]string{"username": adminName, "password": adminPassword, "device_id": "d"}
	for i := range 20 {
		r := ts.callWith(t, attacker, "POST", "/v1/auth/login", "", bad)
		require.Containsf(t, []int{http.StatusUnauthorized, http.StatusTooManyRequests}, r.Status, "attempt %d: %s", i, r.Raw)
	}
	r := ts.callWith(t, attacker, "POST", "/v1/auth/login", "", good)
	assert.Equal(t, http.StatusTooManyRequests, r.Status, "the attacker's address is slowed down")

	r = ts.callWith(t, owner, "POST", "/v1/auth/login", "", good)
	assert.Equal(t, http.StatusOK, r.Status, "the admin signs in from another address: %s", r.Raw)
	r = ts.callWith(t, owner, "POST", "/v1/auth/login", "", bad)
	assert.Equal(t, http.StatusUnauthorized, r.Status, "and is not slowed there")
}

// A client's spare connection that never sent a request does not hold up
// a graceful shutdown: fasthttp alone would wait for its first request
// until the read timeout, past the shutdown's own deadline.
func TestShutdownDoesNotWaitForSilentConnections(t *testing.T) {
	srv, stop, err := servertest.Run(t.TempDir(), servertest.Options{})
	require.NoError(t, err)
	silent, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	defer silent.Close()
	resp, err := http.Get(srv.URL + "/healthz") // the server has accepted by now
	require.NoError(t, err)
	resp.Body.Close()
	require.NoError(t, stop(), "shut down within its deadline with a silent connection open")
}
