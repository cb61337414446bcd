// Package ts_test runs the tests of the TypeScript client, @fieldsync/client,
// against the fieldsync binary built here, and benchmarks its first sync
// beside the Go client's.
package ts_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// needNode returns the paths of node and npm. Without them the caller
// fails under CI=true and skips, saying so, elsewhere.
func needNode(tb testing.TB) {
	tb.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("the TypeScript client's tests need %s (apt-get install nodejs npm)", tool)
			}
			tb.Skipf("the TypeScript client's tests need %s, which this machine lacks", tool)
		}
	}
}

// buildServer builds the fieldsync binary into a temp dir.
func buildServer(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "fieldsync")
	out, err := exec.Command("go", "build", "-o", bin, "../../cmd/fieldsync").CombinedOutput()
	require.NoErrorf(tb, err, "go build: %s", out)
	return bin
}

// npmInstall runs npm ci when node_modules is missing or older than
// package-lock.json (npm ci writes node_modules/.package-lock.json).
func npmInstall(tb testing.TB) {
	tb.Helper()
	lock, err := os.Stat("package-lock.json")
	require.NoError(tb, err)
	if installed, err := os.Stat(filepath.Join("node_modules", ".package-lock.json")); err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return
	}
	out, err := exec.Command("npm", "ci", "--no-audit", "--no-fund").CombinedOutput()
	require.NoErrorf(tb, err, "npm ci: %s", out)
}

// TestTypeScriptClient runs `npm test`: the client's build, its type check
// and its Node tests against the real binary (SDK, RxDB, WatermelonDB).
func TestTypeScriptClient(t *testing.T) {
	needNode(t)
	bin := buildServer(t)
	npmInstall(t)
	cmd := exec.Command("npm", "test")
	cmd.Env = append(os.Environ(), "FIELDSYNC_BIN="+bin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil || testing.Verbose() {
		t.Log(out.String())
	}
	require.NoError(t, err, "npm test failed")
	require.Contains(t, out.String(), "# fail 0")
	require.Contains(t, out.String(), "# skipped 0", "no test of the client may be skipped")
	require.NotContains(t, out.String(), "# pass 0\n")
}

// BenchmarkFirstSync is a rep's first sync on a new phone (3,000
// customers, 30 route plans, 2,000 products) from the fieldsync binary:
// the Go client into its SQLite store, and in the same run the TypeScript
// client into MemoryStorage and RxDB's initial replication of the same
// records into its memory storage (bench/first-sync.ts, one Node process
// kept up between runs, as the Go client's runs share one process):
//
//	go test -run '^$' -bench FirstSync -benchtime 3x ./clients/ts/
func BenchmarkFirstSync(b *testing.B) {
	needNode(b)
	bin := buildServer(b)
	npmInstall(b)
	url := startBinary(b, bin)
	ctx := context.Background()
	_, err := seed.Run(ctx, io.Discard, seed.Config{URL: url, Admin: "admin", Password: "admin-password-1",
		UserPassword: repPassword, Territories: 1, RepsPerTerritory: 1, Customers: 3000, Products: 2000, PriceLists: 1, Days: 30, Seed: 1})
	require.NoError(b, err)
	user, pass := seed.RepName(1), repPassword

	goSync := func() time.Duration {
		start := time.Now()
		c, err := fieldsync.Open(ctx, fieldsync.Config{BaseURL: url, Username: user, Password: pass,
			DeviceID: "bench-go", StorePath: filepath.Join(b.TempDir(), "phone.db")})
		require.NoError(b, err)
		rep, err := c.Sync(ctx)
		require.NoError(b, err)
		took := time.Since(start)
		require.NoError(b, c.Close())
		require.Greater(b, rep.Pulled, 5000)
		return took
	}
	node := exec.Command("node", "--import", "tsx", "bench/first-sync.ts")
	node.Env = append(os.Environ(), "FIELDSYNC_URL="+url, "FIELDSYNC_USER="+user, "FIELDSYNC_PASSWORD="+pass)
	node.Stderr = os.Stderr
	stdin, err := node.StdinPipe()
	require.NoError(b, err)
	stdout, err := node.StdoutPipe()
	require.NoError(b, err)
	require.NoError(b, node.Start())
	b.Cleanup(func() { stdin.Close(); _ = node.Wait() })
	lines := bufio.NewScanner(stdout)
	tsSync := func() (clientMs, rxdbMs float64) {
		_, err := io.WriteString(stdin, "run\n")
		require.NoError(b, err)
		require.True(b, lines.Scan(), "bench/first-sync.ts ended: %v", lines.Err())
		var res struct {
			ClientMs, RxdbMs float64
			Pulled, Docs     int
		}
		require.NoError(b, json.Unmarshal(lines.Bytes(), &res))
		require.Greater(b, res.Pulled, 5000)
		require.Equal(b, res.Pulled, res.Docs, "RxDB holds every record pulled")
		return res.ClientMs, res.RxdbMs
	}
	// One untimed run of each warms the server's caches for this user and
	// the Node process, as an app that has started.
	goSync()
	tsSync()
	b.ResetTimer()
	var goTotal time.Duration
	var tsTotal, rxTotal float64
	for i := range b.N {
		// Alternate which goes first, so that neither always meets a
		// server just warmed (or just loaded) by the other.
		var g time.Duration
		var ts, rx float64
		if i%2 == 0 {
			g = goSync()
			ts, rx = tsSync()
		} else {
			ts, rx = tsSync()
			g = goSync()
		}
		goTotal += g
		tsTotal += ts
		rxTotal += rx
		b.Logf("run %d: go %d ms, ts %.0f ms, rxdb %.0f ms", i+1, g.Milliseconds(), ts, rx)
	}
	goMs := float64(goTotal.Milliseconds()) / float64(b.N)
	b.ReportMetric(goMs, "go-ms")
	b.ReportMetric(tsTotal/float64(b.N), "ts-ms")
	b.ReportMetric(rxTotal/float64(b.N), "rxdb-ms")
	b.ReportMetric(tsTotal/float64(b.N)/goMs, "ts/go")
}

// repPassword is the password the seeded users get.
const repPassword = "rep-password-1"

// startBinary runs fieldsync on a random loopback port in a temp dir and
// returns its address once it listens.
func startBinary(tb testing.TB, bin string) string {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "FIELDSYNC_ADDR=127.0.0.1:0",
		"FIELDSYNC_DATA_DIR=" + filepath.Join(dir, "data"), "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1",
		"FIELDSYNC_SYNC_RATE_DEVICE=-1", "FIELDSYNC_SYNC_RATE_USER=-1", "FIELDSYNC_PASSWORD_COST=" + strconv.Itoa(servertest.PasswordCost)}
	stdout, err := cmd.StdoutPipe()
	require.NoError(tb, err)
	require.NoError(tb, cmd.Start())
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &e) == nil && e.Msg == "listening" {
				addr <- e.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		tb.Fatal("fieldsync did not listen within 30 s")
		return ""
	}
}
