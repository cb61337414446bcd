// Package miniotest runs a real MinIO server for tests: the binary built with
// go install, on loopback ports, with data in a temp dir and random
// credentials, stopped when the test (or the test package) is done.
//
// Start gives a test its own server. Shared gives all the tests of a package
// one server, started on first use and stopped from TestMain.
//
// The binary is found in $FIELDSYNC_MINIO_BIN, else as minio on $PATH, else
// as $HOME/.cache/fieldsync/minio-*/minio. Without it a test fails when
// CI=true and is skipped otherwise.
package miniotest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Version is the MinIO release the tests are pinned to.
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// Timeouts for starting and stopping the server.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	maxAttempts  = 3 // a free port can be taken before MinIO binds it
)

// errNoBinary reports that no MinIO binary was found.
var errNoBinary = errors.New("no MinIO binary found (FIELDSYNC_MINIO_BIN unset, no minio on PATH, none in $HOME/.cache/fieldsync/minio-*/minio); " +
	"build it with: go install github.com/minio/minio@" + Version +
	" and put it on PATH, or set FIELDSYNC_MINIO_BIN to its path")

// errPortInUse reports that MinIO could not bind a port picked for it.
var errPortInUse = errors.New("port already in use")

// Server is a running MinIO server. Connect with minio-go as
// minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")}).
type Server struct {
	// Endpoint is the S3 API address, "127.0.0.1:port".
	Endpoint string
	// AccessKey and SecretKey are the root credentials, random for each
	// server.
	AccessKey string
	SecretKey string

	bin, dir, console string // what run starts: the binary, data and console address

	cmd     *exec.Cmd
	output  *tail
	exited  chan struct{} // closed once the process has exited
	waitErr error         // the process's exit status, once exited is closed
	buckets atomic.Int64
	stopped atomic.Bool // Stop was called: the exit is expected
}

// Stop ends the server before its test does, as an outage would; later
// requests to Endpoint fail to connect. Stopping a Shared server would
// break the package's other tests: use Start for this.
func (s *Server) Stop() {
	s.stopped.Store(true)
	s.terminate()
}

// Start starts a MinIO server for tb and stops it when tb ends. It skips tb
// (or fails it when CI=true) if there is no MinIO binary.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := requireBinary(tb)
	s, err := launch(bin, tb.TempDir())
	if err != nil {
		tb.Fatalf("miniotest.Start: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("miniotest: %v", err)
		}
	})
	return s
}

// Shared is one MinIO server for all the tests of a package, started by the
// first test that asks for it. The zero value is ready to use:
//
//	var minioServer miniotest.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		if err := minioServer.Close(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			code = 1
//		}
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		srv := minioServer.Start(t)
//		bucket := srv.Bucket(t)
//		...
//	}
type Shared struct {
	once sync.Once
	dir  string
	srv  *Server
	err  error
}

// Start returns the shared server, starting it on first use. It skips tb
// (or fails it when CI=true) if there is no MinIO binary, and fails tb if
// the server could not be started.
func (sh *Shared) Start(tb testing.TB) *Server {
	tb.Helper()
	bin := requireBinary(tb)
	sh.once.Do(func() {
		sh.dir, sh.err = os.MkdirTemp("", "miniotest-")
		if sh.err == nil {
			sh.srv, sh.err = launch(bin, sh.dir)
		}
	})
	if sh.err != nil {
		tb.Fatalf("miniotest.Shared.Start: %v", sh.err)
	}
	return sh.srv
}

// Close stops the shared server, if it was started, and removes its data.
// It reports an error if the server had died during the tests.
func (sh *Shared) Close() error {
	var err error
	if sh.srv != nil {
		err = sh.srv.stop()
	}
	if sh.dir != "" {
		err = errors.Join(err, os.RemoveAll(sh.dir))
	}
	if err != nil {
		return fmt.Errorf("miniotest.Shared.Close: %w", err)
	}
	return nil
}

// Bucket returns a bucket name not used before on this server, derived from
// tb's name. It does not create the bucket.
func (s *Server) Bucket(tb testing.TB) string {
	tb.Helper()
	var b strings.Builder
	dash := false
	for _, c := range strings.ToLower(tb.Name()) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	name := strings.Trim(b.String(), "-")
	return "t-" + name + "-" + strconv.FormatInt(s.buckets.Add(1), 10)
}

// requireBinary returns the MinIO binary's path, or skips or fails tb.
func requireBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := findBinary()
	switch {
	case err == nil:
		return bin
	case errors.Is(err, errNoBinary):
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			tb.Fatalf("miniotest: CI=true and %v", err)
		}
		if _, ok := tb.(*testing.B); ok {
			// go test -bench prints a skipped benchmark's reason only
			// with -v; without it, a run would say nothing but PASS.
			fmt.Fprintf(os.Stderr, "%s: skipped: miniotest: %v\n", tb.Name(), err)
		}
		tb.Skipf("miniotest: skipping, %v", err)
	default:
		tb.Fatalf("miniotest: %v", err)
	}
	return ""
}

// findBinary looks for the MinIO binary where the package doc says.
func findBinary() (string, error) {
	if p := os.Getenv("FIELDSYNC_MINIO_BIN"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("FIELDSYNC_MINIO_BIN: %w", err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		matches, _ := filepath.Glob(filepath.Join(home, ".cache", "fieldsync", "minio-*", "minio"))
		for i := len(matches) - 1; i >= 0; i-- { // the newest version sorts last
			if isExecutable(matches[i]) == nil {
				return matches[i], nil
			}
		}
	}
	return "", errNoBinary
}

// isExecutable reports why p is not an executable file, if it is not.
func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// launch starts MinIO with data in dir and waits until it is ready,
// retrying with new ports if one was taken in the meantime.
func launch(bin, dir string) (*Server, error) {
	for attempt := 1; ; attempt++ {
		s, err := launchOnce(bin, dir)
		if errors.Is(err, errPortInUse) && attempt < maxAttempts {
			continue
		}
		return s, err
	}
}

func launchOnce(bin, dir string) (*Server, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint:  ports[0],
		AccessKey: rand.Text(),
		SecretKey: rand.Text(),
		bin:       bin,
		dir:       dir,
		console:   ports[1],
	}
	if err := s.run(); err != nil {
		return nil, err
	}
	return s, nil
}

// run starts the MinIO process and waits until it is ready.
func (s *Server) run() error {
	s.output = &tail{max: 16 << 10}
	s.exited = make(chan struct{})
	s.cmd = exec.Command(s.bin, "server", s.dir, "--address", s.Endpoint, "--console-address", s.console, "--quiet")
	s.cmd.Env = append(environWithout("MINIO_"),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_UPDATE=off",
	)
	s.cmd.Stdout = s.output
	s.cmd.Stderr = s.output
	s.cmd.SysProcAttr = sysProcAttr()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.bin, err)
	}
	cmd, exited := s.cmd, s.exited
	go func() {
		s.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := s.waitReady(); err != nil {
		s.terminate()
		return err
	}
	return nil
}

// Restart starts a server that Stop stopped again, on the same address,
// with the same data and credentials, as a MinIO back from an outage.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if !s.stopped.Load() {
		tb.Fatal("miniotest.Restart: the server was not stopped")
	}
	if err := s.run(); err != nil {
		tb.Fatalf("miniotest.Restart: %v", err)
	}
	s.stopped.Store(false)
}

// waitReady polls MinIO's liveness endpoint until it answers 200, the
// process exits, or readyTimeout passes.
//
// MinIO answers 200 there as soon as it listens, while its storage is still
// starting and S3 requests fail with "Server not initialized yet"; until
// then the answer carries "X-Minio-Server-Status: offline", so that answer
// does not count.
func (s *Server) waitReady() error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + s.Endpoint + "/minio/health/live"
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && resp.Header.Get("X-Minio-Server-Status") != "offline" {
				return nil
			}
		}
		select {
		case <-s.exited:
			out := s.output.String()
			if strings.Contains(out, "already in use") {
				return fmt.Errorf("minio exited early (%v): %w; output:\n%s", s.waitErr, errPortInUse, out)
			}
			return fmt.Errorf("minio exited early (%v); output:\n%s", s.waitErr, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("minio not ready at %s after %v; output:\n%s", url, readyTimeout, s.output.String())
		}
	}
}

// stop ends the server, reporting an error if it had already exited on its
// own.
func (s *Server) stop() error {
	if s.stopped.Load() {
		return nil
	}
	select {
	case <-s.exited:
		return fmt.Errorf("minio had exited on its own (%v); output:\n%s", s.waitErr, s.output.String())
	default:
	}
	s.terminate()
	return nil
}

// terminate ends the process by its own PID, if it is running: SIGTERM,
// then SIGKILL after stopTimeout. It returns once the process has exited.
func (s *Server) terminate() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM) // fails only if it has exited
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// freePorts returns n distinct "127.0.0.1:port" addresses that were free a
// moment ago.
func freePorts(n int) ([]string, error) {
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		defer l.Close() // held open until all are picked, so they differ
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// environWithout returns this process's environment without the variables
// whose names start with prefix, so that a developer's MinIO settings do not
// leak into the test server.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// tail keeps the last max bytes written to it. It is safe for concurrent use.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// String returns what was kept.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
