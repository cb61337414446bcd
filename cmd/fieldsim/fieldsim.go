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
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	var cfg Config
	flag.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080", "the fieldsync server's address")
	flag.StringVar(&cfg.Admin, "admin", "admin", "the admin's username")
	flag.StringVar(&cfg.Password, "password", "", "the admin's password")
	flag.IntVar(&cfg.Reps, "reps", 3, "how many reps (devices) work the day")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of every random choice")
	flag.Float64Var(&cfg.OfflineRate, "offline-rate", 0.2, "chance per stop that a device goes offline for a while")
	flag.Float64Var(&cfg.FaultRate, "fault-rate", 0.15, "chance per HTTP request of an injected fault")
	flag.Parse()
	if cfg.Password == "" {
		fmt.Fprintln(os.Stderr, "fieldsim: -password is required")
		os.Exit(2)
	}
	os.Exit(run(cfg, os.Stdout))
}

// run runs the simulation in a temporary folder and returns the exit status.
func run(cfg Config, out io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	dir, err := os.MkdirTemp("", "fieldsim-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fieldsim:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	cfg.Dir = dir
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	if _, err := Run(ctx, cfg, out); err != nil {
		fmt.Fprintln(os.Stderr, "fieldsim: FAILED:", err)
		return 1
	}
	fmt.Fprintln(out, "verification: OK")
	return 0
}
