// Command fieldsim simulates a field-sales day against a running fieldsync
// server and proves that nothing is lost on the way.
//
// Usage:
//
//	fieldsim -url http://127.0.0.1:8080 -admin admin -password secret \
//		[-reps 3] [-seed 1] [-offline-rate 0.2] [-fault-rate 0.15]
//
// As the admin it sets up two territories, customers with coordinates,
// products, reps, a manager, a distributor serving some customers and
// today's route plans. Each rep then works through its plan on its own
// device (a Go SDK client with its own store) whose HTTP transport drops
// connections, loses answers after the server handled them, times out and
// sends requests twice. Devices go offline for a while; one is reinstalled
// mid-day. The manager confirms a submitted order, the distributor places
// one. At the end every device syncs with faults off and the run is
// verified: every record a device created is on the server exactly once
// with the content the device gave it, every device's replica equals what
// the server lets its user read, and every photo's bytes are stored under
// their hash. Any mismatch makes fieldsim exit with status 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/fieldsync/fieldsync/cmd/internal/usage"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run reads the flags, runs the simulation in a temporary folder and
// returns the exit status.
func run(args []string, out, stderr io.Writer) int {
	var cfg Config
	fs := flag.NewFlagSet("fieldsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage.Set(fs, "fieldsim simulates a field-sales day against a running fieldsync server and checks that nothing was lost or duplicated.",
		"fieldsim -password ADMIN_PASSWORD [-url http://127.0.0.1:8080] [-admin admin] [flags]")
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "the fieldsync server's address")
	fs.StringVar(&cfg.Admin, "admin", "admin", "the admin's username")
	fs.StringVar(&cfg.Password, "password", "", "the admin's password (required)")
	fs.IntVar(&cfg.Reps, "reps", 3, "how many reps (devices) work the day")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random choice")
	fs.Float64Var(&cfg.OfflineRate, "offline-rate", 0.2, "chance per stop that a device goes offline for a while")
	fs.Float64Var(&cfg.FaultRate, "fault-rate", 0.15, "chance per HTTP request of an injected fault")
	err := usage.Parse(fs, args)
	if err == nil && cfg.Password == "" {
		err = errors.New("-password is required")
	}
	if err != nil {
		return usage.ExitCode("fieldsim", err, stderr)
	}
	return simulate(cfg, out, stderr)
}

// simulate runs the simulation in a temporary folder and returns the exit
// status.
func simulate(cfg Config, out, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "fieldsim-")
	if err != nil {
		fmt.Fprintln(stderr, "fieldsim:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg.Dir = dir
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if _, err := Run(ctx, cfg, out); err != nil {
		fmt.Fprintln(stderr, "fieldsim: FAILED:", err)
		return 1
	}
	fmt.Fprintln(out, "verification: OK")
	return 0
}
