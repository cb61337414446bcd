package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

// startFerretDB runs an embedded FerretDB on a loopback port for one test
// and returns its MongoDB URI.
func startFerretDB(t *testing.T) string {
	t.Helper()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + t.TempDir() + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return f.MongoDBURI()
}

// The binary runs on MongoDB when FIELDSYNC_MONGO_URI is set, and what it
// wrote is there after a restart.
func TestRunsOnMongoDB(t *testing.T) {
	uri := strings.TrimSuffix(startFerretDB(t), "/") + "/fieldsync_e2e?maxPoolSize=1"
	dir := t.TempDir()
	env := []string{"FIELDSYNC_MONGO_URI=" + uri, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}
	p := startBinary(t, dir, env...)
	base := "http://" + p.addr
	c := client{base: base, token: signIn(t, base, "admin", "admin-password-1")}
	for _, r := range c.push(t,
		mutation("m-1", "territories", "t-1", 0, map[string]any{"name": "One", "region": "R"}),
		mutation("m-2", "customers", "c-1", 0, map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "A"})) {
		require.Equal(t, schema.PushApplied, r.Status, "%+v", r)
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))

	p = startBinary(t, dir, env...)
	base = "http://" + p.addr
	c = client{base: base, token: signIn(t, base, "admin", "admin-password-1")}
	var out schema.PullResponse
	require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/pull", map[string]any{"checkpoint": ""}, &out))
	var ids []string
	for _, ch := range out.Changes {
		ids = append(ids, string(ch.Collection)+"/"+ch.ID)
	}
	assert.ElementsMatch(t, []string{"territories/t-1", "customers/c-1"}, ids)
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}
