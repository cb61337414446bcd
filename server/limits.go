package server

import (
	"math"
	"runtime"
	"strconv"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/fieldsync/fieldsync/schema"
)

// Overload protection. Two guards keep one instance answering when more
// comes at it than it can serve:
//
//   - a cap on the requests it works on at once (Limits.MaxInFlight):
//     past it a request is refused at once with 503 and Retry-After,
//     before its body is read, so that a crowd of devices coming back
//     online costs the instance little more than its cap;
//   - token buckets per device and per user on the sync endpoints (push,
//     pull, stream): a device or user past its rate gets 429 with the
//     seconds until its next request would be allowed in Retry-After.
//
// Buckets are keyed by the authenticated caller, never by the client
// address: behind a proxy every device has the proxy's address.

// Limits are the overload settings of a Server. Zero fields take the
// documented defaults; a negative rate or cap turns its guard off.
type Limits struct {
	// MaxInFlight is how many requests the instance works on at once;
	// more are refused with 503 and Retry-After. Health checks, metrics
	// and open live streams (capped by MaxStreams) do not count. Default
	// 256.
	MaxInFlight int
	// DeviceRate is how many sync requests per second one device may make
	// in the long run, DeviceBurst how many it may make at once after a
	// quiet spell. Defaults 5 per second and 60: a first sync of a large
	// territory is tens of pull pages in a row.
	DeviceRate  float64
	DeviceBurst int
	// UserRate and UserBurst are the same for all of one user's devices
	// together. Defaults 10 per second and 120.
	UserRate  float64
	UserBurst int
	// SignInSlots is how many sign-ins (each mostly a bcrypt check) run
	// at once; default one per core (GOMAXPROCS). SignInQueue is how many
	// more wait their turn, default 16 per slot; a sign-in past them is
	// refused at once with 503 and a Retry-After that spreads the refused
	// over the time the instance needs to serve them. Waiting sign-ins do
	// not count toward MaxInFlight.
	SignInSlots int
	SignInQueue int
}

// Limit defaults.
const (
	defaultMaxInFlight = 256
	defaultDeviceRate  = 5
	defaultDeviceBurst = 60
	defaultUserRate    = 10
	defaultUserBurst   = 120
	// overloadRetryAfter is what a request refused by the in-flight cap
	// is asked to wait, in seconds; clients add their own jitter.
	overloadRetryAfter = 1
	// bucketSweepEvery is how often buckets idle long enough to be full
	// again are dropped.
	bucketSweepEvery = time.Minute
)

func (l Limits) withDefaults() Limits {
	if l.MaxInFlight == 0 {
		l.MaxInFlight = defaultMaxInFlight
	}
	if l.DeviceRate == 0 {
		l.DeviceRate = defaultDeviceRate
	}
	if l.DeviceBurst <= 0 {
		l.DeviceBurst = defaultDeviceBurst
	}
	if l.UserRate == 0 {
		l.UserRate = defaultUserRate
	}
	if l.UserBurst <= 0 {
		l.UserBurst = defaultUserBurst
	}
	if l.SignInSlots <= 0 {
		l.SignInSlots = runtime.GOMAXPROCS(0)
	}
	if l.SignInQueue <= 0 {
		l.SignInQueue = defaultSignInQueuePerSlot * l.SignInSlots
	}
	return l
}

// guard holds the overload state of one Server.
type guard struct {
	maxInFlight int64
	inFlight    atomic.Int64
	devices     *buckets
	users       *buckets

	rejected *prometheus.CounterVec // by reason: in_flight, device_rate, user_rate
	current  prometheus.GaugeFunc
}

func newGuard(l Limits, now func() time.Time, reg prometheus.Registerer) *guard {
	l = l.withDefaults()
	g := &guard{
		maxInFlight: int64(l.MaxInFlight),
		devices:     newBuckets(l.DeviceRate, l.DeviceBurst, now),
		users:       newBuckets(l.UserRate, l.UserBurst, now),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fieldsync_overload_rejected_total",
			Help: "Requests refused to protect the instance, by reason: in_flight (503, the instance's cap), device_rate and user_rate (429, the sync rate limits).",
		}, []string{"reason"}),
	}
	g.current = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "fieldsync_requests_in_flight",
		Help: "Requests the instance is working on now, as counted by its in-flight cap.",
	}, func() float64 { return float64(g.inFlight.Load()) })
	for _, reason := range []string{"in_flight", "device_rate", "user_rate"} {
		g.rejected.WithLabelValues(reason) // present at zero from the start
	}
	reg.MustRegister(g.rejected, g.current)
	return g
}

// exempt reports whether a request is left out of the in-flight cap:
// probes and metrics must answer under load, a live stream is held open
// for hours under its own cap, and sign-ins have their own admission
// (signInGate), where a crowd of them waits without taking the slots of
// the syncs of devices already signed in.
func exempt(c *fiber.Ctx) bool {
	switch c.Path() {
	case "/healthz", "/readyz", "/metrics", "/v1/sync/stream", "/v1/auth/login":
		return true
	}
	return false
}

// admit is the middleware of the in-flight cap.
func (s *Server) admit(c *fiber.Ctx) error {
	g := s.guard
	if g.maxInFlight < 0 || exempt(c) {
		return c.Next()
	}
	if g.inFlight.Add(1) > g.maxInFlight {
		g.inFlight.Add(-1)
		g.rejected.WithLabelValues("in_flight").Inc()
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(overloadRetryAfter))
		return schema.Errorf(schema.CodeUnavailable, "the server is busy; try again in %d seconds", overloadRetryAfter)
	}
	defer g.inFlight.Add(-1)
	return c.Next()
}

// limitSync is the middleware of the sync rate limits; it runs after
// authenticate. A request takes a token from its device's bucket and its
// user's; when either is empty nothing is taken and the answer is 429.
func (s *Server) limitSync(c *fiber.Ctx) error {
	p := principal(c)
	g := s.guard
	dev := g.devices.reserve(p.UserID + "\x00" + p.DeviceID)
	usr := g.users.reserve(p.UserID)
	wait, reason := dev.wait, "device_rate"
	if usr.wait > wait {
		wait, reason = usr.wait, "user_rate"
	}
	if wait <= 0 {
		return c.Next()
	}
	dev.cancel()
	usr.cancel()
	g.rejected.WithLabelValues(reason).Inc()
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	who := "this device"
	if reason == "user_rate" {
		who = "this user's devices"
	}
	return schema.Errorf(schema.CodeRateLimited, "too many sync requests from %s; try again in %d seconds", who, secs)
}

// buckets are token buckets by key, all with one rate and burst. Buckets
// left alone long enough to be full again are dropped now and then, so
// that their number follows the callers active lately.
type buckets struct {
	limit rate.Limit
	burst int
	now   func() time.Time
	off   bool

	mu        gosync.Mutex
	byKey     map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newBuckets(perSecond float64, burst int, now func() time.Time) *buckets {
	return &buckets{limit: rate.Limit(perSecond), burst: burst, now: now, off: perSecond < 0,
		byKey: map[string]*bucket{}, lastSweep: now()}
}

// reservation is one token taken, or the wait until one would be.
type reservation struct {
	wait   time.Duration
	cancel func()
}

// reserve takes a token of key's bucket; when none is left, wait says how
// long until one is and cancel gives back what was reserved.
func (b *buckets) reserve(key string) reservation {
	if b.off {
		return reservation{cancel: func() {}}
	}
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sweep(now)
	bk, ok := b.byKey[key]
	if !ok {
		bk = &bucket{lim: rate.NewLimiter(b.limit, b.burst)}
		b.byKey[key] = bk
	}
	bk.last = now
	r := bk.lim.ReserveN(now, 1)
	return reservation{wait: r.DelayFrom(now), cancel: func() { r.CancelAt(now) }}
}

// sweep drops the buckets idle for as long as an empty one takes to fill;
// b.mu is held.
func (b *buckets) sweep(now time.Time) {
	if now.Sub(b.lastSweep) < bucketSweepEvery {
		return
	}
	b.lastSweep = now
	full := time.Duration(float64(b.burst) / float64(b.limit) * float64(time.Second))
	for k, bk := range b.byKey {
		if now.Sub(bk.last) > full {
			delete(b.byKey, k)
		}
	}
}

// size is how many buckets are held.
func (b *buckets) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.byKey)
}
