package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/mongostore/mongotest"
)

// startFerretDB runs an embedded FerretDB on a loopback port for one test
// and returns its MongoDB URI.
func startFerretDB(t *testing.T) string {
	uri, _ := startStoppableFerretDB(t)
	return uri
}

// startStoppableFerretDB is startFerretDB that also returns a function
// that stops FerretDB before the test ends, as an outage would.
func startStoppableFerretDB(t *testing.T) (uri string, stop func()) {
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
	var once gosync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-stopped
		})
	}
	t.Cleanup(stop)
	return f.MongoDBURI(), stop
}

// sharedMongoURI returns, ending in "/", the URI of a Mongo-protocol store
// that several processes with normal pools may share: the MongoDB at
// FIELDSYNC_TEST_MONGO_URI when set, else a test bed started for the test
// (FerretDB behind a proxy that runs one command at a time).
func sharedMongoURI(t *testing.T) string {
	t.Helper()
	if uri := os.Getenv("FIELDSYNC_TEST_MONGO_URI"); uri != "" {
		return strings.TrimSuffix(uri, "/") + "/"
	}
	bed, err := mongotest.Start(context.Background(), mongotest.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { bed.Close() })
	return bed.URI()
}

// freshMongoDatabase names a database no other test uses.
func freshMongoDatabase(prefix string) string {
	return fmt.Sprintf("%s_%x", prefix, time.Now().UnixNano())
}

// A record store that is down answers 503 unavailable with Retry-After on
// every endpoint that needs it, never 500.
func TestRecordStoreOutage(t *testing.T) {
	uri, stop := startStoppableFerretDB(t)
	uri = strings.TrimSuffix(uri, "/") + "/fieldsync_outage?maxPoolSize=1&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
	p := startBinary(t, t.TempDir(), "FIELDSYNC_MONGO_URI="+uri, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	base := "http://" + p.addr
	token := signIn(t, base, "admin", "admin-password-1")

	stop()
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/auth/login", `{"username":"admin","password":"admin-password-1","device_id":"d-2"}`},
		{"POST", "/v1/sync/push", `{"device_id":"d","mutations":[{"mutation_id":"m-1","collection":"territories","id":"t-1","op":"upsert","base_version":0,"data":{"name":"One","region":"R"}}]}`},
		{"POST", "/v1/sync/pull", `{"checkpoint":""}`},
		{"GET", "/v1/admin/users", ""},
		{"POST", "/v1/admin/users", `{"username":"rita","password":"rita-password","role":"rep"}`},
		{"GET", "/v1/reports/unvisited?days=30", ""},
		{"GET", "/v1/reports/coverage?from=2026-11-01&to=2026-11-30", ""},
		{"GET", "/readyz", ""},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", raw)
			assert.Equal(t, "5", resp.Header.Get("Retry-After"))
			assert.Contains(t, string(raw), `"code":"unavailable"`)
		})
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

// The binary runs on MongoDB when FIELDSYNC_MONGO_URI is set, and what it
// wrote is there after a restart.
func TestRunsOnMongoDB(t *testing.T) {
	uri := strings.TrimSuffix(startFerretDB(t), "/") + "/fieldsync_e2e?maxPoolSize=1"
	dir := t.TempDir()
	env := []string{"FIELDSYNC_MONGO_URI=" + uri, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}
	pushTwo(t, dir, env...)

	p := startBinary(t, dir, env...)
	base := "http://" + p.addr
	c := client{base: base, token: signIn(t, base, "admin", "admin-password-1")}
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
