package mongotest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	gosync "sync"
	"syscall"
	"time"
)

// The beds of tests run in a testmongo process of their own, built without
// the race detector: FerretDB and its SQLite engine are far larger than
// the code under test, and instrumenting them made the Mongo adapter's
// tests six times slower under -race without looking at any of our code.

// testmongoPackage is the command a bed apart runs.
const testmongoPackage = "github.com/fieldsync/fieldsync/cmd/testmongo"

// program is testmongo, built into the folder dir on first use.
type program struct {
	once gosync.Once
	dir  string
	path string
	err  error
}

// build builds testmongo, once.
func (b *program) build() (string, error) {
	b.once.Do(func() {
		b.path = filepath.Join(b.dir, "testmongo")
		cmd := exec.Command("go", "build", "-o", b.path, testmongoPackage)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %w: %s", testmongoPackage, err, out)
		}
	})
	return b.path, b.err
}

// process is a running testmongo.
type process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
}

// startApart runs a bed in a testmongo process keeping its files in dir,
// FerretDB's errors going to logs, and waits for its URIs.
func startApart(ctx context.Context, bin *program, dir string, logs io.Writer) (*Bed, error) {
	const op = "mongotest: testmongo"
	path, err := bin.build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cmd := exec.Command(path, "-dir", dir, "-direct")
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe() // closed by this process's end, so testmongo never outlives it
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	p := &process{cmd: cmd, stdin: stdin, done: make(chan error, 1)}
	lines := make(chan []string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		var got []string
		for len(got) < 2 {
			line, err := r.ReadString('\n')
			if err != nil {
				break
			}
			got = append(got, strings.TrimSpace(line))
		}
		lines <- got
		io.Copy(io.Discard, r)
		p.done <- cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	select {
	case got := <-lines:
		if len(got) == 2 {
			return &Bed{proc: p, uri: got[0], direct: got[1]}, nil
		}
		p.stop()
		return nil, fmt.Errorf("%s: ended before it printed its URIs", op)
	case <-ctx.Done():
		p.stop()
		return nil, fmt.Errorf("%s: no URI within a minute: %w", op, ctx.Err())
	}
}

// stop interrupts testmongo and waits for it, killing it if it does not
// end within 10 s.
func (p *process) stop() error {
	p.stdin.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil // ended by the signal sent here, before it could catch it
			}
		}
		return err
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("mongotest: testmongo did not stop within 10 s of SIGTERM")
	}
}
