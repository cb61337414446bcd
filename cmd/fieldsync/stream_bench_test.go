package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// rss returns a process's resident memory in bytes.
func rss(tb testing.TB, pid int) int64 {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(tb, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			require.NoError(tb, err)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// benchAPI is a test client of the process at base that checks nothing
// against the OpenAPI document: benchmarks time its requests.
func benchAPI(base string) *servertest.Client {
	return &servertest.Client{URL: base, HTTP: http.DefaultClient}
}

// gauge reads one unlabelled metric of a process's /metrics.
func gauge(tb testing.TB, base, name string) float64 {
	tb.Helper()
	resp := benchAPI(base).Call(tb, http.MethodGet, "/metrics", "", nil)
	require.Equal(tb, http.StatusOK, resp.Status)
	sc := bufio.NewScanner(bytes.NewReader(resp.Raw))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			require.NoError(tb, err)
			return v
		}
	}
	tb.Fatalf("no metric %s", name)
	return 0
}

// footprint is what a process holds: resident memory, Go heap and stacks
// in use, goroutines.
type footprint struct{ rss, heap, stack, goroutines float64 }

func measure(tb testing.TB, p *process) footprint {
	tb.Helper()
	time.Sleep(2 * time.Second) // let the server settle
	base := "http://" + p.addr
	return footprint{
		rss:        float64(rss(tb, p.cmd.Process.Pid)),
		heap:       gauge(tb, base, "go_memstats_heap_inuse_bytes"),
		stack:      gauge(tb, base, "go_memstats_stack_inuse_bytes"),
		goroutines: gauge(tb, base, "go_goroutines"),
	}
}

// per returns what each of n connections added between two footprints.
func per(before, after footprint, n int) footprint {
	k := float64(n)
	return footprint{(after.rss - before.rss) / k, (after.heap - before.heap) / k, (after.stack - before.stack) / k,
		(after.goroutines - before.goroutines) / k}
}

// BenchmarkStreamMemory holds 1,000 live streams open on one fieldsync
// process and reports what each costs it, beside the baseline of 1,000
// idle keep-alive connections on another fresh process (each GET
// /healthz once, then left open). It also times how long one write that
// every stream may read takes to reach all 1,000:
//
//	go test -run '^$' -bench StreamMemory -benchtime 1x ./cmd/fieldsync/
func BenchmarkStreamMemory(b *testing.B) {
	const n = 1000
	env := []string{"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}
	args := []string{"--max-streams-per-user", "1000"}
	for range b.N {
		// Baseline: idle keep-alive connections.
		idle := startBinaryWith(b, b.TempDir(), args, env...)
		base := "http://" + idle.addr
		before := measure(b, idle)
		tr := &http.Transport{MaxIdleConnsPerHost: 2 * n, MaxIdleConns: 2 * n}
		hc := &http.Client{Transport: tr}
		var wg gosync.WaitGroup
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				resp, err := hc.Get(base + "/healthz")
				if err == nil {
					resp.Body.Close()
				}
			}()
		}
		close(start)
		wg.Wait()
		conns := per(before, measure(b, idle), n)
		tr.CloseIdleConnections()

		// Streams.
		p := startBinaryWith(b, b.TempDir(), args, env...)
		base = "http://" + p.addr
		api := benchAPI(base)
		token := signIn(b, api, "admin", "admin-password-1")
		before = measure(b, p)
		streams := make([]*servertest.Stream, n)
		for i := range streams {
			streams[i] = servertest.OpenStream(b, base, token, "")
			require.Equal(b, http.StatusOK, streams[i].Status, streams[i].Body)
		}
		for _, st := range streams {
			ev, ok := st.Next(10 * time.Second)
			require.True(b, ok)
			require.Equal(b, "ready", ev.Name)
		}
		open := measure(b, p)
		require.Equal(b, float64(n), gauge(b, base, "fieldsync_streams_open"))
		each := per(before, open, n)

		// One write every stream may read.
		admin := client{api: api, token: token}
		written := time.Now()
		res := admin.push(b, mutation("fan-out", "territories", "t-fan", 0, map[string]any{"name": "Fan", "region": "R"}))
		require.Equal(b, schema.PushApplied, res[0].Status)
		pushed := time.Since(written)
		var last time.Duration
		for _, st := range streams {
			ev, ok := st.Next(10 * time.Second)
			require.True(b, ok, "every stream hears of the write")
			require.Equal(b, "changes", ev.Name)
			last = max(last, ev.At.Sub(written))
		}
		for _, st := range streams {
			st.Close()
		}
		b.Logf("per idle connection: RSS %.1f KiB, heap %.1f KiB, stack %.1f KiB, %.2f goroutines",
			conns.rss/1024, conns.heap/1024, conns.stack/1024, conns.goroutines)
		b.Logf("per stream:          RSS %.1f KiB, heap %.1f KiB, stack %.1f KiB, %.2f goroutines",
			each.rss/1024, each.heap/1024, each.stack/1024, each.goroutines)
		b.Logf("one write reached all %d streams %v after it was sent (the push itself took %v)", n, last, pushed)
		b.ReportMetric(each.rss/1024, "KiB-RSS/stream")
		b.ReportMetric(conns.rss/1024, "KiB-RSS/idle-conn")
		b.ReportMetric(each.heap/1024, "KiB-heap/stream")
		b.ReportMetric(float64(last.Milliseconds()), "ms-fan-out-to-all")
	}
}

// BenchmarkStreamLatency times 1,000 writes from commit on one fieldsync
// process to the changes event on a stream of another process sharing
// the SQLite file, with the shipped polling interval (500 ms). Four reps
// in four territories listen; writers push one customer at a time into
// each territory at random moments, each after the previous one's event
// arrived. The baseline is the push round trip itself:
//
//	go test -run '^$' -bench StreamLatency -benchtime 1x ./cmd/fieldsync/
func BenchmarkStreamLatency(b *testing.B) {
	const lanes, writes = 4, 1000
	for range b.N {
		dir := b.TempDir()
		env := []string{"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}
		writer := startBinary(b, dir, env...)
		reader := startBinary(b, dir, env...)
		wbase, rbase := "http://"+writer.addr, "http://"+reader.addr
		wapi, rapi := benchAPI(wbase), benchAPI(rbase)
		admin := client{api: wapi, token: signIn(b, wapi, "admin", "admin-password-1")}
		streams := make([]*servertest.Stream, lanes)
		for i := range lanes {
			name := fmt.Sprintf("rep%d", i)
			status := admin.post(b, "/v1/admin/users", map[string]any{"username": name, "password": name + "-password", "role": "rep",
				"territories": []string{fmt.Sprintf("t-%d", i)}}, nil)
			require.Equal(b, http.StatusCreated, status)
			tid := fmt.Sprintf("t-%d", i)
			require.Equal(b, schema.PushApplied, admin.push(b, mutation("m-"+tid, "territories", tid, 0, map[string]any{"name": tid, "region": "R"}))[0].Status)
			streams[i] = servertest.OpenStream(b, rbase, signIn(b, rapi, name, name+"-password"), "")
			ev, ok := streams[i].Next(10 * time.Second)
			require.True(b, ok)
			require.Equal(b, "ready", ev.Name)
		}
		time.Sleep(1500 * time.Millisecond)
		for _, st := range streams {
			st.Drain()
		}

		var (
			mu          gosync.Mutex
			commitToEvt []time.Duration
			roundTrips  []time.Duration
			wg          gosync.WaitGroup
		)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		defer cancel()
		for lane := range lanes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(lane), 7))
				for i := range writes / lanes {
					if ctx.Err() != nil {
						return
					}
					time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
					id := fmt.Sprintf("c-%d-%d", lane, i)
					sent := time.Now()
					r := admin.push(b, mutation("m-"+id, "customers", id, 0, map[string]any{"code": id, "name": "Shop", "territory_id": fmt.Sprintf("t-%d", lane), "grade": "B"}))
					committed := time.Now()
					if len(r) != 1 || r[0].Status != schema.PushApplied {
						panic(fmt.Sprintf("push %s: %+v", id, r))
					}
					ev, ok := streams[lane].Next(10 * time.Second)
					if !ok || ev.Name != "changes" {
						panic(fmt.Sprintf("no event for %s: %+v", id, ev))
					}
					mu.Lock()
					commitToEvt = append(commitToEvt, max(0, ev.At.Sub(committed)))
					roundTrips = append(roundTrips, committed.Sub(sent))
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.Len(b, commitToEvt, writes)
		slices.Sort(commitToEvt)
		slices.Sort(roundTrips)
		pct := func(d []time.Duration, p float64) time.Duration { return d[int(p*float64(len(d)-1))] }
		b.Logf("commit → event over %d writes: p50 %v, p90 %v, p99 %v, max %v", writes,
			pct(commitToEvt, .5), pct(commitToEvt, .9), pct(commitToEvt, .99), commitToEvt[len(commitToEvt)-1])
		b.Logf("push round trip (baseline): p50 %v, p99 %v", pct(roundTrips, .5), pct(roundTrips, .99))
		b.ReportMetric(float64(pct(commitToEvt, .5).Milliseconds()), "ms-p50")
		b.ReportMetric(float64(pct(commitToEvt, .99).Milliseconds()), "ms-p99")
		b.ReportMetric(float64(pct(roundTrips, .5).Milliseconds()), "ms-push-p50")
	}
}
