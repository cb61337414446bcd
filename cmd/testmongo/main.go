// Command testmongo runs a Mongo-protocol store for tests and local
// trials: the pinned FerretDB behind a proxy that executes one command at
// a time (see sync/mongostore/mongotest), so that several fieldsync
// processes, each with a normal connection pool, can share it. It is a
// test bed, not a database: FerretDB is no production store, and the
// proxy serialises every command.
//
// Usage:
//
//	testmongo [-listen 127.0.0.1:0] [-dir DIR] [-durable] [-direct]
//
// It prints the store's MongoDB URI on a line of its own once the store
// answers (with -direct, FerretDB's own URI, bypassing the proxy, on the
// next line), and runs until interrupted (SIGINT or SIGTERM) or until its
// standard input ends when it is a pipe. Append a database name to the
// URI: FIELDSYNC_MONGO_URI=<uri>fieldsync.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fieldsync/fieldsync/cmd/internal/usage"
	"github.com/fieldsync/fieldsync/sync/mongostore/mongotest"
)

func main() {
	ctx, stop := lifetime(os.Stdin)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(usage.ExitCode("testmongo", err, os.Stderr))
}

// lifetime is the context testmongo runs for: until SIGINT or SIGTERM,
// and, when in is a pipe, until in ends — a test that runs testmongo
// holds its standard input, so that when that process ends, however it
// ends, testmongo ends too. The signals stay caught after the input
// ends, so that a SIGTERM during the stop that follows lets the stop
// finish; stop releases them.
func lifetime(in *os.File) (ctx context.Context, stop func()) {
	sig, unhook := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(sig)
	if fi, err := in.Stat(); err == nil && fi.Mode()&os.ModeNamedPipe != 0 {
		go func() {
			io.Copy(io.Discard, in)
			cancel()
		}()
	}
	return ctx, func() { cancel(); unhook() }
}

// run starts the test bed, prints its URI and waits for ctx to end.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("testmongo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	usage.Set(fs, "testmongo runs FerretDB behind a one-command-at-a-time proxy: a Mongo-protocol store that several test processes can share.",
		"testmongo [-listen 127.0.0.1:0] [-dir DIR] [-durable] [-direct]")
	listen := fs.String("listen", "127.0.0.1:0", "address of the proxy")
	dir := fs.String("dir", "", "folder for FerretDB's files (default: a temporary folder, removed on exit)")
	durable := fs.Bool("durable", false, "keep SQLite's fsyncs")
	direct := fs.Bool("direct", false, "print FerretDB's own URI, bypassing the proxy, on the line after the proxy's")
	if err := usage.Parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "testmongo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	bed, err := mongotest.Start(ctx, mongotest.Config{Dir: *dir, Listen: *listen, Durable: *durable, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, bed.URI())
	if *direct {
		fmt.Fprintln(stdout, bed.DirectURI())
	}
	<-ctx.Done()
	return bed.Close()
}
