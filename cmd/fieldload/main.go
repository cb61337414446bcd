// Command fieldload puts a fieldsync server under the load of simulated
// field reps' devices and measures it.
//
// Usage:
//
//	fieldload -url http://127.0.0.1:8080 -devices 20 -duration 60s -interval 30s \
//	    -user-prefix rep -reps 20 -password-suffix -password \
//	    [-orders 0.4 -photos 0.2] [-pid <server pid>] [-json fieldload.json] [-allow-remote]
//	fieldload -cycle [-wire] -devices 50 -duration 60s -ramp 5s -warmup 10s [same flags]
//
// Each device is a client of the Go SDK with its own temporary store,
// signed in as one of the seeded reps, round-robin (device i as
// <user-prefix><i mod reps + 1>, password <username><password-suffix>; see
// fieldseed). After a first sync it records, about every -interval (±25%),
// a finished visit (check-in and check-out) at one of its customers,
// sometimes with an order and a shelf photo, and syncs. It stops starting
// visits at -duration and ends when the syncs in flight finish. With
// -cycle the devices work back to back instead: each records one new small
// visit (no order, no photo), pushes it and pulls what changed, and starts
// again at once; the table then also gives the cycles per second, counting
// the cycles that started after the warm-up and ended by -duration. With
// -wire as well, the devices are not SDK clients: each speaks the HTTP
// contract itself, with no local store (it signs in once, renews its
// token on a 401, pushes its one new visit with a mutation id of its own
// and pulls from its checkpoint until has_more is false), so that the
// load generator spends little per cycle and the cycles measure the
// server; a visit the server took that does not come back in the pull
// after its push fails that sync.
//
// Every request is timed, through the SDK's HTTP client, from sending it to
// the end of its answer: per endpoint (login, refresh, push, pull, media)
// the table shows requests, errors, requests per second and the p50, p95,
// p99 and maximum latency. The server's resident memory is read from
// /proc/<pid>/status with -pid, else from the process_resident_memory_bytes
// gauge of /metrics. -json writes the same numbers as JSON to the file it
// names (fieldload.json is git-ignored at the repository's root). Requests
// sent during the warm-up (-warmup, by default the ramp) are left out; a
// warm-up as long as the run is refused, as it would leave nothing to show.
// -requests writes one CSV line per push and pull (sent at, endpoint,
// milliseconds, status), so that the windows of several fieldload
// processes driving one server can be merged.
//
// Only loopback URLs are loaded unless -allow-remote is given.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"time"

	"github.com/fieldsync/fieldsync/cmd/internal/usage"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(usage.ExitCode("fieldload", err, os.Stderr))
}

// run parses the flags, loads the server and reports.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, out, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if out.cpuProfile != "" {
		f, err := os.Create(out.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	closeRequests := func() error { return nil }
	if out.requests != "" {
		f, err := os.Create(out.requests)
		if err != nil {
			return err
		}
		w := bufio.NewWriter(f)
		cfg.Requests = w
		// A line that could not be written is reported, not lost quietly.
		closeRequests = func() error { return errors.Join(w.Flush(), f.Close()) }
	}
	res, err := Load(ctx, cfg)
	if err := errors.Join(err, closeRequests()); err != nil {
		return err
	}
	writeTable(stdout, cfg, res)
	if out.json != "" {
		if err := writeJSON(out.json, res); err != nil {
			return err
		}
	}
	if res.SyncFails > 0 {
		return fmt.Errorf("%d of %d syncs failed", res.SyncFails, res.Syncs)
	}
	return nil
}

// outputs are the files a run writes besides its table (empty: none).
type outputs struct {
	json       string // the results as JSON
	cpuProfile string // the load generator's own CPU profile
	requests   string // one CSV line per push and pull
}

// parseFlags reads the command line into a Config and the outputs,
// working out the defaults of -ramp and -warmup from the other flags.
func parseFlags(args []string, stderr io.Writer) (cfg Config, out outputs, err error) {
	fs := flag.NewFlagSet("fieldload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage.Set(fs, "fieldload puts a fieldsync server under the load of simulated field reps' devices and measures it.",
		"fieldload [-url http://127.0.0.1:8080] [-devices 10] [-duration 1m] [-json fieldload.json] [flags]")
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "base URL of the fieldsync server")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a URL that is not a loopback address")
	fs.IntVar(&cfg.Devices, "devices", 10, "simulated devices")
	fs.DurationVar(&cfg.Duration, "duration", time.Minute, "how long the devices work")
	fs.DurationVar(&cfg.Interval, "interval", 30*time.Second, "mean time between a device's visits")
	fs.BoolVar(&cfg.Cycle, "cycle", false, "devices work back to back: record one small visit, push, pull, again, with no interval")
	fs.BoolVar(&cfg.Wire, "wire", false, "with -cycle: devices speak the HTTP contract themselves, with no SDK and no local store, so that the load generator costs little per cycle")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "rep", "username prefix of the reps")
	fs.IntVar(&cfg.Reps, "reps", 20, "how many reps there are (<prefix>1 … <prefix>N)")
	fs.StringVar(&cfg.PasswordSuffix, "password-suffix", "-password", "a rep's password is its username and this")
	fs.Float64Var(&cfg.OrderChance, "orders", 0.4, "chance that a visit comes with an order")
	fs.Float64Var(&cfg.PhotoChance, "photos", 0.2, "chance that a visit comes with a photo")
	fs.IntVar(&cfg.PID, "pid", 0, "server process id, to read its RSS from /proc (default: /metrics)")
	fs.DurationVar(&cfg.Windows, "windows", 0, "also show push and pull latency window by window of this length, warm-up included (0: no)")
	fs.StringVar(&out.json, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&out.requests, "requests", "", "also write one CSV line per push and pull to this file: sent at (Unix ms), endpoint, ms, status (to merge the windows of several fieldload processes)")
	fs.StringVar(&out.cpuProfile, "cpuprofile", "", "write fieldload's own CPU profile to this file (what the load generator spends, which shares the machine with a local server)")
	fs.IntVar(&cfg.FirstDevice, "first-device", 1, "number of the first device (devices are fieldload-<n>, rep <n mod -reps>): several fieldload processes can drive one server with devices of their own")
	var ramp, warmup optionalDuration
	fs.Var(&ramp, "ramp", "spread the devices' starts over this long, a `duration` (default: one -interval, at most a quarter of -duration)")
	fs.Var(&warmup, "warmup", "leave requests sent in the first `duration` of the run out of the figures; shorter than -duration (default: the ramp)")
	if err := usage.Parse(fs, args); err != nil {
		return cfg, out, err
	}
	cfg.Ramp = ramp.or(min(cfg.Interval, cfg.Duration/4))
	cfg.Warmup = warmup.or(cfg.Ramp)
	return cfg, out, nil
}

// optionalDuration is a duration flag whose default is worked out from
// other flags when it is not given.
type optionalDuration struct {
	d   time.Duration
	set bool
}

func (o *optionalDuration) String() string {
	if o == nil || !o.set {
		return ""
	}
	return o.d.String()
}

func (o *optionalDuration) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("must not be negative")
	}
	o.d, o.set = d, true
	return nil
}

// or returns the given duration, or def when none was given.
func (o *optionalDuration) or(def time.Duration) time.Duration {
	if o.set {
		return o.d
	}
	return def
}
