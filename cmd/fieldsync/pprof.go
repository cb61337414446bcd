//go:build pprof

package main

import (
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

// A build with -tags pprof serves Go's profiles (CPU, heap, goroutines) on
// the loopback address FIELDSYNC_PPROF names, e.g. 127.0.0.1:6060, beside
// the API: to see where a server under load spends its time or waits.
// Release builds carry none of it.
func init() {
	addr := os.Getenv("FIELDSYNC_PPROF")
	if addr == "" {
		return
	}
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		fmt.Fprintf(os.Stderr, "fieldsync: FIELDSYNC_PPROF must be a loopback address with a port, not %q\n", addr)
		os.Exit(2)
	}
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintf(os.Stderr, "fieldsync: profiles on %s: %v\n", addr, err)
		}
	}()
}
