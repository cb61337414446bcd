package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
)

// slowSignInCost is the bcrypt cost of a user whose sign-in holds its slot
// long enough (several hundred milliseconds even on a fast machine) for a
// test to look at the queue behind it.
const slowSignInCost = 13

// addSlowUser stores a rep whose password hash is slow to check.
func (ts *testServer) addSlowUser(tb testing.TB, username, password string) {
	tb.Helper()
	u, err := server.NewUser(username, password, schema.RoleRep, nil, "", time.Now(), bcrypt.MinCost)
	require.NoError(tb, err)
	hash, err := bcrypt.GenerateFromPassword([]byte(password), slowSignInCost)
	require.NoError(tb, err)
	u.PasswordHash = string(hash)
	require.NoError(tb, ts.Store.CreateUser(context.Background(), u, sync.UserAudit(schema.Principal{}, nil, u, time.Now())))
}

// signInLater signs in on another goroutine and sends the answer's status.
func (ts *testServer) signInLater(username, password, device string) <-chan int {
	status := make(chan int, 1)
	go func() {
		body, _ := json.Marshal(schema.LoginRequest{Username: username, Password: password, DeviceID: device})
		resp, err := http.Post(ts.URL+"/v1/auth/login", "application/json", bytes.NewReader(body))
		if err != nil {
			status <- 0
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	return status
}

func (ts *testServer) awaitMetric(tb testing.TB, series string, want float64) {
	tb.Helper()
	require.Eventually(tb, func() bool { return ts.metricValue(tb, series) == want },
		20*time.Second, 10*time.Millisecond, "%s = %v", series, want)
}

// notYet requires that nothing came on ch yet.
func notYet(tb testing.TB, ch <-chan int, what string) {
	tb.Helper()
	select {
	case s := <-ch:
		require.Failf(tb, "answered too soon", "%s answered %d already", what, s)
	default:
	}
}

// A crowd of sign-ins past the queue is refused at once with 503 and
// Retry-After, in the contract's error shape, while the sign-in ahead is
// still being checked; the sign-ins waiting do not take the in-flight
// slot, so a device already signed in still pushes.
func TestSignInsPastTheQueueAreRefusedAtOnce(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits = server.Limits{MaxInFlight: 1, SignInSlots: 1, SignInQueue: 1, DeviceRate: -1, UserRate: -1}
	})
	admin := ts.login(t, adminName, adminPassword, "console")
	ts.addSlowUser(t, "slow", "slow-password-1")

	running := ts.signInLater("slow", "slow-password-1", "slow-phone")
	ts.awaitMetric(t, "fieldsync_signins_running", 1)
	queued := ts.signInLater(adminName, adminPassword, "queued-phone")
	ts.awaitMetric(t, "fieldsync_signins_waiting", 1)

	for i := range 3 {
		r := ts.call(t, "POST", "/v1/auth/login", "", schema.LoginRequest{Username: adminName, Password: adminPassword, DeviceID: fmt.Sprintf("crowd-%d", i)})
		require.Equal(t, http.StatusServiceUnavailable, r.Status, string(r.Raw))
		assert.Equal(t, schema.CodeUnavailable, r.ErrorCode())
		assert.GreaterOrEqual(t, retryAfter(t, r), 1)
	}
	push := ts.call(t, "POST", "/v1/sync/push", admin.Access, map[string]any{"device_id": "console", "mutations": []any{}})
	assert.Equal(t, http.StatusOK, push.Status, "a push beside two sign-ins under an in-flight cap of 1: %s", push.Raw)
	notYet(t, running, "the slow sign-in")
	notYet(t, queued, "the queued sign-in")

	assert.Equal(t, http.StatusOK, <-running)
	assert.Equal(t, http.StatusOK, <-queued)
	assert.Equal(t, float64(3), ts.metricValue(t, `fieldsync_signins_total{admission="refused"}`))
	assert.Equal(t, float64(1), ts.metricValue(t, `fieldsync_signins_total{admission="queued"}`))
	assert.Equal(t, float64(2), ts.metricValue(t, `fieldsync_signins_total{admission="immediate"}`))
	assert.Equal(t, float64(0), ts.metricValue(t, `fieldsync_overload_rejected_total{reason="in_flight"}`))
}

// A sign-in whose client hangs up while it waits leaves the queue and its
// password is never checked: no login is opened for it.
func TestAbandonedSignInIsNotChecked(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.Limits = server.Limits{SignInSlots: 1, SignInQueue: 4, DeviceRate: -1, UserRate: -1}
	})
	admin := ts.login(t, adminName, adminPassword, "console")
	ts.addSlowUser(t, "slow", "slow-password-1")

	running := ts.signInLater("slow", "slow-password-1", "slow-phone")
	ts.awaitMetric(t, "fieldsync_signins_running", 1)

	conn, err := net.Dial("tcp", ts.URL[len("http://"):])
	require.NoError(t, err)
	body, err := json.Marshal(schema.LoginRequest{Username: adminName, Password: adminPassword, DeviceID: "gone-phone"})
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST /v1/auth/login HTTP/1.1\r\nHost: fieldsync\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	require.NoError(t, err)
	ts.awaitMetric(t, "fieldsync_signins_waiting", 1)
	require.NoError(t, conn.Close())

	ts.awaitMetric(t, `fieldsync_signins_total{admission="abandoned"}`, 1)
	assert.Equal(t, float64(0), ts.metricValue(t, "fieldsync_signins_waiting"))
	notYet(t, running, "the slow sign-in")
	assert.Equal(t, http.StatusOK, <-running)

	assert.Equal(t, float64(0), ts.metricValue(t, `fieldsync_signins_total{admission="queued"}`))
	r := ts.call(t, "GET", "/v1/audit?user_id="+admin.UserID+"&limit=100", admin.Access, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	entries, _ := r.Body["entries"].([]any)
	require.NotEmpty(t, entries, "the admin's own sign-in is there")
	for _, e := range entries {
		assert.NotEqual(t, "gone-phone", e.(map[string]any)["device_id"], "a sign-in whose client left opened a login")
	}
}
