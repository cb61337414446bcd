// Package nginxtest runs deploy/nginx.conf under the real nginx in tests:
// a copy of it whose upstreams are given loopback addresses, listening on a
// free loopback port, with its working files in a temporary folder.
package nginxtest

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

	"github.com/stretchr/testify/require"
)

// Binary returns the path of nginx. Under CI=true a missing nginx fails
// the test; otherwise the test is skipped, saying so.
func Binary(t testing.TB) string {
	t.Helper()
	if bin, err := exec.LookPath("nginx"); err == nil {
		return bin
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("nginx is not installed")
	}
	t.Skip("nginx is not installed: the nginx config is not tested")
	return ""
}

// Config is a runnable copy of an nginx config.
type Config struct {
	Dir  string // the prefix: working files and the config
	Path string // the config file
	Addr string // where it listens
}

// Args returns nginx's command line for the copy, extra arguments first.
func (c Config) Args(extra ...string) []string {
	return append(extra, "-p", c.Dir, "-c", c.Path, "-e", "stderr",
		"-g", "daemon off; master_process off; pid "+filepath.Join(c.Dir, "nginx.pid")+";")
}

// Write makes a runnable copy of the config at src, its upstream servers
// fieldsync-N:8080 replaced by upstreams.
func Write(t testing.TB, src string, upstreams ...string) Config {
	t.Helper()
	raw, err := os.ReadFile(src)
	require.NoError(t, err)
	conf := string(raw)
	var servers strings.Builder
	for _, a := range upstreams {
		fmt.Fprintf(&servers, "    server %s;\n", a)
	}
	named := regexp.MustCompile(`(?m)^\s*server fieldsync-\d+:8080[^\n]*\n`)
	require.Len(t, named.FindAllString(conf, -1), 2, "the config's upstreams")
	conf = named.ReplaceAllString(conf, "")
	require.Contains(t, conf, "upstream fieldsync {\n")
	conf = strings.Replace(conf, "upstream fieldsync {\n", "upstream fieldsync {\n"+servers.String(), 1)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	require.Contains(t, conf, "listen 8080;")
	conf = strings.Replace(conf, "listen 8080;", "listen "+addr+";", 1)

	dir := t.TempDir()
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "  %s_temp_path %s;\n", k, filepath.Join(dir, k))
	}
	require.Contains(t, conf, "http {\n")
	conf = strings.Replace(conf, "http {\n", "http {\n  access_log off;\n"+temps.String(), 1)
	path := filepath.Join(dir, "nginx.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o600))
	return Config{Dir: dir, Path: path, Addr: addr}
}

// Start runs the config at src with its upstreams at upstreams and returns
// its base URL once it proxies /healthz with a 200. nginx stops with the
// test.
func Start(t testing.TB, src string, upstreams ...string) string {
	t.Helper()
	bin := Binary(t)
	c := Write(t, src, upstreams...)
	cmd := exec.Command(bin, c.Args()...)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + c.Addr
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
