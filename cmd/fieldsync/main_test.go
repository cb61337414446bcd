package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server/servertest"
)

// binary is the fieldsync command built once for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fieldsync-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fieldsync")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build fieldsync: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running fieldsync binary.
type process struct {
	cmd  *exec.Cmd
	addr string
	done chan error
	// exited is closed once the process has been waited for.
	exited chan struct{}
	logs   *lockedLog
}

// lockedLog is a process's output, written as it comes and read by tests.
type lockedLog struct {
	mu gosync.Mutex
	b  strings.Builder
}

func (l *lockedLog) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startBinary runs fieldsync in dir with env on a random loopback port and
// waits until it listens.
func startBinary(t testing.TB, dir string, env ...string) *process {
	t.Helper()
	return startBinaryWith(t, dir, nil, env...)
}

// startBinaryWith is startBinary with command-line arguments.
func startBinaryWith(t testing.TB, dir string, args []string, env ...string) *process {
	t.Helper()
	return startProgram(t, binary, dir, args, env...)
}

// startProgram is startBinaryWith for a build of fieldsync at bin.
func startProgram(t testing.TB, bin, dir string, args []string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	// Passwords are hashed at the least cost, as servertest's are.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "FIELDSYNC_ADDR=127.0.0.1:0",
		"FIELDSYNC_PASSWORD_COST=" + strconv.Itoa(servertest.PasswordCost)}, env...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, done: make(chan error, 1), exited: make(chan struct{}), logs: &lockedLog{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			var entry struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "listening" {
				addr <- entry.Addr
			}
		}
		err := cmd.Wait()
		close(p.exited)
		p.done <- err
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			cmd.Process.Kill()
		}
	})
	select {
	case p.addr = <-addr:
	case err := <-p.done:
		t.Fatalf("fieldsync exited before listening: %v\n%s", err, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("fieldsync did not listen within 30s\n%s", p.logs)
	}
	return p
}

func (p *process) wait(t testing.TB) error {
	t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		// SIGQUIT makes the Go runtime print every goroutine's stack.
		p.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
		t.Fatalf("fieldsync did not exit within 30s; its output and stacks:\n%s", p.logs)
		return nil
	}
}

func TestEmbeddedDefaultsAndDrainOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, dir, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	base := "http://" + p.addr

	assert.Equal(t, http.StatusOK, servertest.Connect(t, base).Call(t, http.MethodGet, "/readyz", "", nil).Status)
	assert.FileExists(t, filepath.Join(dir, "data/fieldsync.db"), "the embedded store")
	assert.FileExists(t, filepath.Join(dir, "data/jwt.secret"), "the generated secret")
	assert.DirExists(t, filepath.Join(dir, "data/photos"), "the local photo folder")
	st, err := os.Stat(filepath.Join(dir, "data/jwt.secret"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the generated secret is private")

	// A request whose body is still arriving when SIGTERM comes must finish:
	// raw bytes on a socket, which no HTTP client sends in two halves.
	conn, err := net.Dial("tcp", p.addr)
	require.NoError(t, err)
	defer conn.Close()
	body := `{"username":"admin","password":"admin-password-1","device_id":"d-1"}`
	fmt.Fprintf(conn, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(300 * time.Millisecond)
	_, err = io.WriteString(conn, body[10:])
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the in-flight request is answered")
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	assert.NoError(t, p.wait(t), "exit status 0 after draining\n%s", p.logs)
	assert.Contains(t, p.logs.String(), `"msg":"stopped"`)
	assert.NotContains(t, p.logs.String(), "admin-password-1", "secrets never reach logs")

	_, err = http.Get(base + "/healthz") // by hand: a refused connection is the answer expected
	assert.Error(t, err, "no longer listening")
}

func TestRestartKeepsUsersAndSecret(t *testing.T) {
	dir := t.TempDir()
	env := []string{"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}
	p := startBinary(t, dir, env...)
	token := login(t, servertest.Connect(t, "http://"+p.addr))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))

	p = startBinary(t, dir, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=another-password")
	api := servertest.Connect(t, "http://"+p.addr)
	logout := client{api: api, token: token}.post(t, "/v1/auth/logout", nil, nil)
	assert.Equal(t, http.StatusNoContent, logout, "a token from before the restart still verifies")
	login(t, api) // the first admin keeps its first password
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

func TestBadSettingsFailClearly(t *testing.T) {
	for name, env := range map[string][]string{
		"short secret":  {"FIELDSYNC_JWT_SECRET=short"},
		"bad log level": {"FIELDSYNC_LOG_LEVEL=loud"},
		"weak admin":    {"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=x"},
		"s3 secure yes": {"FIELDSYNC_S3_SECURE=yes"},
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(binary)
			cmd.Dir = t.TempDir()
			cmd.Env = append([]string{"FIELDSYNC_ADDR=127.0.0.1:0"}, env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			assert.Equal(t, 1, exit.ExitCode())
			assert.Contains(t, string(out), "fieldsync:")
		})
	}
}

// login signs the admin in with its first password.
func login(t *testing.T, api *servertest.Client) string {
	t.Helper()
	return api.Login(t, "admin", "admin-password-1", "d-1").Access
}

func TestPushLimitsAreSettings(t *testing.T) {
	p := startBinaryWith(t, t.TempDir(), []string{"--push-max-mutations", "2", "--push-max-bytes", "1000"},
		"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	api := servertest.Connect(t, "http://"+p.addr)
	c := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}
	territory := func(n int) map[string]any {
		return mutation(fmt.Sprintf("m-%d", n), "territories", fmt.Sprintf("t-%d", n), 0, map[string]any{"name": "T", "region": "R"})
	}
	assert.Len(t, c.push(t, territory(1), territory(2)), 2, "within the limits")
	var out map[string]any
	status := c.post(t, "/v1/sync/push", map[string]any{"mutations": []any{territory(3), territory(4), territory(5)}}, &out)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status, "three mutations are one too many")
	status = c.post(t, "/v1/sync/push", map[string]any{"mutations": []any{territory(6)}, "pad": strings.Repeat(" ", 1000)}, &out)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status, "over the byte limit")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

func TestAtLeastTwoPsUnlessGOMAXPROCSSaysOtherwise(t *testing.T) {
	for _, tc := range []struct {
		name          string
		current, want int
		setting       string
	}{
		{"one core", 1, 2, ""},
		{"two cores", 2, 2, ""},
		{"eight cores", 8, 8, ""},
		{"GOMAXPROCS=1 is kept", 1, 1, "1"},
		{"GOMAXPROCS=4 is kept", 4, 4, "4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, procs(tc.current, tc.setting))
		})
	}
}
