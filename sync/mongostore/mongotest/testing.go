package mongotest

import (
	"context"
	"fmt"
	"io"
	"os"
	gosync "sync"
	"testing"
)

// ForTest starts a bed for one test in a testmongo process of its own,
// built without the race detector, with its files in the test's temp dir,
// and closes it when the test ends. A test may Close it sooner, as an
// outage would. Nothing is logged.
func ForTest(tb testing.TB) *Bed {
	tb.Helper()
	return ForTestIn(tb, tb.TempDir())
}

// ForTestIn is ForTest with FerretDB's files in dir (a small file system
// to fill, say); testmongo itself is built in the test's temp dir.
func ForTestIn(tb testing.TB, dir string) *Bed {
	tb.Helper()
	b, err := startApart(context.Background(), &program{dir: tb.TempDir()}, dir, io.Discard)
	if err != nil {
		tb.Fatalf("mongotest.ForTest: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// Shared is one bed for all the tests of a package, started by the first
// test that asks for it, in a testmongo process of its own as ForTest's
// are; FerretDB's errors go to stderr. The zero value is
// ready to use:
//
//	var ferret mongotest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(ferret.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		uri := ferret.Start(t).URI() + "a_fresh_database"
//		...
//	}
type Shared struct {
	once gosync.Once
	dir  string
	bed  *Bed
	err  error
}

// Start returns the shared bed, starting it on first use; it fails tb if
// the bed could not be started.
func (sh *Shared) Start(tb testing.TB) *Bed {
	tb.Helper()
	sh.once.Do(func() {
		sh.dir, sh.err = os.MkdirTemp("", "mongotest-")
		if sh.err == nil {
			sh.bed, sh.err = startApart(context.Background(), &program{dir: sh.dir}, sh.dir, os.Stderr)
		}
	})
	if sh.err != nil {
		tb.Fatalf("mongotest.Shared.Start: %v", sh.err)
	}
	return sh.bed
}

// Main runs a package's tests and then closes the shared bed, if it was
// started, and removes its files; a failure to do so fails the run.
func (sh *Shared) Main(m *testing.M) int {
	code := m.Run()
	var err error
	if sh.bed != nil {
		err = sh.bed.Close()
	}
	if sh.dir != "" {
		if rmErr := os.RemoveAll(sh.dir); err == nil {
			err = rmErr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongotest.Shared:", err)
		code = 1
	}
	return code
}
