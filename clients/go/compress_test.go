package fieldsync_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
)

// wireTransport counts the bytes that come down the wire and notes the
// Content-Encoding of every pull answer as it arrives, before the client
// decodes it. When accept is set, it replaces the client's Accept-Encoding.
type wireTransport struct {
	accept string
	down   atomic.Int64
	base   *http.Transport

	mu        gosync.Mutex
	encodings map[string]int // pull answers by Content-Encoding
}

func newWireTransport(accept string) *wireTransport {
	w := &wireTransport{accept: accept, encodings: map[string]int{}}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	w.base = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: conn, down: &w.down}, nil
	}}
	return w
}

func (w *wireTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if w.accept != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Accept-Encoding", w.accept)
	}
	resp, err := w.base.RoundTrip(req)
	if err == nil && req.URL.Path == "/v1/sync/pull" {
		w.mu.Lock()
		w.encodings[resp.Header.Get("Content-Encoding")]++
		w.mu.Unlock()
	}
	return resp, err
}

func (w *wireTransport) pulls() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.encodings
}

// countingConn adds the bytes read from a connection to down.
type countingConn struct {
	net.Conn
	down *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.down.Add(int64(n))
	return n, err
}

// seededServer is a server with one territory and its rep, rep1, who has
// customers, products and a route plan a day for days.
func seededServer(tb testing.TB, customers, products, days int) *testServer {
	tb.Helper()
	ts := startServer(tb)
	_, err := seed.Run(context.Background(), io.Discard, seed.Config{URL: ts.URL, Admin: adminName, Password: password(adminName),
		Territories: 1, RepsPerTerritory: 1, Customers: customers, Products: products, PriceLists: 1, Days: days, Seed: 1})
	require.NoError(tb, err)
	return ts
}

func TestClientPullsCompressed(t *testing.T) {
	ts := seededServer(t, 300, 100, 3)
	ctx := context.Background()

	tests := []struct {
		name   string
		accept string // "" keeps the client's own
		want   string // Content-Encoding of the pulls
	}{
		{"the client's own choice", "", "zstd"},
		{"a server path that offers gzip only", "gzip", "gzip"},
		{"no compression", "identity", ""},
	}
	pulled := map[string]int{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := newWireTransport(tt.accept)
			c := ts.open(t, "rep1", "phone-"+tt.want, func(cfg *fieldsync.Config) {
				cfg.HTTPClient = &http.Client{Transport: wire, Timeout: 30 * time.Second}
			})
			report, err := c.Sync(ctx)
			require.NoError(t, err)
			require.Greater(t, report.Pulled, 400)
			pulled[tt.name] = report.Pulled
			encodings := wire.pulls()
			require.NotEmpty(t, encodings)
			assert.Equal(t, map[string]int{tt.want: encodings[tt.want]}, encodings, "every pull answer in %q", tt.want)
		})
	}
	assert.Equal(t, pulled["no compression"], pulled["the client's own choice"], "the same records whatever the encoding")
	assert.Equal(t, pulled["no compression"], pulled["a server path that offers gzip only"], "the same records whatever the encoding")
}

// BenchmarkInitialSyncWire is the bytes that come down the wire during a
// rep's first sync on a new phone (3,000 customers, 30 route plans, 2,000
// products), plain, in gzip and in zstd, each beside the plain bytes
// measured in the same run:
//
//	go test -run '^$' -bench InitialSyncWire -benchtime 3x ./clients/go/
func BenchmarkInitialSyncWire(b *testing.B) {
	ts := seededServer(b, 3000, 2000, 30)
	ctx := context.Background()

	firstSync := func(b *testing.B, accept string) (down int64, pulled int) {
		wire := newWireTransport(accept)
		cfg := ts.config(b, "rep1", "phone-new")
		cfg.StorePath = filepath.Join(b.TempDir(), "phone.db")
		cfg.HTTPClient = &http.Client{Transport: wire, Timeout: time.Minute}
		c := openClient(b, cfg)
		report, err := c.Sync(ctx)
		require.NoError(b, err)
		require.NoError(b, c.Close())
		return wire.down.Load(), report.Pulled
	}
	plain, plainPulled := firstSync(b, "identity")
	if plainPulled < 5000 {
		b.Fatalf("pulled %d", plainPulled)
	}
	for _, accept := range []string{"identity", "gzip", "zstd"} {
		b.Run(accept, func(b *testing.B) {
			var down int64
			for range b.N {
				n, pulled := firstSync(b, accept)
				require.Equal(b, plainPulled, pulled)
				down += n
			}
			perSync := float64(down) / float64(b.N)
			b.ReportMetric(perSync, "wire-B/sync")
			b.ReportMetric(perSync/float64(plain), "x-identity")
		})
	}
}
