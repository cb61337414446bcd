package backup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// A backup of a store of FIELDSYNC_BENCH_RECORDS customers (default
// 100,000): its time, and the p99 latency of one-mutation pushes while it
// runs against the same pushes without it, in the same run.
//
//	go test -run '^$' -bench BackupUnderLoad -benchtime 1x ./cmd/fieldsync/backup/
func BenchmarkBackupUnderLoad(b *testing.B) {
	ctx := context.Background()
	records := 100_000
	if v, err := strconv.Atoi(os.Getenv("FIELDSYNC_BENCH_RECORDS")); err == nil && v > 0 {
		records = v
	}
	srv := servertest.Start(b, servertest.Options{})
	u, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(b, err)
	admin := u.Principal("bench", "l-bench")
	push := func(muts ...json.RawMessage) {
		resp, err := srv.Engine.Push(ctx, admin, &schema.PushRequest{Mutations: muts})
		require.NoError(b, err)
		for _, r := range resp.Results {
			require.Equal(b, schema.PushApplied, r.Status)
		}
	}
	push(mutation("t", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"}))
	for n := 0; n < records; n += 500 {
		batch := make([]json.RawMessage, 0, 500)
		for i := n; i < min(n+500, records); i++ {
			batch = append(batch, mutation(fmt.Sprintf("s-%d", i), schema.Customers, fmt.Sprintf("c-%d", i), 0,
				map[string]any{"code": fmt.Sprintf("C%07d", i), "name": fmt.Sprintf("Outlet %d", i), "territory_id": "t-1", "grade": "B",
					"address": "12 Main Street, Springfield", "lat": 52.52, "lng": 13.4, "credit_limit": 250000}))
		}
		push(batch...)
	}
	seq := 0
	// latencies pushes one new customer at a time until stop is closed.
	latencies := func(stop <-chan struct{}) []time.Duration {
		var out []time.Duration
		for {
			select {
			case <-stop:
				return out
			default:
			}
			seq++
			start := time.Now()
			push(mutation(fmt.Sprintf("l-%d", seq), schema.Customers, fmt.Sprintf("l-%d", seq), 0,
				map[string]any{"code": fmt.Sprintf("L%07d", seq), "name": "Late", "territory_id": "t-1", "grade": "C"}))
			out = append(out, time.Since(start))
		}
	}
	p99 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)*99/100]
	}
	var took time.Duration
	b.ResetTimer()
	for i := range b.N {
		stop := make(chan struct{})
		go func() { time.Sleep(5 * time.Second); close(stop) }()
		quiet := latencies(stop)

		stop = make(chan struct{})
		got := make(chan []time.Duration)
		go func() { got <- latencies(stop) }()
		start := time.Now()
		_, err := backup.Backup(ctx, srv.Store, srv.Dir, filepath.Join(b.TempDir(), fmt.Sprintf("b-%d.tgz", i)))
		took = time.Since(start)
		close(stop)
		busy := <-got
		require.NoError(b, err)
		b.ReportMetric(took.Seconds(), "backup-s")
		b.ReportMetric(float64(p99(quiet).Microseconds())/1000, "push-p99-quiet-ms")
		b.ReportMetric(float64(p99(busy).Microseconds())/1000, "push-p99-during-backup-ms")
		b.ReportMetric(float64(len(busy)), "pushes-during-backup")
	}
}
