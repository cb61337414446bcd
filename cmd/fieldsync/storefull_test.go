package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// mountSmallFS mounts a tmpfs of size bytes at dir for the test. Where this
// machine does not let it (mounting needs root or CAP_SYS_ADMIN) the test
// fails under CI=true, whose machines run as root, and is skipped, saying
// why, elsewhere.
func mountSmallFS(t *testing.T, dir string, size int) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o700))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.Itoa(size), "tmpfs", dir).CombinedOutput()
	if err != nil && os.Getenv("CI") == "true" {
		t.Fatalf("cannot mount a small file system to fill (CI runs as root): %v: %s", err, out)
	}
	if err != nil {
		t.Skipf("cannot mount a small file system to fill (needs root or CAP_SYS_ADMIN): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// fill writes a file at path until the file system is full and returns a
// function that removes it.
func fill(t *testing.T, path string) (free func()) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, syscall.ENOSPC)
	require.NoError(t, f.Close())
	return func() { require.NoError(t, os.Remove(path)) }
}

// The disk under the embedded store fills up while the server runs:
// pushes are refused whole with 503 unavailable and Retry-After (none of
// their records written), readiness says the record store cannot write,
// reads go on, and once space is back readiness returns and the same push
// is applied whole, without a restart.
func TestRecordStoreDiskFull(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	mountSmallFS(t, data, 16<<20)
	p := startBinary(t, dir, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	api := servertest.Connect(t, "http://"+p.addr)
	c := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}
	require.Equal(t, schema.PushApplied, c.push(t, mutation("t", "territories", "t-1", 0, map[string]any{"name": "North", "region": "EU"}))[0].Status)

	// A batch large enough to need new pages whatever the WAL holds.
	var batch []map[string]any
	for i := range 200 {
		batch = append(batch, mutation(fmt.Sprintf("m-%d", i), "customers", fmt.Sprintf("c-%d", i), 0,
			map[string]any{"code": fmt.Sprintf("C%04d", i), "name": fmt.Sprintf("Outlet %d", i), "territory_id": "t-1", "grade": "B"}))
	}
	free := fill(t, filepath.Join(data, "filler"))

	refused := c.pushAny(t, batch)
	require.Equalf(t, http.StatusServiceUnavailable, refused.Status, "a push on a full disk: %s", refused.Raw)
	assert.NotEmpty(t, refused.Header.Get("Retry-After"), "503 carries Retry-After")
	var body struct{ Error schema.Error }
	require.NoError(t, json.Unmarshal(refused.Raw, &body))
	assert.Equal(t, schema.CodeUnavailable, body.Error.Code)

	ready := api.Call(t, http.MethodGet, "/readyz", "", nil)
	require.Equalf(t, http.StatusServiceUnavailable, ready.Status, "readiness on a full disk: %s", ready.Raw)
	require.NoError(t, json.Unmarshal(ready.Raw, &body))
	assert.Equal(t, schema.CodeUnavailable, body.Error.Code)
	assert.Contains(t, body.Error.Message, "the record store cannot write (records)", "readiness names the store")

	var page schema.PullResponse
	require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/pull", map[string]any{"checkpoint": ""}, &page), "reads go on while the disk is full")
	for _, ch := range page.Changes {
		assert.NotEqual(t, schema.Customers, ch.Collection, "nothing of a refused push is written: %s", ch.ID)
	}

	free()
	require.Eventually(t, func() bool { return c.get(t, "/readyz", nil) == http.StatusOK }, 30*time.Second, 200*time.Millisecond,
		"ready again by itself once space is back, before any write")
	var results []schema.PushResult
	require.Eventually(t, func() bool {
		a := c.pushAny(t, batch)
		if a.Status != http.StatusOK {
			return false
		}
		var out schema.PushResponse
		require.NoError(t, json.Unmarshal(a.Raw, &out))
		results = out.Results
		return true
	}, 30*time.Second, 200*time.Millisecond, "service resumes by itself once space is back\n%s", p.logs)
	require.Len(t, results, len(batch))
	for _, r := range results {
		assert.Equal(t, schema.PushApplied, r.Status, "%s: %+v", r.MutationID, r.Error)
	}
	page = schema.PullResponse{}
	require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/pull", map[string]any{"checkpoint": "", "limit": 1000}, &page))
	customers := 0
	for _, ch := range page.Changes {
		if ch.Collection == schema.Customers {
			customers++
		}
	}
	assert.Equal(t, len(batch), customers, "the batch is there once, whole")
	require.Equal(t, http.StatusOK, c.get(t, "/readyz", nil))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

// pushAny sends a push and returns the answer, whatever its status.
func (c client) pushAny(t *testing.T, mutations []map[string]any) servertest.Response {
	t.Helper()
	return c.api.Call(t, http.MethodPost, "/v1/sync/push", c.token, map[string]any{"device_id": "d", "mutations": mutations})
}
