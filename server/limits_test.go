package server_test

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
)

// metricValue reads one sample of the server's /metrics; -1 when absent.
func (ts *testServer) metricValue(tb testing.TB, series string) float64 {
	tb.Helper()
	r := ts.call(tb, "GET", "/metrics", "", nil)
	require.Equal(tb, http.StatusOK, r.Status)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(string(r.Raw))
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	require.NoError(tb, err)
	return v
}

// retryAfter reads an answer's Retry-After in whole seconds.
func retryAfter(tb testing.TB, r response) int {
	tb.Helper()
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	require.NoErrorf(tb, err, "Retry-After %q", r.Header.Get("Retry-After"))
	return secs
}

// Sync requests past a device's burst get 429 with Retry-After; another
// device of the same user goes on until the user's own bucket is empty;
// another user is not touched. The refusals are counted by reason.
func TestSyncRateLimits(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		// Refill slowly enough that no token comes back during the test.
		c.Limits = server.Limits{DeviceRate: 0.01, DeviceBurst: 3, UserRate: 0.01, UserBurst: 5}
	})
	admin := ts.login(t, adminName, adminPassword, "console")
	ts.createUser(t, admin, map[string]any{"username": "ana", "password": "ana-password-1", "role": "rep", "territories": []string{}})
	phone := ts.login(t, "ana", "ana-password-1", "phone")
	tablet := ts.login(t, "ana", "ana-password-1", "tablet")
	pull := func(s session) response {
		return ts.call(t, "POST", "/v1/sync/pull", s.Access, schema.PullRequest{})
	}

	for i := range 3 {
		assert.Equalf(t, http.StatusOK, pull(phone).Status, "phone pull %d within the device burst", i+1)
	}
	r := pull(phone)
	require.Equal(t, http.StatusTooManyRequests, r.Status, "phone past its burst")
	assert.Equal(t, schema.CodeRateLimited, r.ErrorCode())
	assert.GreaterOrEqual(t, retryAfter(t, r), 1)
	assert.Contains(t, string(r.Raw), "this device")

	for i := range 2 {
		assert.Equalf(t, http.StatusOK, pull(tablet).Status, "tablet pull %d within the user's burst", i+1)
	}
	r = pull(tablet)
	require.Equal(t, http.StatusTooManyRequests, r.Status, "the user's burst is spent")
	assert.Contains(t, string(r.Raw), "this user's devices")
	push := ts.call(t, "POST", "/v1/sync/push", tablet.Access, map[string]any{"device_id": "tablet", "mutations": []any{}})
	assert.Equal(t, http.StatusTooManyRequests, push.Status, "push shares the buckets")

	assert.Equal(t, http.StatusOK, pull(admin).Status, "another user has buckets of its own")
	assert.Equal(t, float64(2), ts.metricValue(t, `fieldsync_overload_rejected_total{reason="user_rate"}`))
	assert.Equal(t, float64(1), ts.metricValue(t, `fieldsync_overload_rejected_total{reason="device_rate"}`))
	assert.Equal(t, float64(0), ts.metricValue(t, `fieldsync_overload_rejected_total{reason="in_flight"}`))
}

// A negative rate turns the limit off.
func TestSyncRateLimitsOff(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits = server.Limits{DeviceRate: -1, UserRate: -1, DeviceBurst: 1, UserBurst: 1}
	})
	admin := ts.login(t, adminName, adminPassword, "console")
	for i := range 10 {
		require.Equalf(t, http.StatusOK, ts.call(t, "POST", "/v1/sync/pull", admin.Access, schema.PullRequest{}).Status, "pull %d", i+1)
	}
}

// Past the in-flight cap a request is refused at once with 503 and
// Retry-After; probes still answer, and once a slot is free requests
// are served again.
func TestInFlightCap(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.Limits = server.Limits{MaxInFlight: 2} })
	admin := ts.login(t, adminName, adminPassword, "console")

	// Two uploads whose bodies do not come hold the two slots.
	// Larger than the body limit, so that Fiber streams it to the handler.
	const size = 20 << 20
	writers := make([]*io.PipeWriter, 2)
	answers := make(chan response, 2)
	for i := range writers {
		pr, pw := io.Pipe()
		writers[i] = pw
		// A plain client: the contract-checking one reads bodies whole first.
		req, err := http.NewRequest("PUT", ts.URL+"/v1/media/"+strings.Repeat(strconv.Itoa(i), 64), pr)
		require.NoError(t, err)
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+admin.Access)
		req.Header.Set("Content-Type", "image/jpeg")
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				answers <- response{Status: resp.StatusCode}
				return
			}
			answers <- response{}
		}()
		// More than the client's write buffer, so that the request leaves.
		_, err = pw.Write(append([]byte("\xff\xd8\xff"), make([]byte, 64<<10)...))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		return ts.metricValue(t, "fieldsync_requests_in_flight") == 2
	}, 10*time.Second, 20*time.Millisecond, "both uploads hold a slot")

	r := ts.call(t, "POST", "/v1/sync/pull", admin.Access, schema.PullRequest{})
	require.Equal(t, http.StatusServiceUnavailable, r.Status, "a third request")
	assert.Equal(t, schema.CodeUnavailable, r.ErrorCode())
	assert.Equal(t, 1, retryAfter(t, r))
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/healthz", "", nil).Status, "probes do not count")
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/readyz", "", nil).Status, "probes do not count")
	assert.Equal(t, float64(1), ts.metricValue(t, `fieldsync_overload_rejected_total{reason="in_flight"}`))

	for _, w := range writers {
		require.NoError(t, w.CloseWithError(io.ErrUnexpectedEOF))
	}
	for range writers {
		<-answers
	}
	require.Eventually(t, func() bool {
		return ts.metricValue(t, "fieldsync_requests_in_flight") == 0
	}, 10*time.Second, 20*time.Millisecond, "the slots are given back")
	assert.Equal(t, http.StatusOK, ts.call(t, "POST", "/v1/sync/pull", admin.Access, schema.PullRequest{}).Status)
}
