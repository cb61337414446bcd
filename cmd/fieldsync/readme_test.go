package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReadmeQuickstart runs the README's quickstart as a new user would
// paste it, in a copy of the tree, changing only the port it listens on:
// once, again in the same clone, and with its port taken.
func TestReadmeQuickstart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the README's quickstart needs %s", tool)
			}
			t.Skipf("the README's quickstart needs %s, which this machine lacks", tool)
		}
	}
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "<!-- quickstart:begin -->")
	require.True(t, ok, "the README marks its quickstart")
	block, _, ok := strings.Cut(rest, "<!-- quickstart:end -->")
	require.True(t, ok)
	script := strings.TrimSpace(block)
	script = strings.TrimSuffix(strings.TrimPrefix(script, "```sh"), "```")

	dir := copyTree(t, root)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	script = strings.ReplaceAll(script, "127.0.0.1:8080", addr)
	paste := func(t *testing.T) (string, error) {
		t.Helper()
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "FIELDSYNC_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Answers that are the same on every run: a replayed push is answered
	// as the first time.
	every := []string{
		`{"results":[{"mutation_id":"m-1","status":"applied","version":1},{"mutation_id":"m-2","status":"applied","version":1}]}`,
		`{"results":[{"mutation_id":"m-3","status":"applied","version":2}]}`,
		`"mutation_id":"m-4","status":"merged","version":3`,
		`"notes":"Deliveries by the back door"`,
		`"mutation_id":"m-5","status":"conflict"`,
		`{"results":[{"mutation_id":"m-6","status":"applied","version":1}]}`,
		`{"results":[{"mutation_id":"r-1","status":"applied","version":1},{"mutation_id":"r-2","status":"applied","version":1}]}`,
		`"planned_stops":1,"visited_stops":1,"coverage":1,"unplanned_visits":0,"visits":1,"orders":0,"strike_rate":0,"geofence_compliance":1`,
		`{"customers":[],"days":30}`,
		`"id":"ph-1","version":2`,
		`"uploaded":true`,
		`"exif_taken_at":"2026-11-23T09:05:00Z"`,
		"same bytes back",
	}
	stoppedCleanly := func(t *testing.T) {
		t.Helper()
		logs, err := os.ReadFile(filepath.Join(dir, "fieldsync.log"))
		require.NoError(t, err)
		assert.Contains(t, string(logs), `"msg":"stopped"`, "the server was stopped cleanly")
	}

	t.Run("first paste", func(t *testing.T) {
		text, err := paste(t)
		require.NoError(t, err, "%s", text)
		for _, want := range append(every,
			`"collection":"customers","id":"c-17","version":1`,
			`"has_more":false`,
			"HTTP/1.1 404 Not Found",
			`"created":true`,
		) {
			assert.Contains(t, text, want)
		}
		assert.NotContains(t, text, `"error"`, "no step failed")
		stoppedCleanly(t)
	})
	t.Run("second paste in the same clone", func(t *testing.T) {
		text, err := paste(t)
		require.NoError(t, err, "%s", text)
		for _, want := range append(every,
			"HTTP/1.1 200 OK",
			`"created":false`,
		) {
			assert.Contains(t, text, want)
		}
		assert.NotContains(t, text, `"error"`, "no step failed")
		stoppedCleanly(t)
	})
	t.Run("port taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", addr)
		require.NoError(t, err)
		defer ln.Close()
		text, err := paste(t)
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "the quickstart fails: %s", text)
		assert.Equal(t, "quickstart: fieldsync did not start: fieldsync: "+addr+
			" is already in use, perhaps by another fieldsync: stop it, or listen elsewhere with --addr or FIELDSYNC_ADDR\n", text,
			"one line says why, and no step runs against another server")
	})
}

// copyTree copies the files git tracks (or, outside git, the Go sources
// and module files) into a temp dir.
func copyTree(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	out, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	require.NoError(t, err)
	for _, rel := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		src := filepath.Join(root, rel)
		data, err := os.ReadFile(src)
		if os.IsNotExist(err) {
			continue // deleted in the work tree
		}
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, rel), data, 0o644))
	}
	return dst
}
