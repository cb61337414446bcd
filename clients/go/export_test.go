package fieldsync

import (
	"net/http"
	"time"
)

// SpoilRefreshToken replaces the client's refresh token with one the
// server will refuse, and its access token with an expired one.
func (c *Client) SpoilRefreshToken() {
	c.api.mu.Lock()
	defer c.api.mu.Unlock()
	c.api.refresh = "not-a-refresh-token"
	c.api.expires = c.api.now().Add(-1)
}

// Backoff returns the wait before the retry after attempt n of a request
// answered with 503 and the given Retry-After ("" for none), and whether
// the client gives up instead.
func Backoff(policy RetryPolicy, n int, retryAfter string) (time.Duration, bool) {
	a := &api{retry: policy, now: time.Now}
	h := http.Header{}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	return a.backoff(n, &answer{status: http.StatusServiceUnavailable, header: h})
}
