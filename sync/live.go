package sync

import (
	"context"
	"log/slog"
	"slices"
	gosync "sync"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// FeedReader is what a Watcher reads of the store: how far the feed is
// stable, and the tokens of the writes up to there.
type FeedReader interface {
	Watermark(ctx context.Context) (int64, error)
	Feed(ctx context.Context, after, upto int64, limit int) ([]FeedEntry, int64, error)
}

// Live stream defaults.
const (
	// DefaultWatchInterval is how often a Watcher polls the store.
	DefaultWatchInterval = 500 * time.Millisecond
	// watchPage is how many feed entries a Watcher reads at a time.
	watchPage = 1000
)

// WatcherConfig is what a Watcher is built from; zero fields take the
// documented defaults.
type WatcherConfig struct {
	// Store is read for new writes. Required.
	Store FeedReader
	// Interval is how often the store is polled; default
	// DefaultWatchInterval.
	Interval time.Duration
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
}

// Watcher is the one reader of the change feed per process that wakes
// live streams: it polls the store for writes committed by any process
// sharing it, and tells each subscription whose read tokens a write
// concerns. It keeps nothing correctness depends on: a subscriber that
// misses a wake-up still gets every change from its next pull.
type Watcher struct {
	store    FeedReader
	interval time.Duration
	log      *slog.Logger

	mu      gosync.Mutex
	byToken map[string]map[*Subscription]struct{}
}

// NewWatcher builds a Watcher; Run starts it.
func NewWatcher(cfg WatcherConfig) *Watcher {
	w := &Watcher{store: cfg.Store, interval: cfg.Interval, log: cfg.Logger,
		byToken: map[string]map[*Subscription]struct{}{}}
	if w.interval <= 0 {
		w.interval = DefaultWatchInterval
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	return w
}

// Subscription is one listener's interest in the writes that concern a
// set of read tokens.
type Subscription struct {
	w      *Watcher
	tokens []string
	wake   chan struct{}
	// after is the feed position the subscriber already knows of: writes
	// at or before it are not news to it.
	after int64
	// pending holds the collections woken about since the last Take.
	mu      gosync.Mutex
	pending map[schema.Collection]struct{}
}

// Subscribe starts telling the returned subscription about writes after
// the feed position after (the store's watermark when the subscriber
// arrived) that concern tokens. Close it when done.
func (w *Watcher) Subscribe(tokens []string, after int64) *Subscription {
	s := &Subscription{w: w, wake: make(chan struct{}, 1), after: after, pending: map[schema.Collection]struct{}{}}
	s.SetTokens(tokens)
	return s
}

// SetTokens replaces the tokens the subscription listens to, as when its
// holder's scope changed.
func (s *Subscription) SetTokens(tokens []string) {
	tokens = slices.Compact(slices.Sorted(slices.Values(tokens)))
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.drop(s)
	s.tokens = tokens
	for _, t := range tokens {
		subs := w.byToken[t]
		if subs == nil {
			subs = map[*Subscription]struct{}{}
			w.byToken[t] = subs
		}
		subs[s] = struct{}{}
	}
}

// Close stops the subscription; its channel is no longer woken.
func (s *Subscription) Close() {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	s.w.drop(s)
	s.tokens = nil
}

// drop removes s from the index; w.mu held.
func (w *Watcher) drop(s *Subscription) {
	for _, t := range s.tokens {
		subs := w.byToken[t]
		delete(subs, s)
		if len(subs) == 0 {
			delete(w.byToken, t)
		}
	}
}

// Wake receives a value, coalesced, after writes that concern the
// subscription; Take says which collections they were in.
func (s *Subscription) Wake() <-chan struct{} { return s.wake }

// Take returns, sorted, the collections of the writes woken about since
// the last Take, and forgets them.
func (s *Subscription) Take() []schema.Collection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]schema.Collection, 0, len(s.pending))
	for c := range s.pending {
		out = append(out, c)
		delete(s.pending, c)
	}
	slices.Sort(out)
	return out
}

func (s *Subscription) note(c schema.Collection) {
	s.mu.Lock()
	s.pending[c] = struct{}{}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run polls the store every interval until ctx ends, starting from the
// writes committed after it starts.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	after := int64(-1) // not yet known
	for {
		var err error
		if after, err = w.poll(ctx, after); err != nil && ctx.Err() == nil {
			w.log.Warn("watching the change feed", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// poll reads the writes after after up to the watermark, wakes their
// subscribers, and returns how far it read.
func (w *Watcher) poll(ctx context.Context, after int64) (int64, error) {
	wm, err := w.store.Watermark(ctx)
	switch {
	case err != nil:
		return after, err
	case after < 0 || wm <= after:
		return max(after, wm), nil
	}
	if !w.listened() {
		return wm, nil
	}
	for after < wm {
		entries, through, err := w.store.Feed(ctx, after, wm, watchPage)
		if err != nil {
			return after, err
		}
		w.fanOut(entries)
		after = through
	}
	return after, nil
}

func (w *Watcher) listened() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byToken) > 0
}

// fanOut wakes the subscribers of each entry's tokens.
func (w *Watcher) fanOut(entries []FeedEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range entries {
		for _, t := range e.Tokens {
			for s := range w.byToken[t] {
				if e.Seq > s.after {
					s.note(schema.TokenCollection(t))
				}
			}
		}
	}
}
