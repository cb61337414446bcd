package fieldsync_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
)

// The wait before a retry follows Retry-After when the server asks for
// longer than the backoff, with a random part on top so that devices
// refused together spread out; it never exceeds MaxDelay.
func TestBackoffHonoursRetryAfterWithJitter(t *testing.T) {
	policy := fieldsync.RetryPolicy{MaxAttempts: 5, BaseDelay: 100 * time.Millisecond, MaxDelay: 30 * time.Second}
	tests := []struct {
		name       string
		n          int
		retryAfter string
		min, max   time.Duration
	}{
		{"no Retry-After: exponential, half random", 3, "", 200 * time.Millisecond, 400 * time.Millisecond},
		{"Retry-After longer than the backoff", 1, "2", 2 * time.Second, 2*time.Second + 300*time.Millisecond},
		{"a long Retry-After gets at most a second more", 1, "20", 20 * time.Second, 21 * time.Second},
		{"Retry-After shorter than the backoff", 8, "1", 6400 * time.Millisecond, 12800 * time.Millisecond},
		{"capped by MaxDelay", 1, "60", 30 * time.Second, 30 * time.Second},
		{"unreadable Retry-After: the backoff", 1, "soon", 50 * time.Millisecond, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := fieldsync.Backoff(policy, tt.n, tt.retryAfter)
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
