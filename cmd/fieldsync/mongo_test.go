package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/mongostore/mongotest"
)

// ferretDatabase starts a FerretDB test bed for one test and returns the
// URI of a database on FerretDB itself, for clients of one connection
// (FerretDB's guarded updates are not atomic when they run concurrently;
// sharedMongoURI is for clients with normal pools).
func ferretDatabase(t *testing.T, database string) string {
	t.Helper()
	return mongotest.ForTest(t).DirectURI() + database + "?maxPoolSize=1"
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
	return mongotest.ForTest(t).URI()
}

// freshMongoDatabase names a database no other test uses.
func freshMongoDatabase(prefix string) string {
	return fmt.Sprintf("%s_%x", prefix, time.Now().UnixNano())
}

// A record store that is down answers 503 unavailable with Retry-After on
// every endpoint that needs it, never 500.
func TestRecordStoreOutage(t *testing.T) {
	ferret := mongotest.ForTest(t)
	uri := ferret.DirectURI() + "fieldsync_outage?maxPoolSize=1&serverSelectionTimeoutMS=1000&connectTimeoutMS=1000"
	p := startBinary(t, t.TempDir(), "FIELDSYNC_MONGO_URI="+uri, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	api := servertest.Connect(t, "http://"+p.addr)
	admin := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}

	require.NoError(t, ferret.Close())
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
			resp := api.Call(t, tc.method, tc.path, admin.token, tc.body)
			assert.Equal(t, http.StatusServiceUnavailable, resp.Status, "%s", resp.Raw)
			assert.Equal(t, "5", resp.Header.Get("Retry-After"))
			assert.Equal(t, schema.CodeUnavailable, resp.ErrorCode())
		})
	}
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}

// The binary runs on MongoDB when FIELDSYNC_MONGO_URI is set, and what it
// wrote is there after a restart.
func TestRunsOnMongoDB(t *testing.T) {
	uri := ferretDatabase(t, "fieldsync_e2e")
	dir := t.TempDir()
	env := []string{"FIELDSYNC_MONGO_URI=" + uri, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}
	pushTwo(t, dir, env...)

	p := startBinary(t, dir, env...)
	api := servertest.Connect(t, "http://"+p.addr)
	c := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}
	var out schema.PullResponse
	require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/pull", map[string]any{"checkpoint": ""}, &out))
	var ids []string
	for _, ch := range out.Changes {
		ids = append(ids, string(ch.Collection)+"/"+ch.ID)
	}
	assert.ElementsMatch(t, []string{"territories/t-1", "customers/c-1"}, ids)
	assert.Equal(t, http.StatusOK, c.get(t, "/readyz", nil))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.wait(t))
}
