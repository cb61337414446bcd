package server

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// waiting returns how many wait in q.
func (q *hashQueue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiters
}

func awaitWaiting(t *testing.T, q *hashQueue, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return q.waiting() == n }, 10*time.Second, time.Millisecond, "%d waiting", n)
}

func TestPasswordChecksTakeTurnsBetweenAddresses(t *testing.T) {
	ctx := context.Background()
	q := newHashQueue(1)
	require.NoError(t, q.acquire(ctx, "flood"))
	granted := make(chan string)
	const flood = 50
	for range flood {
		go func() {
			if q.acquire(ctx, "flood") == nil {
				granted <- "flood"
			}
		}()
	}
	awaitWaiting(t, q, flood)
	go func() {
		if q.acquire(ctx, "other") == nil {
			granted <- "other"
		}
	}()
	awaitWaiting(t, q, flood+1)

	// Each release hands the slot to one waiter; the other address's
	// sign-in gets it once the one address ahead of it has had its turn,
	// not after the 50 checks of the flood.
	var order []string
	for range flood + 1 {
		q.release()
		order = append(order, <-granted)
	}
	assert.Equal(t, []string{"flood", "other"}, order[:2])
	assert.Zero(t, q.waiting())
	q.release()
	assert.Equal(t, 1, q.free, "every slot comes back")
}

func TestAPasswordCheckGivenUpLeavesItsLine(t *testing.T) {
	q := newHashQueue(1)
	require.NoError(t, q.acquire(context.Background(), "a"))
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error)
	go func() { gaveUp <- q.acquire(ctx, "b") }()
	awaitWaiting(t, q, 1)
	cancel()
	assert.ErrorIs(t, <-gaveUp, context.Canceled)
	assert.Zero(t, q.waiting())
	q.release()
	require.NoError(t, q.acquire(context.Background(), "c"), "the slot is free again")
	q.release()
	assert.Equal(t, 1, q.free)
}
