package sync_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// woken waits for a wake-up of s with collections and returns them; nil
// when none comes within wait.
func woken(s *sync.Subscription, wait time.Duration) []schema.Collection {
	timeout := time.After(wait)
	for {
		select {
		case <-s.Wake():
			if cols := s.Take(); len(cols) > 0 {
				return cols
			}
		case <-timeout:
			return nil
		}
	}
}

func TestWatcherWakesTheSubscribersOfAWrite(t *testing.T) {
	e := newEnv(t)
	seed(e)
	w := sync.NewWatcher(sync.WatcherConfig{Store: e.Store, Interval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	// Subscribers arrive after the seed, at the store's watermark, as
	// the server subscribes them: the seed is not news to them, however
	// late the watcher reads it.
	wm, err := e.Store.Watermark(ctx)
	require.NoError(t, err)
	rep1 := w.Subscribe(schema.ReadTokens(e.Users["rep1"]), wm)
	rep2 := w.Subscribe(schema.ReadTokens(e.Users["rep2"]), wm)
	mgrVisits := w.Subscribe(schema.TokensIn(schema.ReadTokens(e.Users["mgr"]), []schema.Collection{schema.Visits}), wm)
	const quiet = 200 * time.Millisecond
	assert.Nil(t, woken(rep1, quiet), "nothing written since it subscribed")

	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	assert.Equal(t, []schema.Collection{schema.Visits}, woken(rep1, 5*time.Second))
	assert.Equal(t, []schema.Collection{schema.Visits}, woken(mgrVisits, 5*time.Second))
	assert.Nil(t, woken(rep2, quiet), "rep2 may not read rep1's visit")

	// Two writes before the subscriber looks: one wake-up naming both.
	e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "B")), storetest.Up(schema.Territories, "t-1", 1, territory("Far North")))
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, []schema.Collection{schema.Customers, schema.Territories}, woken(rep1, 5*time.Second))
	assert.Nil(t, woken(rep1, quiet), "told once")
	assert.Nil(t, woken(mgrVisits, quiet), "not its collection")

	// A customer leaving t-1 wakes the holders of t-1 too (its visit
	// moves with it).
	// The watcher may tell of one commit's collections in more than one
	// wake-up: every one is taken before the next step.
	e.OK("admin", storetest.Up(schema.Customers, "c-1", 2, customer("t-2", "B")))
	both := []schema.Collection{schema.Customers, schema.Visits}
	assert.Equal(t, both, wokenAll(rep1, 2, quiet), "the loser")
	assert.Equal(t, []schema.Collection{schema.Customers}, wokenAll(rep2, 1, quiet), "the gainer (rep1's visit is not its to read)")

	rep2.SetTokens(schema.ReadTokens(schema.Principal{UserID: e.Users["rep2"].UserID, Role: schema.RoleRep, Territories: []string{"t-3"}}))
	rep1.Close()
	e.OK("admin", storetest.Up(schema.Customers, "c-2", 1, customer("t-2", "C")))
	assert.Nil(t, woken(rep2, quiet), "rep2 now listens to t-3 only")
	assert.Nil(t, woken(rep1, quiet), "a closed subscription hears nothing")
	e.OK("admin", storetest.Up(schema.Territories, "t-3", 0, territory("East")), storetest.Up(schema.Customers, "c-3", 0, customer("t-3", "C")))
	// Two commits: one wake-up or two.
	assert.Equal(t, []schema.Collection{schema.Customers, schema.Territories}, wokenAll(rep2, 2, quiet))
}

// wokenAll gathers, in order, the collections a subscription is woken
// about until it has want of them, waiting up to 5 s for each wake-up,
// and then while wake-ups come within quiet of each other.
func wokenAll(s *sync.Subscription, want int, quiet time.Duration) []schema.Collection {
	var got []schema.Collection
	for {
		wait := 5 * time.Second
		if len(got) >= want {
			wait = quiet
		}
		cols := woken(s, wait)
		if cols == nil {
			return got
		}
		got = slices.Compact(slices.Sorted(slices.Values(append(got, cols...))))
	}
}

func TestWatcherTellsNoSubscriberOfWritesItAlreadyKnew(t *testing.T) {
	e := newEnv(t)
	seed(e)
	w := sync.NewWatcher(sync.WatcherConfig{Store: e.Store, Interval: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond) // the first poll is past the seed
	other := w.Subscribe(schema.ReadTokens(e.Users["rep2"]), 0)
	defer other.Close()

	// Committed before rep1 subscribes, read by the watcher after it did.
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	known, err := e.Store.Watermark(ctx)
	require.NoError(t, err)
	late := w.Subscribe(schema.ReadTokens(e.Users["rep1"]), known)
	defer late.Close()
	assert.Nil(t, woken(late, 700*time.Millisecond), "a write its pull brings anyway is not news")

	e.OK("rep1", storetest.Up(schema.Visits, "v-2", 0, visit("c-1", 52.52, 13.405)))
	assert.Equal(t, []schema.Collection{schema.Visits}, woken(late, 5*time.Second))
}
