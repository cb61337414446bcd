package backup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// benchSeedShape names what seedCustomers writes. Change it whenever the
// seed changes, so that no cached store of the old seed is used.
const benchSeedShape = "v1"

// A backup of a store of FIELDSYNC_BENCH_RECORDS customers (default
// 100,000) by each method: its time, and the p99 latency of one-mutation
// pushes while it runs against the same pushes without it, in the same
// run. Each iteration backs up by both methods, in turns (page copy
// first on even iterations, VACUUM INTO first on odd ones), each after
// 5 s of pushes without a backup; the p99s pool every iteration, the
// times and the ratios (each backup's p99 over that of the 5 s before
// it) are medians. Each backup's figures go to stderr.
//
//	go test -run '^$' -bench BackupUnderLoad -benchtime 2x ./cmd/fieldsync/backup/
//
// The seeded store is kept in FIELDSYNC_BENCH_CACHE (default
// ~/.cache/fieldsync/backup; "off" to seed every time) and copied for
// each run: see seededStore.
func BenchmarkBackupUnderLoad(b *testing.B) {
	ctx := context.Background()
	records := 100_000
	if v, err := strconv.Atoi(os.Getenv("FIELDSYNC_BENCH_RECORDS")); err == nil && v > 0 {
		records = v
	}
	dir := filepath.Join(b.TempDir(), "data")
	seededStore(b, dir, records)
	srv, stop, err := servertest.Run(dir, servertest.Options{})
	require.NoError(b, err)
	b.Cleanup(func() { require.NoError(b, stop()) })
	u, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(b, err)
	admin := u.Principal("bench", "l-bench")
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
			resp, err := srv.Engine.Push(ctx, admin, &schema.PushRequest{Mutations: []json.RawMessage{
				mutation(fmt.Sprintf("l-%d", seq), schema.Customers, fmt.Sprintf("l-%d", seq), 0,
					map[string]any{"code": fmt.Sprintf("L%07d", seq), "name": "Late", "territory_id": "t-1", "grade": "C"})}})
			require.NoError(b, err)
			require.Equal(b, schema.PushApplied, resp.Results[0].Status)
			out = append(out, time.Since(start))
		}
	}
	p99 := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)*99/100]
	}
	methods := []backup.Method{backup.PageCopy, backup.VacuumInto}
	var quiet []time.Duration
	busy := map[backup.Method][]time.Duration{}
	took := map[backup.Method][]time.Duration{}
	// ratios are each backup's push p99 over that of the 5 s just before it.
	ratios := map[backup.Method][]float64{}
	b.ResetTimer()
	for i := range b.N {
		order := slices.Clone(methods)
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, method := range order {
			stop := make(chan struct{})
			go func() { time.Sleep(5 * time.Second); close(stop) }()
			c0 := cpuTime(b)
			q := latencies(stop)
			perPush := (cpuTime(b) - c0) / time.Duration(len(q))
			quiet = append(quiet, q...)

			stop = make(chan struct{})
			got := make(chan []time.Duration)
			go func() { got <- latencies(stop) }()
			out := filepath.Join(b.TempDir(), fmt.Sprintf("b-%d-%s.tgz", i, method))
			c0 = cpuTime(b)
			start := time.Now()
			m, err := backup.BackupWith(ctx, method, srv.Store, srv.Dir, out)
			t := time.Since(start)
			close(stop)
			during := <-got
			// The process's CPU less what its pushes cost before the backup.
			backupCPU := cpuTime(b) - c0 - time.Duration(len(during))*perPush
			require.NoError(b, err)
			st, err := os.Stat(out)
			require.NoError(b, err)
			require.NoError(b, os.Remove(out))
			ratio := float64(p99(during)) / float64(p99(q))
			// On stderr: the testing package keeps only ten lines of a
			// benchmark's log.
			fmt.Fprintf(os.Stderr, "round %d/%d %s: %.1f s (about %.1f CPU-s), archive %.1f MB, seq %d; push p99 %.1f ms before it (%d pushes), %.1f ms during it (%d pushes): %.2fx\n",
				i+1, b.N, method, t.Seconds(), backupCPU.Seconds(), float64(st.Size())/1e6, m.Watermark,
				ms(p99(q)), len(q), ms(p99(during)), len(during), ratio)
			busy[method] = append(busy[method], during...)
			took[method] = append(took[method], t)
			ratios[method] = append(ratios[method], ratio)
		}
	}
	b.StopTimer()
	b.ReportMetric(ms(p99(quiet)), "push-p99-quiet-ms")
	for _, method := range methods {
		slices.Sort(took[method])
		b.ReportMetric(took[method][len(took[method])/2].Seconds(), "backup-s-"+string(method))
		b.ReportMetric(ms(p99(busy[method])), "push-p99-during-"+string(method)+"-ms")
		slices.Sort(ratios[method])
		b.ReportMetric(ratios[method][len(ratios[method])/2], "push-p99-ratio-"+string(method))
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTime is the CPU time the process has used.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// seededStore puts in dir a store of records customers, seeded through a
// real server's engine: one territory, then the customers in pushes of
// 500. The seed is kept in the seed cache (FIELDSYNC_BENCH_CACHE, default
// ~/.cache/fieldsync/backup; "off" to seed every time), keyed by its
// shape, the store's layout version and records, and copied from there;
// a seed cut short is started over.
func seededStore(b *testing.B, dir string, records int) {
	b.Helper()
	cache := os.Getenv("FIELDSYNC_BENCH_CACHE")
	switch cache {
	case "off":
		seedCustomers(b, dir, records)
		return
	case "":
		base, err := os.UserCacheDir()
		require.NoError(b, err)
		cache = filepath.Join(base, "fieldsync", "backup")
	}
	cached := filepath.Join(cache, fmt.Sprintf("%s-layout%d-c%d", benchSeedShape, sqlitestore.Layout(), records))
	if _, err := os.Stat(filepath.Join(cached, backup.DatabaseName)); err != nil {
		work := cached + ".seeding"
		require.NoError(b, os.RemoveAll(work))
		start := time.Now()
		seedCustomers(b, work, records)
		require.NoError(b, os.Rename(work, cached))
		b.Logf("seeded %d customers into %s in %s", records, cached, time.Since(start).Round(time.Second))
	} else {
		b.Logf("using the seeded store in %s", cached)
	}
	start := time.Now()
	require.NoError(b, os.MkdirAll(dir, 0o700))
	in, err := os.Open(filepath.Join(cached, backup.DatabaseName))
	require.NoError(b, err)
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(dir, backup.DatabaseName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	require.NoError(b, err)
	_, err = io.Copy(out, in)
	require.NoError(b, errors.Join(err, out.Close()))
	b.Logf("copied the seeded store in %s", time.Since(start).Round(time.Second))
}

// seedCustomers writes a store of records customers in dir through a
// real server's engine, two pushers at a time (the engine's group commit
// shares their write transactions), and closes it.
func seedCustomers(b *testing.B, dir string, records int) {
	b.Helper()
	ctx := context.Background()
	srv, stop, err := servertest.Run(dir, servertest.Options{})
	require.NoError(b, err)
	u, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(b, err)
	admin := u.Principal("bench", "l-bench")
	push := func(muts ...json.RawMessage) error {
		resp, err := srv.Engine.Push(ctx, admin, &schema.PushRequest{Mutations: muts})
		if err != nil {
			return err
		}
		for _, r := range resp.Results {
			if r.Status != schema.PushApplied {
				return fmt.Errorf("seed push: %s", r.Status)
			}
		}
		return nil
	}
	require.NoError(b, push(mutation("t", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})))
	const batch, pushers = 500, 2
	errs := make([]error, pushers)
	var wg gosync.WaitGroup
	for w := range pushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := w * batch; n < records && errs[w] == nil; n += pushers * batch {
				muts := make([]json.RawMessage, 0, batch)
				for i := n; i < min(n+batch, records); i++ {
					muts = append(muts, mutation(fmt.Sprintf("s-%d", i), schema.Customers, fmt.Sprintf("c-%d", i), 0,
						map[string]any{"code": fmt.Sprintf("C%07d", i), "name": fmt.Sprintf("Outlet %d", i), "territory_id": "t-1", "grade": "B",
							"address": "12 Main Street, Springfield", "lat": 52.52, "lng": 13.4, "credit_limit": 250000}))
				}
				errs[w] = push(muts...)
			}
		}()
	}
	wg.Wait()
	require.NoError(b, errors.Join(append(errs, stop())...))
}
