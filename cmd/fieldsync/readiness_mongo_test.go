package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/mongostore/mongotest"
)

// The disk under the Mongo-protocol store fills up while the server runs:
// the store still answers pings, but readiness says the record store
// cannot write, and once space is back it is ready again by itself.
func TestMongoReadinessProbesWrites(t *testing.T) {
	files := filepath.Join(t.TempDir(), "ferretdb")
	mountSmallFS(t, files, 32<<20)
	bed := mongotest.ForTestIn(t, files)
	p := startBinary(t, t.TempDir(), "FIELDSYNC_MONGO_URI="+bed.DirectURI()+"fieldsync_ready?maxPoolSize=1")
	api := servertest.Connect(t, "http://"+p.addr)
	require.Equal(t, http.StatusOK, api.Call(t, http.MethodGet, "/readyz", "", nil).Status)

	free := fill(t, filepath.Join(files, "filler"))
	var ready servertest.Response
	require.Eventually(t, func() bool {
		ready = api.Call(t, http.MethodGet, "/readyz", "", nil)
		return ready.Status != http.StatusOK
	}, 30*time.Second, 200*time.Millisecond, "not ready once the store cannot write")
	assert.Equal(t, http.StatusServiceUnavailable, ready.Status)
	var body struct{ Error schema.Error }
	require.NoError(t, json.Unmarshal(ready.Raw, &body))
	assert.Equal(t, schema.CodeUnavailable, body.Error.Code)
	assert.Contains(t, body.Error.Message, "the record store cannot write (records)", "readiness says why")

	free()
	require.Eventually(t, func() bool { return api.Call(t, http.MethodGet, "/readyz", "", nil).Status == http.StatusOK },
		30*time.Second, 200*time.Millisecond, "ready again by itself once space is back")
}
