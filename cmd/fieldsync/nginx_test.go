package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/deploy/nginxtest"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// startNginx runs deploy/nginx.conf, its upstreams pointed at addrs, on a
// loopback port, and returns its base URL.
func startNginx(t *testing.T, addrs ...string) string {
	t.Helper()
	return nginxtest.Start(t, "../../deploy/nginx.conf", addrs...)
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

	admin := client{api: servertest.Connect(t, base), token: sp.admin.token}
	for i := range 3 {
		id := fmt.Sprintf("c-n%d", i)
		r := admin.push(t, mutation("n-"+id, "customers", id, 0, map[string]any{"code": id, "name": "Shop", "territory_id": "t-2", "grade": "B"}))[0]
		require.Equal(t, schema.PushApplied, r.Status)
		ev, ok := st.Next(2 * time.Second)
		require.True(t, ok, "write %d comes through within 2 s", i)
		assert.Equal(t, "changes", ev.Name)
	}
}
