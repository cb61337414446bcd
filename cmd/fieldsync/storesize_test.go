package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// sizeLine is one line of fieldsync store-size.
type sizeLine struct {
	kind      string
	rows      int64
	bytes     int64
	perRecord string
}

// storeSize runs fieldsync store-size with args and returns its lines by name.
func storeSize(t *testing.T, dir string, args []string, env ...string) map[string]sizeLine {
	t.Helper()
	out, code := fieldsync(t, dir, "", append([]string{"store-size"}, args...), env...)
	require.Equal(t, 0, code, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Equal(t, []string{"NAME", "KIND", "ROWS", "BYTES", "BYTES/RECORD", "SHARE"}, strings.Fields(lines[0]))
	got := map[string]sizeLine{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if f[0] == "total" { // no kind
			f = append([]string{f[0], ""}, f[1:]...)
		}
		require.Len(t, f, 6, "line %q", l)
		rows, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err, l)
		bytes, err := strconv.ParseInt(f[3], 10, 64)
		require.NoError(t, err, l)
		got[f[0]] = sizeLine{kind: f[1], rows: rows, bytes: bytes, perRecord: f[4]}
	}
	return got
}

// adminEnv makes the server create the admin that pushTwo signs in as.
var adminEnv = []string{"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}

// pushTwo starts the server in dir with env, which holds adminEnv, signs in
// as the admin, pushes a territory and a customer, and stops the server.
func pushTwo(t *testing.T, dir string, env ...string) {
	t.Helper()
	p := startBinary(t, dir, env...)
	api := servertest.Connect(t, "http://"+p.addr)
	c := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}
	for _, r := range c.push(t,
		mutation("m-1", "territories", "t-1", 0, map[string]any{"name": "One", "region": "R"}),
		mutation("m-2", "customers", "c-1", 0, map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "A"})) {
		require.Equal(t, schema.PushApplied, r.Status, "%+v", r)
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

func TestStoreSizeCommand(t *testing.T) {
	dir := t.TempDir()
	empty := storeSize(t, dir, nil)
	assert.Equal(t, sizeLine{kind: "table", rows: 0, bytes: 4096, perRecord: "-"}, empty["records"], "one page, no records")

	pushTwo(t, dir, adminEnv...)
	got := storeSize(t, dir, []string{"--data-dir", "./data"})
	assert.Equal(t, int64(2), got["records"].rows, "records")
	assert.Equal(t, "index", got["sqlite_autoindex_records_1"].kind, "the (coll, id) index")
	assert.Equal(t, int64(2), got["sqlite_autoindex_records_1"].rows, "an index counts its table's rows")
	assert.Equal(t, int64(1), got["users"].rows, "the admin")
	assert.Equal(t, "free", got["free_pages"].kind)
	var sum int64
	for name, l := range got {
		if name != "total" {
			sum += l.bytes
		}
	}
	assert.Equal(t, sum, got["total"].bytes, "the total adds the lines up")
	assert.Equal(t, strconv.FormatFloat(float64(sum)/2, 'f', 1, 64), got["total"].perRecord, "bytes per record")
}

func TestStoreSizeCommandOnMongoDB(t *testing.T) {
	uri := ferretDatabase(t, "fieldsync_size")
	dir := t.TempDir()
	pushTwo(t, dir, append([]string{"FIELDSYNC_MONGO_URI=" + uri}, adminEnv...)...)
	got := storeSize(t, dir, []string{"--mongo-uri", uri})
	t.Logf("store-size on FerretDB: %+v", got)
	assert.Equal(t, sizeLine{kind: "table", rows: 2, bytes: got["records"].bytes, perRecord: got["records"].perRecord}, got["records"])
	assert.Positive(t, got["records"].bytes, "records")
	assert.Equal(t, "index", got["records._id_"].kind)
	assert.Equal(t, int64(1), got["users"].rows, "the admin")
}
