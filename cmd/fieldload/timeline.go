package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	gosync "sync"
	"time"
)

// Window describes the sync requests (push and pull) sent in one slice of
// a run, to show how latency moves over time: during a crowd of devices
// coming online and after it.
type Window struct {
	FromS    float64 `json:"from_s"`
	Requests int     `json:"requests"`
	// Refused counts the answers that asked the device to come back later
	// (429 and 503), Errors the other failures.
	Refused int     `json:"refused"`
	Errors  int     `json:"errors"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
}

// FirstSyncs describes how long the devices took from their start to the
// end of their first successful sync (sign-in included).
type FirstSyncs struct {
	Done int `json:"done"`
	// GaveUp counts the devices without a first sync by the end of the run.
	GaveUp int     `json:"gave_up"`
	P50S   float64 `json:"p50_s"`
	P99S   float64 `json:"p99_s"`
	MaxS   float64 `json:"max_s"`
}

// timeline keeps the sync requests by the window they were sent in.
type timeline struct {
	start time.Time
	every time.Duration // 0 keeps nothing

	mu      gosync.Mutex
	lat     map[int][]time.Duration
	refused map[int]int
	errs    map[int]int
	firsts  []time.Duration
	log     io.Writer // nil keeps no line per request
}

func newTimeline(start time.Time, every time.Duration, log io.Writer) *timeline {
	return &timeline{start: start, every: every, lat: map[int][]time.Duration{}, refused: map[int]int{}, errs: map[int]int{}, log: log}
}

// add notes a request to endpoint sent d ago that got status (0 for none).
func (t *timeline) add(endpoint string, d time.Duration, status int) {
	if (t.every <= 0 && t.log == nil) || (endpoint != "push" && endpoint != "pull") {
		return
	}
	sent := time.Now().Add(-d)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.log != nil {
		fmt.Fprintf(t.log, "%d,%s,%.2f,%d\n", sent.UnixMilli(), endpoint, float64(d.Microseconds())/1000, status)
	}
	if t.every <= 0 {
		return
	}
	w := int(sent.Sub(t.start) / t.every)
	t.lat[w] = append(t.lat[w], d)
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		t.refused[w]++
	case status == 0 || status >= 400:
		t.errs[w]++
	}
}

// firstSync notes a device's first successful sync, took after its start.
func (t *timeline) firstSync(took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.firsts = append(t.firsts, took)
}

// windows returns the windows in order.
func (t *timeline) windows() []Window {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Window
	for w := 0; len(out) < len(t.lat); w++ {
		ds, ok := t.lat[w]
		if !ok {
			continue
		}
		ds = slices.Clone(ds)
		slices.Sort(ds)
		out = append(out, Window{FromS: (time.Duration(w) * t.every).Seconds(), Requests: len(ds), Refused: t.refused[w],
			Errors: t.errs[w], P50Ms: percentile(ds, 0.50), P99Ms: percentile(ds, 0.99)})
	}
	return out
}

// firstSyncs summarises the first syncs of devices devices.
func (t *timeline) firstSyncs(devices int) FirstSyncs {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := FirstSyncs{Done: len(t.firsts), GaveUp: devices - len(t.firsts)}
	if len(t.firsts) == 0 {
		return f
	}
	ds := slices.Clone(t.firsts)
	slices.Sort(ds)
	f.P50S = round(percentile(ds, 0.50) / 1000)
	f.P99S = round(percentile(ds, 0.99) / 1000)
	f.MaxS = round(ds[len(ds)-1].Seconds())
	return f
}

// writeTimeline writes the first syncs and the windows as a table.
func writeTimeline(w io.Writer, res *Result) {
	f := res.FirstSyncs
	fmt.Fprintf(w, "\nfirst syncs: %d done, %d gave up; time to first sync p50 %.2fs, p99 %.2fs, max %.2fs\n", f.Done, f.GaveUp, f.P50S, f.P99S, f.MaxS)
	if len(res.Windows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%8s %9s %8s %7s %9s %9s   (push and pull, by the time they were sent)\n", "FROM s", "REQUESTS", "REFUSED", "ERRORS", "P50 ms", "P99 ms")
	for _, x := range res.Windows {
		fmt.Fprintf(w, "%8.0f %9d %8d %7d %9.2f %9.2f\n", x.FromS, x.Requests, x.Refused, x.Errors, x.P50Ms, x.P99Ms)
	}
}
