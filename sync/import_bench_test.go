package sync_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"runtime"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Importing customers from CSV against pushing the same customers through
// the engine in batches of 500, in the same run, at two sizes: the peak
// heap (sampled every 5 ms) of an import must not grow with the file.
//
//	go test -run '^$' -bench ImportCustomers -benchtime 1x ./sync/
func BenchmarkImportCustomers(b *testing.B) {
	ctx := context.Background()
	for _, rows := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("import/rows=%d", rows), func(b *testing.B) {
			eng, _, admin := benchEngine(b)
			var res *sync.ImportResult
			peak := measurePeak(b, func() {
				for range b.N {
					var err error
					res, err = eng.Import(ctx, admin, schema.Customers, customersCSV(rows), sync.ImportOptions{TempDir: b.TempDir()})
					require.NoError(b, err)
				}
			})
			require.Empty(b, res.Errors)
			require.Equal(b, rows, res.Created+res.Unchanged)
			b.ReportMetric(peak, "peak-heap-MB")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run(fmt.Sprintf("push500/rows=%d", rows), func(b *testing.B) {
			eng, _, admin := benchEngine(b)
			peak := measurePeak(b, func() {
				for range b.N {
					for n := range rows / benchBatch {
						resp, err := eng.Push(ctx, admin, &schema.PushRequest{Mutations: pushBatch(n)})
						require.NoError(b, err)
						require.Len(b, resp.Results, benchBatch)
					}
				}
			})
			b.ReportMetric(peak, "peak-heap-MB")
			b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// customersCSV streams a CSV of n customers, written as it is read, so
// that the file itself is never in memory.
func customersCSV(n int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := csv.NewWriter(pw)
		w.Write([]string{"code", "name", "address", "territory_id", "grade", "lat", "lng", "credit_limit", "payment_terms_days",
			"contacts.0.name", "contacts.0.role", "contacts.0.phone", "tags"})
		for i := range n {
			c := benchCustomer(i)
			w.Write([]string{c["code"].(string), c["name"].(string), c["address"].(string), "t-1", "B",
				strconv.FormatFloat(c["lat"].(float64), 'f', -1, 64), "13.4", "250000", "30", "Ana Owner", "owner", "+49 30 1234567",
				`["kiosk","north"]`})
		}
		w.Flush()
		pw.CloseWithError(w.Error())
	}()
	return pr
}

// measurePeak runs f and returns the largest heap in use seen meanwhile,
// in MB, sampled every 5 ms after a collection before f starts.
func measurePeak(b *testing.B, f func()) float64 {
	b.Helper()
	runtime.GC()
	var peak uint64
	done := make(chan struct{})
	var wg gosync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	b.ResetTimer()
	f()
	b.StopTimer()
	close(done)
	wg.Wait()
	return float64(peak) / (1 << 20)
}
