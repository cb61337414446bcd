package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// killedServer is the real fieldsync binary on one fixed address, killed
// with SIGKILL and started again on demand, with backups taken beside it.
type killedServer struct {
	bin, dir, addr string

	mu  gosync.Mutex
	cmd *exec.Cmd
}

// start runs the binary and waits until it answers /readyz.
func (k *killedServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(k.bin)
	cmd.Dir = k.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + k.dir, "FIELDSYNC_ADDR=" + k.addr,
		"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=" + adminPassword, "FIELDSYNC_LOG_LEVEL=warn",
		"FIELDSYNC_PASSWORD_COST=" + strconv.Itoa(servertest.PasswordCost)}
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	require.NoError(t, cmd.Start())
	k.mu.Lock()
	k.cmd = cmd
	k.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + k.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.Truef(t, time.Now().Before(deadline), "fieldsync did not come up: %v\n%s", err, logs.String())
		time.Sleep(50 * time.Millisecond)
	}
}

// lockedBuffer keeps a process's output while the test may read it.
type lockedBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// kill ends the binary with SIGKILL and reaps it.
func (k *killedServer) kill(t *testing.T) {
	t.Helper()
	k.mu.Lock()
	cmd := k.cmd
	k.mu.Unlock()
	require.NoError(t, cmd.Process.Kill())
	cmd.Wait()
}

// backup runs `fieldsync backup` into out; with killAfter > 0 it is killed
// with SIGKILL that long after it starts. It returns the command's error.
func (k *killedServer) backup(out string, killAfter time.Duration) error {
	cmd := exec.Command(k.bin, "backup", "-data-dir", filepath.Join(k.dir, "data"), "-out", out)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + k.dir}
	if err := cmd.Start(); err != nil {
		return err
	}
	if killAfter > 0 {
		t := time.AfterFunc(killAfter, func() { cmd.Process.Kill() })
		defer t.Stop()
	}
	return cmd.Wait()
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// The day runs against the real binary, which is killed with SIGKILL again
// and again while the reps' devices push and upload photos, with a backup
// killed midway beside it each time. Devices replay what went unanswered;
// the simulator's verification then finds every record once, as its device
// made it, every photo's bytes stored, and every replica equal to what the
// server lets its user read. A backup taken at the end restores.
func TestDaySurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and restarts the fieldsync binary many times; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "fieldsync")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/fieldsync/fieldsync/cmd/fieldsync").CombinedOutput()
	require.NoError(t, err, string(out))
	k := &killedServer{bin: bin, dir: dir, addr: freeAddr(t)}
	k.start(t)
	defer func() { k.kill(t) }()

	// After every other round of stops the server is killed a moment
	// later, while the devices go on to the next stop and push, with a
	// backup started beside it and killed midway.
	var (
		breaking      gosync.WaitGroup
		kills, halted int
	)
	rng := rand.New(rand.NewPCG(7, 7))
	cfg := Config{URL: "http://" + k.addr, Admin: "admin", Password: adminPassword, Reps: 3, Seed: 5,
		OfflineRate: 0.1, FaultRate: 0.1, Dir: filepath.Join(dir, "devices"),
		// Retries long enough to span a restart.
		Retry: fieldsync.RetryPolicy{MaxAttempts: 40, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second},
		Round: func(round int) {
			if round%2 == 1 {
				return
			}
			breaking.Wait() // the last restart is done
			after, backupAfter := time.Duration(rng.IntN(50))*time.Millisecond, time.Duration(rng.IntN(200))*time.Millisecond
			archive := filepath.Join(dir, fmt.Sprintf("killed-%d.tgz", round))
			breaking.Go(func() {
				time.Sleep(after)
				var backups gosync.WaitGroup
				backups.Go(func() {
					if k.backup(archive, backupAfter) != nil {
						halted++
					}
				})
				k.kill(t)
				kills++
				backups.Wait()
				k.start(t)
			})
		},
		Stops: func(working bool) {
			if !working {
				breaking.Wait()
			}
		}}
	require.NoError(t, os.MkdirAll(cfg.Dir, 0o700))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log bytes.Buffer
	res, err := Run(ctx, cfg, &log)
	breaking.Wait()
	t.Logf("%d kills of the server, %d backups killed midway\n%s", kills, halted, log.String())
	require.NoError(t, err, "the simulator's verification")
	assert.Positive(t, kills, "the server was killed while devices worked")
	assert.Positive(t, halted, "a backup was killed midway")
	assert.Positive(t, res.Created["photos"], "photos were uploaded")

	// A backup taken now is whole and restores.
	archive := filepath.Join(dir, "final.tgz")
	require.NoError(t, k.backup(archive, 0))
	restored := filepath.Join(dir, "restored")
	out, err = exec.Command(bin, "restore", "-in", archive, "-data-dir", restored).CombinedOutput()
	require.NoError(t, err, string(out))
}
