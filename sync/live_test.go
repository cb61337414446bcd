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
	time.Sleep(50 * time.Millisecond) // past the seed

	rep1 := w.Subscribe(schema.ReadTokens(e.Users["rep1"]), 0)
	rep2 := w.Subscribe(schema.ReadTokens(e.Users["rep2"]), 0)
	mgrVisits := w.Subscribe(schema.TokensIn(schema.ReadTokens(e.Users["mgr"]), []schema.Collection{schema.Visits}), 0)
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
	e.OK("admin", storetest.Up(schema.Customers, "c-1", 2, customer("t-2", "B")))
	assert.Contains(t, woken(rep1, 5*time.Second), schema.Customers, "the loser")
	assert.Contains(t, woken(rep2, 5*time.Second), schema.Customers, "the gainer")

	rep2.SetTokens(schema.ReadTokens(schema.Principal{UserID: e.Users["rep2"].UserID, Role: schema.RoleRep, Territories: []string{"t-3"}}))
	rep1.Close()
	e.OK("admin", storetest.Up(schema.Customers, "c-2", 1, customer("t-2", "C")))
	assert.Nil(t, woken(rep2, quiet), "rep2 now listens to t-3 only")
	assert.Nil(t, woken(rep1, quiet), "a closed subscription hears nothing")
	e.OK("admin", storetest.Up(schema.Territories, "t-3", 0, territory("East")), storetest.Up(schema.Customers, "c-3", 0, customer("t-3", "C")))
	var got []schema.Collection // two commits: one wake-up or two
	for len(got) < 2 {
		cols := woken(rep2, 5*time.Second)
		if cols == nil {
			break
		}
		got = slices.Compact(slices.Sorted(slices.Values(append(got, cols...))))
	}
	assert.Equal(t, []schema.Collection{schema.Customers, schema.Territories}, got)
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
