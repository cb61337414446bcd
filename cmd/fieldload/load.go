package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

// Config says how hard and how long to load a server.
type Config struct {
	// URL is the server's base address; it must be a loopback address
	// unless AllowRemote is set.
	URL string
	// AllowRemote lets URL name another machine.
	AllowRemote bool
	// Devices is how many devices run at once.
	Devices int
	// Duration is how long the devices keep working; the run then ends
	// after the syncs in flight finish.
	Duration time.Duration
	// Interval is the mean time between a device's visits (±25% jitter).
	// Unused when Cycle is set.
	Interval time.Duration
	// Cycle runs the devices back to back instead of at Interval: after
	// its first sync each device, in a loop, records one new small visit
	// (no order, no photo) and syncs (pushes it and pulls what changed),
	// as many times as it can until the deadline.
	Cycle bool
	// Wire, with Cycle, makes the devices speak the HTTP contract
	// themselves instead of through the Go SDK: no local store, one
	// sign-in per device, a push of the one new visit and a pull from the
	// device's checkpoint until nothing more, so that the load generator
	// spends little per cycle and the cycles measure the server.
	Wire bool
	// UserPrefix, Reps and PasswordSuffix name the users: device i signs
	// in as UserPrefix+(i mod Reps + 1) with password username+PasswordSuffix.
	UserPrefix     string
	Reps           int
	PasswordSuffix string
	// OrderChance and PhotoChance are the chances that a visit comes with
	// an order and with a shelf photo.
	OrderChance float64
	PhotoChance float64
	// Ramp spreads the devices' starts (sign-in and first sync) evenly
	// over this long, as phones come online over a morning, not in one
	// second; 0 starts them all at once.
	Ramp time.Duration
	// Warmup leaves requests sent in the first Warmup of the run out of
	// the figures, so that they describe the steady state.
	Warmup time.Duration
	// PID is the server's process id, to read its resident memory from
	// /proc; 0 reads the process_resident_memory_bytes gauge of /metrics.
	PID int
	// Windows, when positive, also reports the sync requests window by
	// window of this length, by the time they were sent (warm-up
	// included), to follow latency through a crowd of devices coming
	// online.
	Windows time.Duration
	// TempDir holds the devices' stores; default a new folder in the
	// system's, removed at the end.
	TempDir string
	// FirstDevice numbers the devices from it on (0 counts as 1), so that
	// several load processes can drive one server with devices of their
	// own.
	FirstDevice int
	// watch, when set, is told what the wire devices push and pull.
	watch *wireWatch
	// Requests, when set, receives one CSV line per push and pull: when it
	// was sent (Unix milliseconds), the endpoint, how long it took in
	// milliseconds and the answer's status (0 for none). Several load
	// processes driving one server write their own, to be merged into
	// windows that count every device.
	Requests io.Writer
}

// Result is what a run measured.
type Result struct {
	Devices   int     `json:"devices"`
	ElapsedS  float64 `json:"elapsed_s"`
	Visits    int     `json:"visits"`
	Orders    int     `json:"orders"`
	Photos    int     `json:"photos"`
	Syncs     int     `json:"syncs"`
	SyncFails int     `json:"sync_errors"`
	// Cycles counts, with Config.Cycle, the cycles (record a visit, push,
	// pull) that started after the warm-up and ended by the deadline;
	// CyclesPerSecond is Cycles over that time.
	Cycles          int     `json:"cycles,omitempty"`
	CyclesPerSecond float64 `json:"cycles_per_second,omitempty"`
	// Connections counts the connections the devices opened to the
	// server, the whole run.
	Connections int `json:"connections"`
	// Rejected and Conflicts count the push answers of those kinds.
	Rejected  int `json:"rejected"`
	Conflicts int `json:"conflicts"`
	// Endpoints holds the request statistics by endpoint: login, refresh,
	// push, pull, media.
	Endpoints map[string]EndpointStats `json:"endpoints"`
	// RSS is the server's resident memory over the run, when it could be read.
	RSS *RSSStats `json:"rss,omitempty"`
	// RSSError says why RSS is missing.
	RSSError string `json:"rss_error,omitempty"`
	// FirstSyncs says how many devices finished their first sync and how
	// long it took them.
	FirstSyncs FirstSyncs `json:"first_syncs"`
	// Windows holds the sync requests window by window (Config.Windows).
	Windows []Window `json:"windows,omitempty"`
	// FirstErrors lists the first few failures, to tell what went wrong.
	FirstErrors []string `json:"first_errors,omitempty"`
}

// EndpointStats describes the requests to one endpoint. Latency runs from
// sending the request to the end of reading the answer.
type EndpointStats struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// RSSStats is the server's resident memory at the start, at its peak
// (sampled every second) and at the end of a run.
type RSSStats struct {
	Source  string  `json:"source"`
	StartMB float64 `json:"start_mb"`
	PeakMB  float64 `json:"peak_mb"`
	EndMB   float64 `json:"end_mb"`
}

// Load runs cfg.Devices simulated devices against the server for
// cfg.Duration and returns what it measured.
func Load(ctx context.Context, cfg Config) (*Result, error) {
	const op = "fieldload.Load"
	if err := checkURL(cfg.URL, cfg.AllowRemote); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if cfg.Devices < 1 || cfg.Reps < 1 || cfg.Duration <= 0 || (cfg.Interval <= 0 && !cfg.Cycle) {
		return nil, fmt.Errorf("%s: devices, reps, duration and interval must be positive", op)
	}
	if cfg.Wire && !cfg.Cycle {
		return nil, fmt.Errorf("%s: the wire devices only cycle: give -wire with -cycle", op)
	}
	if cfg.Warmup >= cfg.Duration {
		return nil, fmt.Errorf("%s: a warm-up of %s leaves nothing of a %s run to measure: make -warmup shorter than -duration", op, cfg.Warmup, cfg.Duration)
	}
	if cfg.TempDir == "" && !cfg.Wire {
		dir, err := os.MkdirTemp("", "fieldload-")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		defer os.RemoveAll(dir)
		cfg.TempDir = dir
	}
	rec := &recorder{lat: map[string][]time.Duration{}, errs: map[string]int{}, from: time.Now().Add(cfg.Warmup),
		timeline: newTimeline(time.Now(), cfg.Windows, cfg.Requests)}
	// Each device keeps its connection between requests, as a phone's HTTP
	// stack does: Go's default keeps two idle connections to a host, so
	// devices sharing it would open and close one for most requests, work
	// the server does not do for real phones.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no limit but the per-host one
	tr.MaxIdleConnsPerHost = cfg.Devices
	var dials atomic.Int64
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return dial(ctx, network, addr)
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: time.Minute, Transport: &timing{next: tr, rec: rec}}
	mem := &rssSampler{cfg: cfg, hc: &http.Client{Timeout: 5 * time.Second}}
	mem.sample(ctx)

	res := &Result{Devices: cfg.Devices}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	stopSampling := make(chan struct{})
	var sampling gosync.WaitGroup
	sampling.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				mem.sample(ctx)
			}
		}
	})
	var devices gosync.WaitGroup
	var resMu gosync.Mutex
	for i := range cfg.Devices {
		d := &device{cfg: cfg, n: max(cfg.FirstDevice, 1) - 1 + i, runID: runID, hc: hc, res: res, mu: &resMu, from: rec.from, timeline: rec.timeline,
			rnd: mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
		delay := time.Duration(0)
		if cfg.Devices > 1 {
			delay = cfg.Ramp * time.Duration(i) / time.Duration(cfg.Devices)
		}
		devices.Go(func() {
			select {
			case <-time.After(delay):
				d.run(ctx, deadline)
			case <-ctx.Done():
			}
		})
	}
	devices.Wait()
	close(stopSampling)
	sampling.Wait()
	mem.sample(ctx)
	elapsed := time.Since(start)
	res.ElapsedS = elapsed.Seconds()
	res.Endpoints = rec.stats(max(elapsed-cfg.Warmup, time.Millisecond))
	if cfg.Cycle {
		res.CyclesPerSecond = round(float64(res.Cycles) / (cfg.Duration - cfg.Warmup).Seconds())
	}
	res.RSS, res.RSSError = mem.stats()
	res.FirstSyncs = rec.timeline.firstSyncs(cfg.Devices)
	res.Windows = rec.timeline.windows()
	res.Connections = int(dials.Load())
	return res, nil
}

// checkURL refuses a URL that is not a loopback address unless remote
// targets are allowed.
func checkURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("bad server URL %q", raw)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address; pass -allow-remote to load another machine", host)
}

// device is one simulated phone.
type device struct {
	cfg   Config
	n     int
	runID string
	hc    *http.Client
	rnd   *mrand.Rand
	res   *Result
	mu    *gosync.Mutex // guards res
	from  time.Time     // end of the warm-up

	timeline *timeline

	productIDs []string // the ids of the products catalog returned
}

// outlet is a customer the device may visit.
type outlet struct {
	id       string
	lat, lng float64
}

// fail notes an error of the device.
func (d *device) fail(what string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.res.SyncFails++
	if len(d.res.FirstErrors) < 10 {
		d.res.FirstErrors = append(d.res.FirstErrors, fmt.Sprintf("%s (device %d): %s: %v", d.username(), d.n+1, what, err))
	}
}

// username is the rep the device signs in as.
func (d *device) username() string { return fmt.Sprintf("%s%d", d.cfg.UserPrefix, d.n%d.cfg.Reps+1) }

// deviceID is the device id the device signs in with.
func (d *device) deviceID() string { return fmt.Sprintf("fieldload-%d", d.n+1) }

// run signs in, pulls, then records a visit about every interval and
// syncs, until the deadline.
func (d *device) run(ctx context.Context, deadline time.Time) {
	if d.cfg.Wire {
		d.runWire(ctx, deadline)
		return
	}
	username := d.username()
	c, err := fieldsync.Open(ctx, fieldsync.Config{
		BaseURL: d.cfg.URL, Username: username, Password: username + d.cfg.PasswordSuffix,
		DeviceID:   d.deviceID(),
		StorePath:  filepath.Join(d.cfg.TempDir, fmt.Sprintf("device-%d", d.n+1), "fieldsync.db"),
		HTTPClient: d.hc,
		// A refused request waits what the server's Retry-After asks: a
		// crowd of sign-ins is told when its turn comes, up to five
		// minutes ahead (the client's default MaxRetryAfter).
		Retry: fieldsync.RetryPolicy{MaxAttempts: 3, BaseDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Minute},
	})
	if err != nil {
		d.fail("open", err)
		return
	}
	defer c.Close()
	// The first sync is tried until it works, as an app does, after a
	// pause of one to three seconds.
	if !d.firstSync(ctx, deadline, func() bool { return d.sync(ctx, c) }) {
		return
	}
	outlets, products, err := d.catalog(ctx, c)
	if err != nil || len(outlets) == 0 {
		d.fail("first pull", fmt.Errorf("no customers to visit (%v)", err))
		return
	}
	if d.cfg.Cycle {
		d.cycle(ctx, deadline, func(n int) (bool, error) {
			if err := d.visit(ctx, c, n, outlets, nil); err != nil {
				return false, err
			}
			return d.sync(ctx, c), nil
		})
		return
	}
	wait := time.Duration(d.rnd.Int64N(int64(d.cfg.Interval))) // spread the devices
	for visit := 1; ; visit++ {
		if time.Until(deadline) < wait {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if err := d.visit(ctx, c, visit, outlets, products); err != nil {
			d.fail("record visit", err)
		}
		d.sync(ctx, c)
		wait = time.Duration(float64(d.cfg.Interval) * (0.75 + 0.5*d.rnd.Float64()))
	}
}

// firstSync tries sync until it works, as an app does, after a pause of
// one to three seconds each time, and notes how long it took; it reports
// false when the run ends first.
func (d *device) firstSync(ctx context.Context, deadline time.Time, sync func() bool) bool {
	started := time.Now()
	for !sync() {
		pause := time.Second + time.Duration(d.rnd.Int64N(int64(2*time.Second)))
		if time.Until(deadline) < pause {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
	}
	d.timeline.firstSync(time.Since(started))
	return true
}

// cycle runs cycle n = 1, 2, … (record a small visit, push it, pull what
// changed) again and again until the deadline, and counts the cycles that
// fall between the warm-up and the deadline. once reports whether its sync
// worked; an error of its own (the visit could not be recorded) ends the
// device's work.
func (d *device) cycle(ctx context.Context, deadline time.Time, once func(n int) (synced bool, err error)) {
	for n := 1; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
		start := time.Now()
		ok, err := once(n)
		if err != nil {
			d.fail("record visit", err)
			return
		}
		if end := time.Now(); ok && !start.Before(d.from) && !end.After(deadline) {
			d.mu.Lock()
			d.res.Cycles++
			d.mu.Unlock()
		}
	}
}

// sync syncs and counts the outcome; it reports whether the sync worked.
// A sync in flight at the deadline is let finish.
func (d *device) sync(ctx context.Context, c *fieldsync.Client) bool {
	rep, err := c.Sync(context.WithoutCancel(ctx))
	return d.tally(rep.Rejected, rep.Conflicts, err)
}

// tally counts a sync with its rejected and conflicting mutations and its
// error; it reports whether the sync worked.
func (d *device) tally(rejected, conflicts int, err error) bool {
	d.mu.Lock()
	d.res.Syncs++
	d.res.Rejected += rejected
	d.res.Conflicts += conflicts
	d.mu.Unlock()
	if err != nil {
		d.fail("sync", err)
		return false
	}
	return true
}

// catalog returns the customers the device may visit and the products it
// may order.
func (d *device) catalog(ctx context.Context, c *fieldsync.Client) ([]outlet, []schema.Product, error) {
	custs, err := c.List(ctx, schema.Customers)
	if err != nil {
		return nil, nil, err
	}
	var outlets []outlet
	for _, r := range custs {
		var cu schema.Customer
		if r.Decode(&cu) == nil && cu.Lat != nil && cu.Lng != nil {
			outlets = append(outlets, outlet{r.ID, *cu.Lat, *cu.Lng})
		}
	}
	prods, err := c.List(ctx, schema.Products)
	if err != nil {
		return nil, nil, err
	}
	var products []schema.Product
	var productIDs []string
	for _, r := range prods {
		var p schema.Product
		if r.Decode(&p) == nil && p.Active {
			products = append(products, p)
			productIDs = append(productIDs, r.ID)
		}
	}
	d.productIDs = productIDs
	return outlets, products, nil
}

// visit records a finished visit at one of the outlets, sometimes with an
// order and a photo.
func (d *device) visit(ctx context.Context, c *fieldsync.Client, n int, outlets []outlet, products []schema.Product) error {
	visitID, v, in := d.newVisit(n, outlets)
	if err := c.Put(ctx, schema.Visits, visitID, v); err != nil {
		return err
	}
	counts := [3]int{1, 0, 0}
	if len(products) > 0 && !d.cfg.Cycle && d.rnd.Float64() < d.cfg.OrderChance {
		order := schema.Order{CustomerID: v.CustomerID, VisitID: visitID, Status: schema.OrderSubmitted}
		for _, i := range d.rnd.Perm(len(products))[:min(len(products), 1+d.rnd.IntN(2))] {
			order.Lines = append(order.Lines, schema.OrderLine{ProductID: d.productIDs[i], Quantity: int64(1 + d.rnd.IntN(3)), UnitPrice: products[i].Price})
		}
		if err := c.Put(ctx, schema.Orders, "o-"+visitID[2:], order); err != nil {
			return err
		}
		counts[1] = 1
	}
	if !d.cfg.Cycle && d.rnd.Float64() < d.cfg.PhotoChance {
		if err := c.AddPhoto(ctx, "ph-"+visitID[2:], visitID, fakeJPEG(20_000+d.rnd.IntN(30_000)), fieldsync.PhotoInfo{TakenAt: in.Add(time.Minute)}); err != nil {
			return err
		}
		counts[2] = 1
	}
	d.mu.Lock()
	d.res.Visits += counts[0]
	d.res.Orders += counts[1]
	d.res.Photos += counts[2]
	d.mu.Unlock()
	return nil
}

// newVisit makes the device's n-th visit, a finished one at one of the
// outlets, checked in 10 to 30 minutes ago; it returns the visit's id, the
// visit and its check-in time.
func (d *device) newVisit(n int, outlets []outlet) (string, schema.Visit, time.Time) {
	o := outlets[d.rnd.IntN(len(outlets))]
	in := time.Now().UTC().Truncate(time.Second).Add(-time.Duration(10+d.rnd.IntN(20)) * time.Minute)
	lat, lng := o.lat+(d.rnd.Float64()-0.5)*0.0004, o.lng+(d.rnd.Float64()-0.5)*0.0004
	v := schema.Visit{CustomerID: o.id, Notes: "load test visit", Outcome: "ok",
		CheckIn:  schema.GeoPoint{At: in, Lat: &lat, Lng: &lng, Accuracy: 8},
		CheckOut: &schema.GeoPoint{At: in.Add(time.Duration(5+d.rnd.IntN(5)) * time.Minute), Lat: &lat, Lng: &lng, Accuracy: 8}}
	return fmt.Sprintf("v-%s-%d-%d", d.runID, d.n+1, n), v, in
}

// fakeJPEG returns n random bytes that start like a JPEG.
func fakeJPEG(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}

// recorder collects request latencies and failures by endpoint.
type recorder struct {
	mu   gosync.Mutex
	lat  map[string][]time.Duration
	errs map[string]int
	from time.Time // requests sent before are not counted

	timeline *timeline
}

func (r *recorder) add(endpoint string, d time.Duration, failed bool) {
	if time.Now().Add(-d).Before(r.from) {
		return // sent during the warm-up
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lat[endpoint] = append(r.lat[endpoint], d)
	if failed {
		r.errs[endpoint]++
	}
}

// stats summarises the requests of each endpoint over elapsed.
func (r *recorder) stats(elapsed time.Duration) map[string]EndpointStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]EndpointStats{}
	for ep, ds := range r.lat {
		ds = slices.Clone(ds)
		slices.Sort(ds)
		out[ep] = EndpointStats{Requests: len(ds), Errors: r.errs[ep], PerSecond: round(float64(len(ds)) / elapsed.Seconds()),
			P50Ms: percentile(ds, 0.50), P95Ms: percentile(ds, 0.95), P99Ms: percentile(ds, 0.99), MaxMs: ms(ds[len(ds)-1])}
	}
	return out
}

// percentile returns the nearest-rank percentile of sorted durations, in
// milliseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return ms(sorted[max(i, 0)])
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

func round(v float64) float64 { return math.Round(v*100) / 100 }

// endpointOf names the endpoint of a request path.
func endpointOf(path string) string {
	switch {
	case path == "/v1/auth/login":
		return "login"
	case path == "/v1/auth/refresh":
		return "refresh"
	case path == "/v1/sync/push":
		return "push"
	case path == "/v1/sync/pull":
		return "pull"
	case strings.HasPrefix(path, "/v1/media/"):
		return "media"
	}
	return "other"
}

// timing is a RoundTripper that times each request, to the end of its
// answer's body, and counts failures: network errors and 4xx or 5xx
// answers, except the 404 of a HEAD that asks whether a photo is stored.
type timing struct {
	next http.RoundTripper
	rec  *recorder
}

// RoundTrip sends the request through the next RoundTripper and times it.
func (t *timing) RoundTrip(req *http.Request) (*http.Response, error) {
	ep := endpointOf(req.URL.Path)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		t.rec.add(ep, time.Since(start), true)
		t.rec.timeline.add(ep, time.Since(start), 0)
		return nil, err
	}
	failed := resp.StatusCode >= 400 && !(req.Method == http.MethodHead && resp.StatusCode == http.StatusNotFound)
	resp.Body = &timedBody{ReadCloser: resp.Body, done: func() {
		d := time.Since(start)
		t.rec.add(ep, d, failed)
		t.rec.timeline.add(ep, d, resp.StatusCode)
	}}
	return resp, nil
}

// timedBody calls done once, when the body is closed.
type timedBody struct {
	io.ReadCloser
	once gosync.Once
	done func()
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// rssSampler reads the server's resident memory.
type rssSampler struct {
	cfg                Config
	hc                 *http.Client
	mu                 gosync.Mutex
	n                  int
	start, peak, last  float64
	source, firstError string
}

// sample reads the resident memory once and keeps it.
func (s *rssSampler) sample(ctx context.Context) {
	source := "process_resident_memory_bytes of /metrics"
	read := func() (float64, error) { return s.metricsRSS(ctx) }
	if s.cfg.PID > 0 {
		source = fmt.Sprintf("VmRSS of pid %d", s.cfg.PID)
		read = func() (float64, error) { return procRSS(s.cfg.PID) }
	}
	v, err := read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.firstError == "" {
			s.firstError = err.Error()
		}
		return
	}
	if s.n == 0 {
		s.start = v
	}
	s.n++
	s.peak = max(s.peak, v)
	s.last, s.source = v, source
}

// stats returns what was sampled, or nil and the first error when nothing
// could be read.
func (s *rssSampler) stats() (*RSSStats, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return nil, s.firstError
	}
	const mb = 1 << 20
	return &RSSStats{Source: s.source, StartMB: round(s.start / mb), PeakMB: round(s.peak / mb), EndMB: round(s.last / mb)}, ""
}

// procRSS reads VmRSS from /proc/<pid>/status, in bytes.
func procRSS(pid int) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// metricsRSS reads the process_resident_memory_bytes gauge of the
// server's Prometheus metrics, in bytes.
func (s *rssSampler) metricsRSS(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", strings.TrimRight(s.cfg.URL, "/")+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %d", resp.StatusCode)
	}
	return parseGauge(resp.Body, "process_resident_memory_bytes")
}

// parseGauge finds an unlabelled sample in the Prometheus text format.
func parseGauge(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == name {
			return strconv.ParseFloat(fields[1], 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// writeTable writes a result as a table.
func writeTable(w io.Writer, cfg Config, res *Result) {
	pace := "a visit every ~" + cfg.Interval.String()
	if cfg.Cycle {
		pace = "visits back to back"
	}
	fmt.Fprintf(w, "fieldload: %d devices for %.1fs, %s: %d visits, %d orders, %d photos; %d syncs, %d failed; %d rejected, %d conflicts\n\n",
		res.Devices, res.ElapsedS, pace, res.Visits, res.Orders, res.Photos, res.Syncs, res.SyncFails, res.Rejected, res.Conflicts)
	if cfg.Cycle {
		fmt.Fprintf(w, "cycles (visit, push, pull) after the warm-up: %d, %.2f per second\n\n", res.Cycles, res.CyclesPerSecond)
	}
	fmt.Fprintf(w, "%-8s %9s %7s %9s %9s %9s %9s %9s\n", "ENDPOINT", "REQUESTS", "ERRORS", "REQ/S", "P50 ms", "P95 ms", "P99 ms", "MAX ms")
	for _, ep := range []string{"login", "refresh", "push", "pull", "media", "other"} {
		if s, ok := res.Endpoints[ep]; ok {
			fmt.Fprintf(w, "%-8s %9d %7d %9.2f %9.2f %9.2f %9.2f %9.2f\n", ep, s.Requests, s.Errors, s.PerSecond, s.P50Ms, s.P95Ms, s.P99Ms, s.MaxMs)
		}
	}
	fmt.Fprintf(w, "\nconnections opened: %d\n", res.Connections)
	if res.RSS != nil {
		fmt.Fprintf(w, "\nserver RSS (%s): start %.1f MB, peak %.1f MB, end %.1f MB\n", res.RSS.Source, res.RSS.StartMB, res.RSS.PeakMB, res.RSS.EndMB)
	} else {
		fmt.Fprintf(w, "\nserver RSS: not available (%s)\n", res.RSSError)
	}
	writeTimeline(w, res)
	for _, e := range res.FirstErrors {
		fmt.Fprintln(w, "error:", e)
	}
}

// writeJSON writes a result as indented JSON to path, making its folder
// when missing.
func writeJSON(path string, res *Result) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
