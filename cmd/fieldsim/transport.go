package main

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	gosync "sync"
	"time"
)

// Fault kinds the transport injects.
const (
	FaultDrop      = "drop"      // the connection fails before anything is sent
	FaultLost      = "lost"      // the server handles the request; its answer is lost
	FaultTimeout   = "timeout"   // the server handles the request; the answer comes too late
	FaultDuplicate = "duplicate" // the request reaches the server twice
)

// faultKinds lists every fault kind, in the order the summary prints them.
var faultKinds = []string{FaultDrop, FaultLost, FaultTimeout, FaultDuplicate}

// faultyTransport is an http.RoundTripper that breaks requests on their
// way, chosen by a seeded random source. Faults happen only here: the
// server is never touched.
type faultyTransport struct {
	base http.RoundTripper

	mu      gosync.Mutex
	rng     *rand.Rand
	rate    float64 // probability that a request gets a fault
	enabled bool
	stats   map[string]int
}

// newFaultyTransport returns a transport injecting faults at rate, drawn
// from a random source seeded with seed.
func newFaultyTransport(base http.RoundTripper, seed uint64, rate float64, stats map[string]int) *faultyTransport {
	return &faultyTransport{base: base, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), rate: rate, enabled: rate > 0, stats: stats}
}

// setEnabled turns fault injection on or off.
func (f *faultyTransport) setEnabled(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enabled = on && f.rate > 0
}

// pick decides the fate of one request: "" for none, else a fault kind.
func (f *faultyTransport) pick() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.enabled || f.rng.Float64() >= f.rate {
		return ""
	}
	kind := faultKinds[f.rng.IntN(len(faultKinds))]
	f.stats[kind]++
	return kind
}

// timeoutError is what an http.Client reports when an answer came too late.
type timeoutError struct{}

func (timeoutError) Error() string   { return "injected timeout: answer not received in time" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// RoundTrip sends req, possibly breaking it.
func (f *faultyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := f.pick()
	switch kind {
	case FaultDrop:
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errors.New("injected: connection refused before sending")
	case FaultLost, FaultTimeout:
		resp, err := f.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if kind == FaultTimeout {
			time.Sleep(5 * time.Millisecond)
			return nil, timeoutError{}
		}
		return nil, errors.New("injected: connection reset after the server answered")
	case FaultDuplicate:
		var body []byte
		if req.Body != nil {
			var err error
			body, err = io.ReadAll(req.Body)
			req.Body.Close()
			if err != nil {
				return nil, err
			}
		}
		first := req.Clone(req.Context())
		first.Body = io.NopCloser(bytes.NewReader(body))
		if resp, err := f.base.RoundTrip(first); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		second := req.Clone(req.Context())
		second.Body = io.NopCloser(bytes.NewReader(body))
		return f.base.RoundTrip(second)
	}
	return f.base.RoundTrip(req)
}
