package server

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	gosync "sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fieldsync/fieldsync/schema"
)

// Sign-in admission. A sign-in is mostly a bcrypt check, tens of
// milliseconds of one core, so when a region's phones come back online
// together their sign-ins alone could take every core for minutes. The
// gate lets a few run at once (one per core by default), keeps a short
// queue behind them, and refuses the rest at once with 503 and a
// Retry-After that says when the queue will have room for them: a phone
// told to come back later costs the instance one small answer, where a
// phone left waiting in a long queue gives up, retries and is hashed twice.
//
// Waiting sign-ins take their turns between client addresses, so that a
// flood from one address waits behind itself. A sign-in whose client went
// away (its context ended) leaves the queue and is never checked.

// Sign-in admission defaults and bounds.
const (
	// defaultSignInQueuePerSlot sizes the queue: with sign-ins of about
	// 100 ms, a queue of 16 per slot waits under two seconds.
	defaultSignInQueuePerSlot = 16
	// firstSignInEstimate is how long a sign-in is taken to hold its slot
	// until one has been measured.
	firstSignInEstimate = 100 * time.Millisecond
	// maxSignInQueueWait bounds the queue by time as well: a sign-in that
	// would wait longer than this at the measured pace is refused at once,
	// well before a phone's request times out.
	maxSignInQueueWait = 5 * time.Second
	// maxSignInRetryAfter bounds what a refused sign-in is asked to wait;
	// the clients wait out as much by default.
	maxSignInRetryAfter = 5 * time.Minute
)

// Outcomes of sign-in admission, the label of its counter.
const (
	signInImmediate = "immediate" // a slot was free
	signInQueued    = "queued"    // waited in the queue, then ran
	signInRefused   = "refused"   // the queue was full: 503 at once
	signInAbandoned = "abandoned" // the client went away while waiting
)

// signInGate admits sign-ins: at most slots at once, at most maxWaiting
// more waiting in turns between client addresses (fewer when the measured
// pace would keep them waiting past maxSignInQueueWait), the rest refused.
type signInGate struct {
	slots      int
	maxWaiting int
	now        func() time.Time

	mu      gosync.Mutex
	free    int
	lines   map[string][]chan struct{} // waiters per address, first first
	turns   []string                   // addresses with waiters, next first
	waiters int
	// hold is the measured time a sign-in holds its slot (a moving
	// average); promised is when the last refused sign-in was told to
	// come back, so that refusals are spread over the time the gate needs
	// to serve them rather than all sent back at the same second.
	hold     time.Duration
	promised time.Time
	// recent holds the last holds measured, the quickest of which paces
	// the promises (see pace).
	recent [16]time.Duration
	next   int

	outcomes *prometheus.CounterVec
}

func newSignInGate(slots, maxWaiting int, now func() time.Time, reg prometheus.Registerer) *signInGate {
	g := &signInGate{slots: slots, maxWaiting: maxWaiting, now: now, free: slots,
		lines: map[string][]chan struct{}{}, hold: firstSignInEstimate,
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldsync_signins_total",
			Help: "Sign-ins by admission: immediate (a slot was free), queued (waited for one), refused (the queue was full: 503 with Retry-After), abandoned (the client went away while waiting; never checked).",
		}, []string{"admission"}),
	}
	for _, o := range []string{signInImmediate, signInQueued, signInRefused, signInAbandoned} {
		g.outcomes.WithLabelValues(o) // present at zero from the start
	}
	reg.MustRegister(g.outcomes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fieldsync_signins_waiting",
			Help: "Sign-ins waiting for a slot now.",
		}, func() float64 { g.mu.Lock(); defer g.mu.Unlock(); return float64(g.waiters) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fieldsync_signins_running",
			Help: "Sign-ins holding a slot now.",
		}, func() float64 { g.mu.Lock(); defer g.mu.Unlock(); return float64(g.slots - g.free) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "fieldsync_signin_hold_seconds",
			Help: "Moving average of how long a sign-in holds its slot, what Retry-After of a refused sign-in is computed from.",
		}, func() float64 { g.mu.Lock(); defer g.mu.Unlock(); return g.hold.Seconds() }),
	)
	return g
}

// busy refuses a sign-in when the gate's queue is full; secs is when it
// should come back.
type busy struct {
	secs int
	err  *schema.Error
}

func (e *busy) Error() string { return e.err.Error() }

// Unwrap lets the refusal answer as the unavailable error it carries.
func (e *busy) Unwrap() error { return e.err }

// retryAfter is the Retry-After of the refusal.
func (e *busy) retryAfter() int { return e.secs }

// acquire takes a slot for a sign-in from addr, waiting its turn, and
// returns the function that gives it back. It returns a *busy at once when
// the queue is full, and ctx's error when ctx ends first: the sign-in then
// leaves the queue and must not run.
func (g *signInGate) acquire(ctx context.Context, addr string) (release func(), err error) {
	g.mu.Lock()
	if g.free > 0 && g.waiters == 0 {
		g.free--
		g.mu.Unlock()
		g.outcomes.WithLabelValues(signInImmediate).Inc()
		return g.releaser(), nil
	}
	if g.waiters >= g.maxWaiting || time.Duration(g.waiters+1)*g.hold/time.Duration(g.slots) > maxSignInQueueWait {
		wait := g.promise()
		g.mu.Unlock()
		g.outcomes.WithLabelValues(signInRefused).Inc()
		secs := max(int(math.Ceil(wait.Seconds())), 1)
		return nil, &busy{secs: secs, err: schema.Errorf(schema.CodeUnavailable, "too many sign-ins at once; try again in %d seconds", secs)}
	}
	granted := make(chan struct{})
	if len(g.lines[addr]) == 0 {
		g.turns = append(g.turns, addr)
	}
	g.lines[addr] = append(g.lines[addr], granted)
	g.waiters++
	g.mu.Unlock()

	select {
	case <-granted:
		if ctx.Err() == nil {
			g.outcomes.WithLabelValues(signInQueued).Inc()
			return g.releaser(), nil
		}
		g.pass()
	case <-ctx.Done():
		g.mu.Lock()
		waiting := g.leave(addr, granted)
		g.mu.Unlock()
		if !waiting { // granted meanwhile: pass the slot on
			g.pass()
		}
	}
	g.outcomes.WithLabelValues(signInAbandoned).Inc()
	return nil, fmt.Errorf("sign-in given up while waiting: %w", ctx.Err())
}

// promise returns how long a refused sign-in should wait: until the
// sign-ins queued now and those refused before it have been served, at the
// pace of the quickest recent sign-ins. A sign-in that comes back early
// waits in the queue or is told again, one small answer; one told too
// late leaves a slot idle, and a herd's crowd of phones makes the machine
// slow while it arrives, so the measure of that moment would keep slots
// idle long after. Past maxSignInRetryAfter the refused are spread at
// random over its second half, never sent back all in the same second.
// g.mu is held.
func (g *signInGate) promise() time.Duration {
	now := g.now()
	per := g.pace() / time.Duration(g.slots)
	due := now.Add(time.Duration(g.waiters+1) * per)
	if next := g.promised.Add(per); next.After(due) {
		due = next
	}
	if latest := now.Add(maxSignInRetryAfter); due.After(latest) {
		g.promised = latest
		return maxSignInRetryAfter/2 + rand.N(maxSignInRetryAfter/2+1)
	}
	g.promised = due
	return due.Sub(now)
}

// pace is the quickest of the recent holds, the average before any.
// g.mu is held.
func (g *signInGate) pace() time.Duration {
	pace := g.hold
	for _, h := range g.recent {
		if h > 0 && h < pace {
			pace = h
		}
	}
	return pace
}

// releaser returns the function that frees a slot taken now and adds the
// time it was held to the measured pace.
func (g *signInGate) releaser() func() {
	start := g.now()
	var once gosync.Once
	return func() {
		once.Do(func() {
			held := g.now().Sub(start)
			g.mu.Lock()
			g.hold += (held - g.hold) / 8
			g.recent[g.next] = max(held, time.Microsecond)
			g.next = (g.next + 1) % len(g.recent)
			g.mu.Unlock()
			g.pass()
		})
	}
}

// leave takes a waiter out of its line and reports whether it was still
// waiting. g.mu is held.
func (g *signInGate) leave(addr string, granted chan struct{}) bool {
	line := g.lines[addr]
	for i, ch := range line {
		if ch != granted {
			continue
		}
		g.waiters--
		if line = append(line[:i:i], line[i+1:]...); len(line) > 0 {
			g.lines[addr] = line
			return true
		}
		delete(g.lines, addr)
		for j, a := range g.turns {
			if a == addr {
				g.turns = append(g.turns[:j:j], g.turns[j+1:]...)
				break
			}
		}
		return true
	}
	return false
}

// pass frees a slot: it goes to the first waiter of the address whose
// turn it is, and that address goes to the back of the turns.
func (g *signInGate) pass() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.turns) == 0 {
		g.free++
		return
	}
	addr := g.turns[0]
	g.turns = g.turns[1:]
	line := g.lines[addr]
	granted := line[0]
	g.waiters--
	if len(line) > 1 {
		g.lines[addr] = line[1:]
		g.turns = append(g.turns, addr)
	} else {
		delete(g.lines, addr)
	}
	close(granted)
}
