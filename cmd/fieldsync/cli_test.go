package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// fieldsync runs the binary in dir with args, stdin and env, and returns
// its combined output and exit code.
func fieldsync(t *testing.T, dir, stdin string, args []string, env ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil {
		require.ErrorAs(t, err, &exit, "%s", out)
		return string(out), exit.ExitCode()
	}
	return string(out), 0
}

func TestHelpSaysWhatEachCommandIs(t *testing.T) {
	for _, tc := range []struct {
		args      []string
		firstLine string
		defaults  []string
	}{
		{[]string{"-h"}, "fieldsync is the offline-first sync server for mobile field sales.",
			[]string{`--addr string`, `(default "127.0.0.1:8080")`, `(default "./data")`, `(default "fieldsync")`, "(default 30s)", "serve", "user", "health", "store-size"}},
		{[]string{"store-size", "-h"}, "fieldsync store-size shows, for each table (collection) and index of the", []string{`(default "./data")`}},
		{[]string{"--help"}, "fieldsync is the offline-first sync server for mobile field sales.", nil},
		{[]string{"serve", "-h"}, "Run the sync server (the default command)", []string{`(default "127.0.0.1:8080")`, "(default 500)"}},
		{[]string{"user", "-h"}, "fieldsync user creates users, resets passwords and lists users, working on", []string{"create", "set-password", "list"}},
		{[]string{"user", "create", "-h"}, "Create a user; its password is read from standard input", []string{`(default "rep")`, `(default "./data")`}},
		{[]string{"user", "set-password", "-h"}, "Set a user's password (read from standard input); ends its logins and lifts a sign-in lock", nil},
		{[]string{"user", "list", "-h"}, "List users, optionally by role, territory or active flag", nil},
		{[]string{"health", "-h"}, "fieldsync health asks a running server for /healthz (or --path, such as", []string{`(default "/healthz")`, "(default 3s)"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, code := fieldsync(t, t.TempDir(), "", tc.args, "FIELDSYNC_JWT_SECRET=do-not-show-this-secret-in-help-ever")
			assert.Equal(t, 0, code, "%s", out)
			first, _, _ := strings.Cut(out, "\n")
			assert.Equal(t, tc.firstLine, first)
			for _, want := range tc.defaults {
				assert.Contains(t, out, want)
			}
			assert.NotContains(t, out, "do-not-show-this-secret", "help shows built-in defaults, not the environment's values")
		})
	}
}

func TestUnknownCommandFails(t *testing.T) {
	out, code := fieldsync(t, t.TempDir(), "", []string{"bogus"})
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `fieldsync: unknown command "bogus"`)
	out, code = fieldsync(t, t.TempDir(), "", []string{"-addr", "127.0.0.1:0"})
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "long flags take two dashes, as in --addr")
	out, code = fieldsync(t, t.TempDir(), "", []string{"user", "list", "-role", "rep"})
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "long flags take two dashes", "subcommands too")
}

func TestFirstRunSaysHowToCreateAnAdmin(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, dir)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
	assert.Contains(t, p.logs.String(), "no user yet: create an admin with `fieldsync user create admin --role admin`")
	assert.Equal(t, 1, strings.Count(p.logs.String(), "no user yet"), "one line")

	// With a user, the hint is gone.
	out, code := fieldsync(t, dir, "admin-password-1\n", []string{"user", "create", "admin", "--role", "admin"})
	require.Equal(t, 0, code, out)
	p = startBinary(t, dir)
	login(t, servertest.Connect(t, "http://"+p.addr))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
	assert.NotContains(t, p.logs.String(), "no user yet")
}

func TestUserCommands(t *testing.T) {
	dir := t.TempDir()
	run := func(stdin string, args ...string) string {
		t.Helper()
		out, code := fieldsync(t, dir, stdin, args)
		require.Equal(t, 0, code, "fieldsync %v: %s", args, out)
		return out
	}
	fail := func(stdin string, args ...string) string {
		t.Helper()
		out, code := fieldsync(t, dir, stdin, args)
		require.Equal(t, 1, code, "fieldsync %v should fail: %s", args, out)
		return out
	}
	assert.Equal(t, "no users\n", run("", "user", "list"))
	assert.Contains(t, run("admin-password-1\n", "user", "create", "admin", "--role", "admin"), `created admin "admin"`)
	run("rita-password\n", "user", "create", "rita", "--role", "rep", "--territories", "t-north,t-south")
	run("max-password\n", "user", "create", "max", "--role", "manager", "--territories", "t-north")

	assert.Contains(t, fail("short\n", "user", "create", "bob"), "password must be 8 to 72 bytes long")
	assert.Contains(t, fail("", "user", "create", "bob"), "read the password from standard input")
	assert.Contains(t, fail("another-password\n", "user", "create", "rita"), `user "rita" exists; to change its password run: fieldsync user set-password rita`)
	assert.Contains(t, fail("x-password\n", "user", "create", "ann", "--role", "boss"), "role must be one of")
	assert.Contains(t, fail("x-password\n", "user", "set-password", "nobody"), `no user "nobody"`)
	assert.Contains(t, fail("", "user", "list", "--active", "maybe"), "--active must be true or false")

	all := run("", "user", "list")
	for _, name := range []string{"admin", "rita", "max"} {
		assert.Contains(t, all, "\n"+name+" ")
	}
	reps := run("", "user", "list", "--role", "rep")
	assert.Contains(t, reps, "rita")
	assert.NotContains(t, reps, "max")
	north := run("", "user", "list", "--territory", "t-south")
	assert.Contains(t, north, "rita")
	assert.NotContains(t, north, "max")
	assert.Equal(t, "no users\n", run("", "user", "list", "--active", "false"))

	// Passwords are hashed at the default cost unless told otherwise.
	out, code := fieldsync(t, dir, "cora-password\n", []string{"user", "create", "cora"}, "FIELDSYNC_PASSWORD_COST=5")
	require.Equal(t, 0, code, out)
	assert.Contains(t, fail("x-password\n", "user", "create", "dan", "--password-cost", "3"), "password cost 3 is outside bcrypt's 4 to 31")
	store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "data", "fieldsync.db"))
	require.NoError(t, err)
	for name, cost := range map[string]int{"rita": bcrypt.DefaultCost, "cora": 5} {
		u, err := store.UserByName(context.Background(), name)
		require.NoError(t, err)
		got, err := bcrypt.Cost([]byte(u.PasswordHash))
		require.NoError(t, err)
		assert.Equal(t, cost, got, "cost of %s's password", name)
	}
	require.NoError(t, store.Close())

	// A lost admin password is reset from the shell, and the data stays.
	p := startBinary(t, dir)
	api := servertest.Connect(t, "http://"+p.addr)
	admin := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}
	assert.Contains(t, run("a-new-password\n", "user", "set-password", "admin"), `password of "admin" set`)
	assert.Equal(t, http.StatusUnauthorized, admin.post(t, "/v1/auth/logout", nil, nil), "the earlier login ended")
	signIn(t, api, "admin", "a-new-password")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

func TestAdminFromTheEnvironmentNeedsAValidPassword(t *testing.T) {
	for name, tc := range map[string]struct {
		env  []string
		want string
	}{
		"no password":   {[]string{"FIELDSYNC_ADMIN_USER=admin"}, "FIELDSYNC_ADMIN_USER is set without FIELDSYNC_ADMIN_PASSWORD"},
		"short":         {[]string{"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=short"}, "password must be 8 to 72 bytes long"},
		"no user":       {[]string{"FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}, "FIELDSYNC_ADMIN_PASSWORD is set without FIELDSYNC_ADMIN_USER"},
		"bad user name": {[]string{"FIELDSYNC_ADMIN_USER=a b", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}, "username must be"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			out, code := fieldsync(t, dir, "", nil, append(tc.env, "FIELDSYNC_ADDR=127.0.0.1:0")...)
			assert.Equal(t, 1, code)
			assert.Contains(t, out, tc.want)
			out, _ = fieldsync(t, dir, "", []string{"user", "list"})
			assert.Equal(t, "no users\n", out, "no admin was written")
		})
	}
}

func TestTakenPortFailsInOneLineAndWritesNoAdmin(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	dir := t.TempDir()
	out, code := fieldsync(t, dir, "", nil, "FIELDSYNC_ADDR="+ln.Addr().String(),
		"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "fieldsync: "+ln.Addr().String()+" is already in use, perhaps by another fieldsync: stop it, or listen elsewhere with --addr or FIELDSYNC_ADDR\n")
	assert.NotContains(t, out, `"msg":"listening"`)
	out, _ = fieldsync(t, dir, "", []string{"user", "list"})
	assert.Equal(t, "no users\n", out, "the admin is written only after the listener binds")
}

func TestEnvironmentSettingsAreChecked(t *testing.T) {
	out, code := fieldsync(t, t.TempDir(), "", nil, "FIELDSYNC_ADDR=127.0.0.1:0", "FIELDSYNC_S3_SECURE=yes please")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, `fieldsync: FIELDSYNC_S3_SECURE="yes please"`)
	out, code = fieldsync(t, t.TempDir(), "", nil, "FIELDSYNC_ADDR=127.0.0.1:0", "FIELDSYNC_PASSWORD_COST=32")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "password cost 32 is outside bcrypt's 4 to 31")
}

func TestHealthCommand(t *testing.T) {
	dir := t.TempDir()
	p := startBinary(t, dir)
	out, code := fieldsync(t, dir, "", []string{"health", "--addr", p.addr})
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "ok\n", out)
	_, port, err := net.SplitHostPort(p.addr)
	require.NoError(t, err)
	out, code = fieldsync(t, dir, "", []string{"health", "--path", "/readyz"}, "FIELDSYNC_ADDR=0.0.0.0:"+port)
	assert.Equal(t, 0, code, "a wildcard listen address is probed on loopback: %s", out)
	out, code = fieldsync(t, dir, "", []string{"health", "--addr", p.addr, "--path", "/nowhere"})
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "404")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
	out, code = fieldsync(t, dir, "", []string{"health", "--addr", p.addr})
	assert.Equal(t, 1, code, "nothing listens any more")
	assert.Contains(t, out, "fieldsync: health:")
}
