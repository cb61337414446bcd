package fieldsync_test

import (
	"context"
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// BenchmarkInitialSync is a rep's first sync on a new phone: 3,000
// customers, 30 route plans and 2,000 products, pulled through the client
// SDK from a server in the same process, beside the raw store reading the
// same records through the same feed. The heap figure is the whole
// process's peak above its start, server and client together, so an upper
// bound on the server's:
//
//	go test -run '^$' -bench InitialSync -benchtime 3x ./clients/go/
func BenchmarkInitialSync(b *testing.B) {
	ts := startServer(b)
	store := ts.Store
	ctx := context.Background()
	start := time.Now()
	_, err := seed.Run(ctx, io.Discard, seed.Config{URL: ts.URL, Admin: adminName, Password: password(adminName),
		Territories: 1, RepsPerTerritory: 1, Customers: 3000, Products: 2000, PriceLists: 1, Days: 30, Seed: 1})
	require.NoError(b, err)
	b.Logf("seeded in %s", time.Since(start).Round(time.Millisecond))

	b.Run("sdk", func(b *testing.B) {
		var peak uint64
		for range b.N {
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			stop := sampleHeap(&peak, before.HeapInuse)
			cfg := ts.config(b, "rep1", "phone-new")
			cfg.StorePath = filepath.Join(b.TempDir(), "phone.db")
			c := openClient(b, cfg)
			report, err := c.Sync(ctx)
			stop()
			require.NoError(b, err)
			if report.Pulled < 5000 {
				b.Fatalf("pulled %d", report.Pulled)
			}
			require.NoError(b, c.Close())
		}
		b.ReportMetric(float64(peak)/(1<<20), "MiB-heap-peak")
	})
	b.Run("store", func(b *testing.B) {
		u, err := store.UserByName(ctx, "rep1")
		require.NoError(b, err)
		tokens := schema.ReadTokens(u.Principal("", ""))
		for range b.N {
			got := 0
			wm, err := store.Watermark(ctx)
			require.NoError(b, err)
			for after := int64(0); ; {
				chs, err := store.Changes(ctx, tokens, after, wm, sync.MaxPullLimit, 0)
				require.NoError(b, err)
				got += len(chs)
				if len(chs) < sync.MaxPullLimit {
					break
				}
				after = chs[len(chs)-1].Seq
			}
			if got < 5000 {
				b.Fatalf("read %d", got)
			}
		}
	})
}

// sampleHeap records the largest heap in use above base until stopped.
func sampleHeap(peak *uint64, base uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > base && m.HeapInuse-base > *peak {
				*peak = m.HeapInuse - base
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-finished }
}
