package fieldsync_test

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
)

// The wait before a retry follows Retry-After when the server asks for
// longer than the backoff, with a random part on top so that devices
// refused together spread out, and never less than asked: MaxDelay caps
// only the client's own backoff. A pause past MaxRetryAfter is not waited.
func TestBackoffHonoursRetryAfterWithJitter(t *testing.T) {
	policy := fieldsync.RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 30 * time.Second, MaxRetryAfter: 2 * time.Minute}
	inAMinute := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		n          int
		retryAfter string
		min, max   time.Duration
		giveUp     bool
	}{
		{"no Retry-After: exponential, half random", 3, "", 200 * time.Millisecond, 400 * time.Millisecond, false},
		{"Retry-After longer than the backoff", 1, "2", 2 * time.Second, 2*time.Second + 300*time.Millisecond, false},
		{"a long Retry-After gets at most a second more", 1, "20", 20 * time.Second, 21 * time.Second, false},
		{"Retry-After shorter than the backoff", 8, "1", 6400 * time.Millisecond, 12800 * time.Millisecond, false},
		{"Retry-After past MaxDelay is waited in full", 1, "60", 60 * time.Second, 61 * time.Second, false},
		{"the backoff alone is capped by MaxDelay", 20, "", 15 * time.Second, 30 * time.Second, false},
		{"Retry-After as an HTTP date", 1, inAMinute, 58 * time.Second, 61 * time.Second, false},
		{"Retry-After past MaxRetryAfter: no wait, the error", 1, "600", 600 * time.Second, 600 * time.Second, true},
		{"unreadable Retry-After: the backoff", 1, "soon", 50 * time.Millisecond, 100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d, giveUp := fieldsync.Backoff(policy, tt.n, tt.retryAfter)
				assert.Equal(t, tt.giveUp, giveUp)
				assert.GreaterOrEqual(t, d, tt.min)
				assert.LessOrEqual(t, d, tt.max)
				seen[d] = true
			}
			if tt.min != tt.max {
				assert.Greater(t, len(seen), 100, "waits are spread, not the same for every device")
			}
		})
	}
}

// exchange is one request the client sent: its path, when its answer
// came, its status and the Retry-After it carried.
type exchange struct {
	path       string
	sent, at   time.Time
	status     int
	retryAfter string
}

// recorder is a transport that keeps every exchange.
type recorder struct {
	mu        gosync.Mutex
	next      http.RoundTripper
	exchanges []exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	sent := time.Now()
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exchanges = append(r.exchanges, exchange{path: req.URL.Path, sent: sent, at: time.Now(), status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")})
	return resp, nil
}

// A real server's 429 asks for a longer pause than the client's MaxDelay:
// the client waits it out in full before it asks again, and its syncs go
// through.
func TestRetryAfterPastMaxDelayIsWaitedInFull(t *testing.T) {
	ts := startServer(t, func(_ *sync.Config, c *server.Config) {
		c.Limits.DeviceRate, c.Limits.DeviceBurst = 0.5, 1 // one sync request per 2 s
	})
	ts.createUser(t, "rep", schema.RoleRep, "t-1")
	rec := &recorder{next: http.DefaultTransport}
	if ts.HTTP != nil {
		rec.next = ts.HTTP.Transport
	}
	const maxDelay = 50 * time.Millisecond
	c := ts.open(t, "rep", "phone", func(cfg *fieldsync.Config) {
		cfg.HTTPClient = &http.Client{Transport: rec, Timeout: fieldsync.DefaultRequestTimeout}
		cfg.Retry = fieldsync.RetryPolicy{MaxAttempts: 4, BaseDelay: 10 * time.Millisecond, MaxDelay: maxDelay}
	})
	for range 2 {
		_, err := c.Sync(context.Background())
		require.NoError(t, err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	refused := 0
	for i, e := range rec.exchanges {
		if e.status != http.StatusTooManyRequests {
			continue
		}
		refused++
		secs, err := strconv.Atoi(e.retryAfter)
		require.NoErrorf(t, err, "a 429 carries Retry-After in seconds, got %q", e.retryAfter)
		asked := time.Duration(secs) * time.Second
		require.Greater(t, asked, maxDelay)
		j := slices.IndexFunc(rec.exchanges[i+1:], func(n exchange) bool { return n.path == e.path })
		require.GreaterOrEqualf(t, j, 0, "the refused %s is sent again", e.path)
		again := rec.exchanges[i+1+j]
		assert.GreaterOrEqualf(t, again.sent.Sub(e.at), asked, "%s is sent again no earlier than the %s asked", e.path, asked)
	}
	assert.Positive(t, refused, "the server refused some request with 429")
}
