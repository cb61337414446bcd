package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// startNginx runs deploy/nginx.conf, its upstreams pointed at addrs, on a
// loopback port, and returns its base URL. Outside CI it skips when nginx
// is not installed.
func startNginx(t *testing.T, addrs ...string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, statErr := os.Stat(p); statErr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nginx is not installed")
		}
		t.Skip("nginx is not installed: the deploy config is not tested")
	}
	raw, err := os.ReadFile("../../deploy/nginx.conf")
	require.NoError(t, err)
	conf := string(raw)
	var upstreams strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&upstreams, "    server %s;\n", a)
	}
	servers := regexp.MustCompile(`(?m)^\s*server fieldsync-\d+:8080[^\n]*\n`)
	require.Len(t, servers.FindAllString(conf, -1), 2, "the config's upstreams")
	conf = servers.ReplaceAllString(conf, "")
	conf = strings.Replace(conf, "upstream fieldsync {\n", "upstream fieldsync {\n"+upstreams.String(), 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	require.Contains(t, conf, "listen 8080;")
	conf = strings.Replace(conf, "listen 8080;", "listen "+addr+";", 1)
	dir := t.TempDir()
	temps := ""
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		temps += fmt.Sprintf("  %s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	conf = strings.Replace(conf, "http {\n", "http {\n  access_log off;\n"+temps, 1)
	path := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	cmd := exec.Command(bin, "-p", dir, "-c", path, "-g", "daemon off; master_process off; pid "+filepath.Join(dir, "nginx.pid")+"; error_log stderr;")
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	base := "http://" + addr
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("nginx did not answer: %v\n%s", err, out)
		}
	}
}

// The stream passes through deploy/nginx.conf as it comes: ready at once,
// and a write through the proxy reaches it, whichever instance each lands
// on.
func TestStreamThroughNginx(t *testing.T) {
	sp := startStreamPair(t)
	base := startNginx(t, sp.procs[0].addr, sp.procs[1].addr)

	st := servertest.OpenStream(t, base, sp.rep2, "")
	require.Equal(t, http.StatusOK, st.Status, st.Body)
	ev, ok := st.Next(2 * time.Second)
	require.True(t, ok, "ready comes through at once, not buffered")
	require.Equal(t, "ready", ev.Name)
	settle(st)

	admin := client{base: base, token: sp.admin.token}
	for i := range 3 {
		id := fmt.Sprintf("c-n%d", i)
		r := admin.push(t, mutation("n-"+id, "customers", id, 0, map[string]any{"code": id, "name": "Shop", "territory_id": "t-2", "grade": "B"}))[0]
		require.Equal(t, schema.PushApplied, r.Status)
		ev, ok := st.Next(2 * time.Second)
		require.True(t, ok, "write %d comes through within 2 s", i)
		assert.Equal(t, "changes", ev.Name)
	}
}
