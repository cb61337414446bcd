package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
	"github.com/fieldsync/fieldsync/cmd/internal/usage"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// loadSeeded seeds a fresh server with cfg (its URL and admin filled in),
// runs fieldload on it with args and returns its table and results.
func loadSeeded(t *testing.T, cfg seed.Config, args ...string) (string, Result) {
	t.Helper()
	ctx := context.Background()
	url := servertest.Start(t, servertest.Options{}).URL
	cfg.URL, cfg.Admin, cfg.Password = url, servertest.AdminName, servertest.AdminPassword
	_, err := seed.Run(ctx, &bytes.Buffer{}, cfg)
	require.NoError(t, err)

	out := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	err = run(ctx, append([]string{"-url", url, "-json", out}, args...), &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	t.Log("\n" + stdout.String())

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var res Result
	require.NoError(t, json.Unmarshal(raw, &res))
	return stdout.String(), res
}

// The run lasts long enough for the devices to make visits after signing in,
// which under the race detector on a loaded machine takes several seconds.
func TestLoadShortRun(t *testing.T) {
	requests := filepath.Join(t.TempDir(), "requests.csv")
	stdout, res := loadSeeded(t, seed.Config{Territories: 2, RepsPerTerritory: 2, Customers: 40, Products: 10, Days: 1, Seed: 3},
		"-devices", "5", "-reps", "4", "-duration", "12s", "-interval", "400ms",
		"-orders", "0.5", "-photos", "0.3", "-ramp", "0s", "-warmup", "0s", "-windows", "1s", "-requests", requests)
	assert.Equal(t, 5, res.Devices)
	assert.Positive(t, res.Visits)
	assert.Zero(t, res.SyncFails, res.FirstErrors)
	assert.Zero(t, res.Rejected)
	for _, ep := range []string{"login", "push", "pull"} {
		s := res.Endpoints[ep]
		assert.Positive(t, s.Requests, ep)
		assert.Zero(t, s.Errors, ep)
		assert.Positive(t, s.P50Ms, ep)
		assert.LessOrEqual(t, s.P50Ms, s.P95Ms, ep)
		assert.LessOrEqual(t, s.P95Ms, s.P99Ms, ep)
		assert.LessOrEqual(t, s.P99Ms, s.MaxMs, ep)
	}
	assert.Equal(t, 5, res.Endpoints["login"].Requests, "one sign-in per device")
	require.NotNil(t, res.RSS, res.RSSError)
	assert.Positive(t, res.RSS.PeakMB)
	assert.Contains(t, stdout, "ENDPOINT")

	assert.Equal(t, FirstSyncs{Done: 5}, FirstSyncs{Done: res.FirstSyncs.Done, GaveUp: res.FirstSyncs.GaveUp}, "every device synced once at least")
	assert.Positive(t, res.FirstSyncs.P50S)
	require.NotEmpty(t, res.Windows)
	sent, last := 0, -1.0
	for _, w := range res.Windows {
		sent += w.Requests
		assert.Greater(t, w.FromS, last, "windows in order")
		assert.Equal(t, math.Trunc(w.FromS), w.FromS, "one-second windows")
		last = w.FromS
		assert.LessOrEqual(t, w.P50Ms, w.P99Ms)
	}
	assert.Equal(t, res.Endpoints["push"].Requests+res.Endpoints["pull"].Requests, sent, "every push and pull is in a window")
	assert.Contains(t, stdout, "first syncs: 5 done, 0 gave up")

	raw, err := os.ReadFile(requests)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	assert.Len(t, lines, sent, "-requests writes a line per push and pull")
	byEndpoint := map[string]int{}
	for _, line := range lines {
		f := strings.Split(line, ",")
		require.Len(t, f, 4, line)
		at, err := strconv.ParseInt(f[0], 10, 64)
		require.NoError(t, err, line)
		assert.InDelta(t, time.Now().UnixMilli(), at, float64(time.Minute.Milliseconds()), "sent at, in Unix milliseconds: %s", line)
		ms, err := strconv.ParseFloat(f[2], 64)
		require.NoError(t, err, line)
		assert.Positive(t, ms, line)
		assert.Equal(t, "200", f[3], line)
		byEndpoint[f[1]]++
	}
	assert.Equal(t, map[string]int{"push": res.Endpoints["push"].Requests, "pull": res.Endpoints["pull"].Requests}, byEndpoint)
}

// In cycle mode each device records one small visit, pushes and pulls,
// back to back, and the cycles are counted.
func TestLoadCycles(t *testing.T) {
	profile := filepath.Join(t.TempDir(), "fieldload.prof")
	stdout, res := loadSeeded(t, seed.Config{Territories: 1, RepsPerTerritory: 2, Customers: 10, Products: 5, Days: 1, Seed: 3},
		"-cycle", "-devices", "4", "-reps", "2", "-duration", "3s", "-ramp", "0s", "-warmup", "1s", "-cpuprofile", profile)
	raw, err := os.ReadFile(profile)
	require.NoError(t, err, "-cpuprofile writes the load generator's profile")
	require.Greater(t, len(raw), 2)
	assert.Equal(t, []byte{0x1f, 0x8b}, raw[:2], "a pprof profile is gzipped protobuf")
	assert.Zero(t, res.SyncFails, res.FirstErrors)
	assert.Positive(t, res.Cycles)
	assert.InDelta(t, float64(res.Cycles)/2, res.CyclesPerSecond, 0.01, "cycles over the 2 s after the warm-up")
	assert.GreaterOrEqual(t, res.Visits, res.Cycles, "a visit per cycle")
	assert.Positive(t, res.Connections)
	assert.LessOrEqual(t, res.Connections, 2*4, "each device keeps its connection between requests (%d cycles)", res.Cycles)
	assert.Zero(t, res.Orders, "cycles record visits only")
	assert.Zero(t, res.Photos, "cycles record visits only")
	for _, ep := range []string{"push", "pull"} {
		assert.GreaterOrEqual(t, res.Endpoints[ep].Requests, res.Cycles, ep)
		assert.Zero(t, res.Endpoints[ep].Errors, ep)
	}
	assert.Contains(t, stdout, "per second")
}

func TestLoadReadsRSSOfPID(t *testing.T) {
	v, err := procRSS(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, v)
}

func TestParseGauge(t *testing.T) {
	text := "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\n" +
		"process_resident_memory_bytes 4.5056e+07\n"
	v, err := parseGauge(strings.NewReader(text), "process_resident_memory_bytes")
	require.NoError(t, err)
	assert.Equal(t, 4.5056e7, v)
	_, err = parseGauge(strings.NewReader("go_goroutines 3\n"), "process_resident_memory_bytes")
	assert.Error(t, err)
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url    string
		remote bool
		ok     bool
	}{
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://sync.example.com", false, false},
		{"http://10.0.0.5:8080", false, false},
		{"http://sync.example.com", true, true},
		{"ftp://127.0.0.1", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := checkURL(tt.url, tt.remote)
			assert.Equal(t, tt.ok, err == nil, "got %v", err)
		})
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &stdout, &stderr)
	assert.Equal(t, 0, usage.ExitCode("fieldload", err, &stderr), "-h exits 0")
	first, _, _ := strings.Cut(stderr.String(), "\n")
	assert.Equal(t, "fieldload puts a fieldsync server under the load of simulated field reps' devices and measures it.", first)
	for _, want := range []string{"(default 1m0s)", "(default 30s)", `(default "http://127.0.0.1:8080")`, "-ramp duration", "(default: the ramp)"} {
		assert.Contains(t, stderr.String(), want)
	}
	assert.NotContains(t, stderr.String(), "-1ns")

	stderr.Reset()
	err = run(context.Background(), []string{"-bogus"}, &stdout, &stderr)
	assert.Equal(t, 2, usage.ExitCode("fieldload", err, &stderr), "a bad flag")
}

func TestDefaultsLeaveSomethingToMeasure(t *testing.T) {
	for _, tc := range []struct {
		args               []string
		wantRamp, wantWarm time.Duration
	}{
		{nil, 15 * time.Second, 15 * time.Second},
		{[]string{"-devices", "20", "-reps", "20", "-duration", "60s", "-interval", "30s"}, 15 * time.Second, 15 * time.Second}, // the README's
		{[]string{"-duration", "10m", "-interval", "30s"}, 30 * time.Second, 30 * time.Second},
		{[]string{"-ramp", "0s"}, 0, 0},
		{[]string{"-ramp", "20s", "-warmup", "5s"}, 20 * time.Second, 5 * time.Second},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cfg, _, err := parseFlags(tc.args, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, tc.wantRamp, cfg.Ramp)
			assert.Equal(t, tc.wantWarm, cfg.Warmup)
			assert.Less(t, cfg.Warmup, cfg.Duration)
		})
	}
}

func TestWarmupAsLongAsTheRunIsRefused(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-duration", "10s", "-warmup", "10s"}, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "a warm-up of 10s leaves nothing of a 10s run to measure: make -warmup shorter than -duration")
	_, err = Load(context.Background(), Config{URL: "http://127.0.0.1:1", Devices: 1, Reps: 1, Duration: time.Second, Interval: time.Second, Warmup: 2 * time.Second})
	assert.ErrorContains(t, err, "leaves nothing")
}

func TestDefaultWarmupGivesFiguresAndErrorsNameTheUser(t *testing.T) {
	ctx := context.Background()
	url := servertest.Start(t, servertest.Options{}).URL
	_, err := seed.Run(ctx, &bytes.Buffer{}, seed.Config{URL: url, Admin: servertest.AdminName, Password: servertest.AdminPassword,
		Territories: 1, RepsPerTerritory: 2, Customers: 10, Products: 4, Days: 1, Seed: 3})
	require.NoError(t, err)

	// Only duration and interval given, as in the README: the warm-up
	// follows from them and figures come out.
	out := filepath.Join(t.TempDir(), "results", "load.json")
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-url", url, "-devices", "2", "-reps", "2", "-duration", "3s", "-interval", "500ms", "-json", out}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	raw, err := os.ReadFile(out)
	require.NoError(t, err, "the results go where -json says, folder made")
	var res Result
	require.NoError(t, json.Unmarshal(raw, &res))
	assert.Positive(t, res.Endpoints["push"].Requests, "pushes after the warm-up are measured:\n%s", stdout.String())
	assert.Regexp(t, `(?m)^push +[1-9]`, stdout.String(), "the table has figures")

	// A wrong password: the error names the user.
	stdout.Reset()
	err = run(ctx, []string{"-url", url, "-devices", "1", "-reps", "2", "-duration", "1s", "-interval", "500ms", "-password-suffix", "-wrong"}, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, stdout.String(), "error: rep1 (device 1):")

	// Devices numbered from -first-device, their reps following them.
	stdout.Reset()
	err = run(ctx, []string{"-url", url, "-devices", "1", "-first-device", "4", "-reps", "2", "-duration", "1s", "-interval", "500ms", "-password-suffix", "-wrong"}, &stdout, &stderr)
	require.Error(t, err)
	assert.Contains(t, stdout.String(), "error: rep2 (device 4):")
}

// The wire devices push and pull the contract themselves: every visit the
// server took is on the server, every device pulled its own and those that
// the other devices of its rep pushed before its last pull, none of
// another rep's, and a device whose access token expires renews it with
// the refresh token rather than signing in again.
func TestLoadCyclesOnTheWire(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.Options{Server: func(c *server.Config) { c.AccessTTL = 2 * time.Second }})
	_, err := seed.Run(ctx, &bytes.Buffer{}, seed.Config{URL: srv.URL, Admin: servertest.AdminName, Password: servertest.AdminPassword,
		Territories: 1, RepsPerTerritory: 2, Customers: 10, Products: 5, Days: 1, Seed: 3})
	require.NoError(t, err)

	const devices, reps = 4, 2 // devices 1 and 3 are rep1, 2 and 4 rep2
	type push struct {
		device int
		at     time.Time
	}
	var mu gosync.Mutex
	pushed := map[string]push{}
	pulled := make([]map[string]int, devices) // how often each device pulled each visit
	lastPull := make([]time.Time, devices)
	for i := range pulled {
		pulled[i] = map[string]int{}
	}
	watch := &wireWatch{
		pushed: func(device int, id string) {
			mu.Lock()
			defer mu.Unlock()
			pushed[id] = push{device, time.Now()}
		},
		pulled: func(device int, sent time.Time, changes []*schema.Envelope) {
			mu.Lock()
			defer mu.Unlock()
			for _, env := range changes {
				if env.Collection == schema.Visits && !env.Deleted {
					pulled[device][env.ID]++
				}
			}
			lastPull[device] = sent
		},
	}
	res, err := Load(ctx, Config{URL: srv.URL, Devices: devices, Reps: reps, UserPrefix: "rep", PasswordSuffix: "-password",
		Cycle: true, Wire: true, Duration: 5 * time.Second, watch: watch})
	require.NoError(t, err)
	var table bytes.Buffer
	writeTable(&table, Config{Cycle: true}, res)
	t.Log("\n" + table.String())

	assert.Zero(t, res.SyncFails, res.FirstErrors)
	assert.Zero(t, res.Rejected)
	assert.Zero(t, res.Conflicts)
	assert.Positive(t, res.Cycles)
	assert.InDelta(t, float64(res.Cycles)/5, res.CyclesPerSecond, 0.01)
	assert.Equal(t, FirstSyncs{Done: devices}, FirstSyncs{Done: res.FirstSyncs.Done, GaveUp: res.FirstSyncs.GaveUp})
	assert.Equal(t, devices, res.Endpoints["login"].Requests, "one sign-in per device")
	assert.Positive(t, res.Endpoints["refresh"].Requests, "expired access tokens are renewed with the refresh token")
	assert.Zero(t, res.Endpoints["refresh"].Errors)
	for _, ep := range []string{"push", "pull"} {
		assert.GreaterOrEqual(t, res.Endpoints[ep].Requests, res.Cycles, ep)
	}
	assert.Equal(t, res.Endpoints["refresh"].Requests, res.Endpoints["push"].Errors+res.Endpoints["pull"].Errors,
		"the only failed pushes and pulls are the 401s of expired tokens, each followed by a refresh")
	assert.LessOrEqual(t, res.Connections, 2*devices, "each device keeps its connection")
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, pushed, res.Visits, "the server took every visit recorded")

	// Every visit taken is on the server, as the admin sees it.
	admin := srv.Client().Login(t, servertest.AdminName, servertest.AdminPassword, "test")
	onServer := map[string]bool{}
	for cp := ""; ; {
		page := srv.Client().Pull(t, admin.Access, schema.PullRequest{Checkpoint: cp, Limit: 500, Collections: []schema.Collection{schema.Visits}})
		for _, env := range page.Changes {
			onServer[env.ID] = !env.Deleted
		}
		if cp = page.Checkpoint; !page.HasMore {
			break
		}
	}
	crossed := 0
	for id, p := range pushed {
		assert.True(t, onServer[id], "visit %s of device %d is on the server", id, p.device+1)
		for d := range devices {
			sameRep := d%reps == p.device%reps
			switch {
			case !sameRep:
				assert.Zero(t, pulled[d][id], "device %d pulled %s of another rep's device %d", d+1, id, p.device+1)
			case d == p.device || p.at.Before(lastPull[d]):
				// Once: each pull goes on from the checkpoint of the last.
				assert.Equal(t, 1, pulled[d][id], "device %d pulled %s of device %d", d+1, id, p.device+1)
				if d != p.device {
					crossed++
				}
			}
		}
	}
	assert.Positive(t, crossed, "devices pulled the visits of the other device of their rep")
}
