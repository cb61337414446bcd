package server

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
)

// waiting returns how many wait at g.
func (g *signInGate) waiting() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiters
}

func awaitWaiting(t *testing.T, g testGate, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return g.waiting() == n }, 10*time.Second, time.Millisecond, "%d waiting", n)
}

// testGate is a gate with its own metrics registry.
type testGate struct {
	*signInGate
	reg *prometheus.Registry
}

func newTestGate(slots, queue int, now func() time.Time) testGate {
	reg := prometheus.NewRegistry()
	return testGate{newSignInGate(slots, queue, now, reg), reg}
}

// count reads the sign-ins counted with an admission outcome.
func (g testGate) count(outcome string) int {
	families, err := g.reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, f := range families {
		if f.GetName() != "fieldsync_signins_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() == outcome {
				return int(m.GetCounter().GetValue())
			}
		}
	}
	return -1
}

func TestSignInsTakeTurnsBetweenAddresses(t *testing.T) {
	ctx := context.Background()
	const flood = 50
	g := newTestGate(1, flood+1, time.Now)
	g.hold = time.Millisecond // the queue is bounded by its length here, not its wait
	first, err := g.acquire(ctx, "flood")
	require.NoError(t, err)
	granted := make(chan string)
	releases := make(chan func(), flood+1)
	for range flood {
		go func() {
			if release, err := g.acquire(ctx, "flood"); err == nil {
				releases <- release
				granted <- "flood"
			}
		}()
	}
	awaitWaiting(t, g, flood)
	go func() {
		if release, err := g.acquire(ctx, "other"); err == nil {
			releases <- release
			granted <- "other"
		}
	}()
	awaitWaiting(t, g, flood+1)

	// Each release hands the slot to one waiter; the other address's
	// sign-in gets it once the one address ahead of it has had its turn,
	// not after the 50 sign-ins of the flood.
	var order []string
	first()
	for range flood + 1 {
		order = append(order, <-granted)
		(<-releases)()
	}
	assert.Equal(t, []string{"flood", "other"}, order[:2])
	assert.Zero(t, g.waiting())
	assert.Equal(t, 1, g.free, "every slot comes back")
	assert.Equal(t, 1, g.count(signInImmediate))
	assert.Equal(t, flood+1, g.count(signInQueued))
}

// A sign-in whose client goes away while it waits leaves the queue and is
// never let run; one granted a slot after its client left passes the slot
// on instead of running.
func TestASignInGivenUpLeavesTheQueue(t *testing.T) {
	g := newTestGate(1, 4, time.Now)
	hold, err := g.acquire(context.Background(), "a")
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error)
	go func() {
		release, err := g.acquire(ctx, "b")
		if err == nil {
			release()
		}
		gaveUp <- err
	}()
	awaitWaiting(t, g, 1)
	cancel()
	assert.ErrorIs(t, <-gaveUp, context.Canceled)
	assert.Zero(t, g.waiting())
	assert.Equal(t, 1, g.count(signInAbandoned))

	// Granted and gone at once: the slot goes to the next in line.
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		release, err := g.acquire(ctx, "c")
		if err == nil {
			release()
		}
		gaveUp <- err
	}()
	awaitWaiting(t, g, 1)
	next := make(chan func())
	go func() {
		release, err := g.acquire(context.Background(), "d")
		assert.NoError(t, err)
		next <- release
	}()
	awaitWaiting(t, g, 2)
	g.mu.Lock()
	cancel() // gone before it gets the slot, whichever the select sees first
	g.mu.Unlock()
	hold()
	assert.ErrorIs(t, <-gaveUp, context.Canceled)
	(<-next)()
	assert.Equal(t, 2, g.count(signInAbandoned))
	assert.Equal(t, 1, g.count(signInQueued), "only d ran after waiting")
	assert.Equal(t, 1, g.free, "every slot comes back")
}

// Past the queue a sign-in is refused at once. What it is asked to wait
// grows with the queue and the measured time a sign-in holds its slot,
// and each refusal is sent back after the one before it, so that a crowd
// refused together comes back spread out, as fast as the slots serve it.
func TestGateRefusesPastTheQueue(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	g := newTestGate(2, 2, clock)
	ctx := context.Background()
	for range 2 {
		_, err := g.acquire(ctx, "a")
		require.NoError(t, err)
	}
	for range 2 {
		go func() { _, _ = g.acquire(ctx, "a") }()
	}
	awaitWaiting(t, g, 2)
	g.mu.Lock()
	g.hold = 2 * time.Second // measured: one sign-in each second over two slots
	g.mu.Unlock()

	retryAfter := func() int {
		t.Helper()
		release, err := g.acquire(ctx, "b")
		require.Nil(t, release)
		var b *busy
		require.True(t, errors.As(err, &b), "refused with busy, got %v", err)
		return b.retryAfter()
	}
	// Two queued ahead: the first refused is due after them and itself.
	assert.Equal(t, []int{3, 4, 5}, []int{retryAfter(), retryAfter(), retryAfter()})
	now = now.Add(5 * time.Second)
	assert.Equal(t, 3, retryAfter(), "the promises made are due: from the queue again")
	assert.Equal(t, 4, g.count(signInRefused))
	assert.Equal(t, 2, g.waiting(), "the refused never joined the queue")

	g.mu.Lock()
	g.hold = time.Hour
	g.mu.Unlock()
	seen := map[int]bool{}
	for range 20 {
		secs := retryAfter()
		assert.LessOrEqual(t, secs, int(maxSignInRetryAfter/time.Second), "never longer than the bound")
		assert.GreaterOrEqual(t, secs, int(maxSignInRetryAfter/2/time.Second), "past the bound, spread over its second half")
		seen[secs] = true
	}
	assert.Greater(t, len(seen), 1, "not all sent back in the same second")
}

// Promises follow the quickest recent sign-ins, not an average that a
// moment of slow ones raised: a slot left idle costs more than a phone
// that comes back early.
func TestPromisesFollowTheQuickestRecentSignIns(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	g := newTestGate(1, 0, func() time.Time { return now })
	ctx := context.Background()
	for _, held := range []time.Duration{time.Second, 10 * time.Second, 10 * time.Second} {
		release, err := g.acquire(ctx, "a")
		require.NoError(t, err)
		now = now.Add(held)
		release()
	}
	assert.Greater(t, g.hold, 2*time.Second, "the average is raised by the slow ones")
	_, err := g.acquire(ctx, "a")
	require.NoError(t, err)
	var promised []int
	for range 3 {
		_, err := g.acquire(ctx, "b")
		var b *busy
		require.True(t, errors.As(err, &b), "refused: %v", err)
		promised = append(promised, b.retryAfter())
	}
	assert.Equal(t, []int{1, 2, 3}, promised, "one a second, the pace of the quickest")
}

// The queue is also bounded by how long its last sign-in would wait at the
// measured pace.
func TestSignInQueueIsBoundedByItsWait(t *testing.T) {
	g := newTestGate(1, 100, time.Now)
	g.hold = maxSignInQueueWait / 3
	ctx := context.Background()
	_, err := g.acquire(ctx, "a")
	require.NoError(t, err)
	for range 3 {
		go func() { _, _ = g.acquire(ctx, "a") }()
	}
	awaitWaiting(t, g, 3)
	_, err = g.acquire(ctx, "a")
	var b *busy
	assert.True(t, errors.As(err, &b), "a fourth would wait longer than the bound: %v", err)
	assert.Equal(t, 3, g.waiting())
}

// The time a sign-in holds its slot is measured: a moving average of what
// each took.
func TestSignInHoldIsMeasured(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	g := newTestGate(1, 1, func() time.Time { return now })
	for range 40 {
		release, err := g.acquire(context.Background(), "a")
		require.NoError(t, err)
		now = now.Add(time.Second)
		release()
		release() // twice is once
	}
	assert.InDelta(t, time.Second.Seconds(), g.hold.Seconds(), 0.01)
	assert.Equal(t, 1, g.free)
}

// The clients wait out the longest pause a refused sign-in is asked for:
// a client that gave up at once would come back at once, and a crowd of
// them would keep the server refusing (measured: 743 refusals a second
// from 5,000 phones whose client waited at most 2 minutes).
func TestClientsWaitOutTheLongestSignInPause(t *testing.T) {
	assert.GreaterOrEqual(t, fieldsync.DefaultMaxRetryAfter, maxSignInRetryAfter, "the Go client's default MaxRetryAfter")
	src, err := os.ReadFile("../clients/ts/src/client.ts")
	require.NoError(t, err)
	m := regexp.MustCompile(`maxRetryAfterMs: r\.maxRetryAfterMs \?\? ([0-9_]+)`).FindSubmatch(src)
	require.NotNil(t, m, "the TypeScript client's default maxRetryAfterMs")
	ms, err := strconv.Atoi(strings.ReplaceAll(string(m[1]), "_", ""))
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Duration(ms)*time.Millisecond, maxSignInRetryAfter, "the TypeScript client's default maxRetryAfterMs")
}
