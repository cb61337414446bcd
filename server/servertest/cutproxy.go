package servertest

import (
	"io"
	"math/rand/v2"
	"net"
	gosync "sync"
	"sync/atomic"
	"testing"
)

// CutProxy is a TCP proxy to a server that drops its connections as a
// poor mobile link does: whenever Every more bytes have gone up from the
// clients (counted over all connections), the connection carrying them is
// cut. It counts every byte sent up, so that a test can tell what a
// client's retries cost.
type CutProxy struct {
	// Addr is the proxy's "127.0.0.1:port"; URL is "http://" + Addr.
	Addr string
	URL  string

	every  int64 // bytes between cuts (0: none), under mu
	target string
	ln     net.Listener
	up     atomic.Int64 // bytes passed up, over all connections
	cuts   atomic.Int64
	mu     gosync.Mutex // serialises the count towards the next cut
	next   int64
	rng    *rand.Rand // random gaps between cuts when not nil
	wg     gosync.WaitGroup
	open   map[net.Conn]struct{} // connections being served, under mu
	closed bool                  // the test is over, under mu
}

// StartCutProxy proxies to target ("host:port"), cutting every bytes sent
// up (0: never); it stops when tb ends.
func StartCutProxy(tb testing.TB, target string, every int64) *CutProxy {
	tb.Helper()
	return startCutProxy(tb, target, every, nil)
}

// StartRandomCutProxy is StartCutProxy with random gaps between cuts,
// exponentially distributed with mean bytes (a link that drops at any
// moment), drawn from seed so that runs can be compared.
func StartRandomCutProxy(tb testing.TB, target string, mean int64, seed uint64) *CutProxy {
	tb.Helper()
	return startCutProxy(tb, target, mean, rand.New(rand.NewPCG(seed, seed)))
}

func startCutProxy(tb testing.TB, target string, every int64, rng *rand.Rand) *CutProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("servertest.StartCutProxy: %v", err)
	}
	p := &CutProxy{Addr: ln.Addr().String(), URL: "http://" + ln.Addr().String(), every: every, target: target, ln: ln, rng: rng,
		open: map[net.Conn]struct{}{}}
	p.next = p.gap()
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(func() {
		ln.Close()
		// Idle keep-alive connections of the clients would hold the
		// proxy open until the server's idle timeout.
		p.mu.Lock()
		p.closed = true
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Sent is how many bytes clients have sent up through the proxy.
func (p *CutProxy) Sent() int64 { return p.up.Load() }

// Heal stops the cuts: the link holds from now on.
func (p *CutProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.every = 0
}

// Cuts is how many connections the proxy has cut.
func (p *CutProxy) Cuts() int64 { return p.cuts.Load() }

func (p *CutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *CutProxy) serve(client net.Conn) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		client.Close()
		return
	}
	p.open[client] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.open, client)
		p.mu.Unlock()
		client.Close()
	}()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	go func() {
		io.Copy(client, server)
		client.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			allowed, cut := p.take(int64(n))
			if allowed > 0 {
				if _, werr := server.Write(buf[:allowed]); werr != nil {
					return
				}
			}
			if cut {
				p.cuts.Add(1)
				if tc, ok := client.(*net.TCPConn); ok {
					tc.SetLinger(0) // a reset, as a dropped link looks to the client
				}
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// take counts n bytes going up and says how many of them pass before the
// next cut, and whether the cut comes now.
func (p *CutProxy) take(n int64) (allowed int64, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	sent := p.up.Load()
	if p.every <= 0 || sent+n < p.next {
		p.up.Add(n)
		return n, false
	}
	allowed = p.next - sent
	p.up.Add(allowed)
	p.next += p.gap()
	return allowed, true
}

// gap is the number of bytes until the next cut.
func (p *CutProxy) gap() int64 {
	if p.rng == nil {
		return p.every
	}
	return max(1, int64(p.rng.ExpFloat64()*float64(p.every)))
}
