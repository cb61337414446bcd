package main

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// streamPair is two fieldsync processes on one data dir, with two
// territories, a customer in each and a rep for each.
type streamPair struct {
	procs       []*process
	bases       []string
	apis        []*servertest.Client // checked clients of the processes at bases
	admin       client
	rep1, rep2  string // access tokens
	adminTokens []string
}

func startStreamPair(t *testing.T, args ...string) *streamPair {
	t.Helper()
	return startStreamPairOn(t, nil, args...)
}

// startStreamPairOn is startStreamPair with more environment, such as a
// shared MongoDB.
func startStreamPairOn(t *testing.T, extra []string, args ...string) *streamPair {
	t.Helper()
	dir := t.TempDir()
	env := append([]string{"FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}, extra...)
	sp := &streamPair{}
	for range 2 {
		p := startBinaryWith(t, dir, args, env...)
		sp.procs = append(sp.procs, p)
		sp.bases = append(sp.bases, "http://"+p.addr)
		sp.apis = append(sp.apis, servertest.Connect(t, "http://"+p.addr))
	}
	sp.admin = client{api: sp.apis[0], token: signIn(t, sp.apis[0], "admin", "admin-password-1")}
	for name, territory := range map[string]string{"rep1": "t-1", "rep2": "t-2"} {
		status := sp.admin.post(t, "/v1/admin/users", map[string]any{"username": name, "password": name + "-password", "role": "rep", "territories": []string{territory}}, nil)
		require.Equal(t, http.StatusCreated, status)
	}
	for _, r := range sp.admin.push(t,
		mutation("s-1", "territories", "t-1", 0, map[string]any{"name": "One", "region": "R"}),
		mutation("s-2", "territories", "t-2", 0, map[string]any{"name": "Two", "region": "R"}),
		mutation("s-3", "customers", "c-1", 0, map[string]any{"code": "C1", "name": "Shop 1", "territory_id": "t-1", "grade": "A"}),
		mutation("s-4", "customers", "c-2", 0, map[string]any{"code": "C2", "name": "Shop 2", "territory_id": "t-2", "grade": "A"})) {
		require.Equal(t, schema.PushApplied, r.Status)
	}
	sp.rep1 = signIn(t, sp.apis[0], "rep1", "rep1-password")
	sp.rep2 = signIn(t, sp.apis[1], "rep2", "rep2-password")
	return sp
}

// open opens a stream and waits for ready and for the watcher to have
// passed the writes made before it.
func open(t *testing.T, base, token string) *servertest.Stream {
	t.Helper()
	st := servertest.OpenStream(t, base, token, "")
	require.Equal(t, http.StatusOK, st.Status, st.Body)
	ev, ok := st.Next(5 * time.Second)
	require.True(t, ok)
	require.Equal(t, "ready", ev.Name)
	return st
}

func settle(streams ...*servertest.Stream) {
	time.Sleep(1500 * time.Millisecond) // three polls
	for _, st := range streams {
		st.Drain()
	}
}

// A subscriber on one process hears of a write made through the other
// within 2 s; a subscriber in another territory hears nothing.
func TestStreamAcrossTwoProcessesOnOneSQLiteFile(t *testing.T) {
	testStreamAcrossProcesses(t, startStreamPair(t))
}

// The same on one MongoDB (FerretDB, one connection per process: the
// writes here come one at a time, which FerretDB keeps atomic).
func TestStreamAcrossTwoProcessesOnMongoDB(t *testing.T) {
	uri := ferretDatabase(t, "fieldsync_stream")
	testStreamAcrossProcesses(t, startStreamPairOn(t, []string{"FIELDSYNC_MONGO_URI=" + uri}))
}

func testStreamAcrossProcesses(t *testing.T, sp *streamPair) {
	rep2 := open(t, sp.bases[0], sp.rep2) // on the process the write does not go through
	rep1 := open(t, sp.bases[0], sp.rep1)
	settle(rep1, rep2)

	other := client{api: sp.apis[1], token: sp.admin.token}
	for i, id := range []string{"c-3", "c-4", "c-5"} {
		start := time.Now()
		r := other.push(t, mutation("w-"+id, "customers", id, 0, map[string]any{"code": id, "name": "Shop", "territory_id": "t-2", "grade": "B"}))[0]
		require.Equal(t, schema.PushApplied, r.Status)
		ev, ok := rep2.Next(2 * time.Second)
		require.True(t, ok, "write %d: rep2 hears of it within 2 s", i)
		assert.Equal(t, "changes", ev.Name)
		assert.JSONEq(t, `{"collections":["customers"]}`, ev.Data)
		t.Logf("write %d reached the other process's subscriber in %v", i, ev.At.Sub(start))
	}
	ev, ok := rep1.Next(time.Second)
	assert.False(t, ok, "rep1 hears nothing of t-2: %+v", ev)

	// The write that takes c-2 out of rep2's territory reaches rep2 too.
	r := other.push(t, mutation("move", "customers", "c-2", 1, map[string]any{"code": "C2", "name": "Shop 2", "territory_id": "t-1", "grade": "A"}))[0]
	require.Equal(t, schema.PushApplied, r.Status)
	for name, st := range map[string]*servertest.Stream{"rep1": rep1, "rep2": rep2} {
		ev, ok := st.Next(2 * time.Second)
		require.True(t, ok, name)
		assert.JSONEq(t, `{"collections":["customers"]}`, ev.Data, name)
	}
	for _, p := range sp.procs {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, p.wait(t))
	}
}

func TestStreamExpiresCapsAndEndsOnSIGTERM(t *testing.T) {
	sp := startStreamPair(t, "--access-ttl", "6s", "--max-streams", "2", "--stream-heartbeat", "1s")
	a := open(t, sp.bases[1], signIn(t, sp.apis[1], "rep1", "rep1-password"))
	b := open(t, sp.bases[1], signIn(t, sp.apis[1], "rep2", "rep2-password"))

	over := servertest.OpenStream(t, sp.bases[1], sp.admin.token, "")
	assert.Equal(t, http.StatusServiceUnavailable, over.Status, "the third stream on a process capped at two")
	assert.Contains(t, over.Body, `"code":"unavailable"`)
	assert.NotEmpty(t, over.Header.Get("Retry-After"))
	other := servertest.OpenStream(t, sp.bases[0], sp.admin.token, "")
	assert.Equal(t, http.StatusOK, other.Status, "the cap is per process")

	ev, ok := a.Next(10 * time.Second)
	require.True(t, ok)
	assert.Equal(t, "expired", ev.Name, "the token lives 6 s")
	<-a.Ended()

	// SIGTERM ends the open stream, and the process drains and exits 0.
	start := time.Now()
	require.NoError(t, sp.procs[1].cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-b.Ended():
	case <-time.After(10 * time.Second):
		t.Fatal("SIGTERM did not end the stream")
	}
	require.NoError(t, sp.procs[1].wait(t))
	t.Logf("stopped with a stream open in %v", time.Since(start))
	require.NoError(t, sp.procs[0].cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, sp.procs[0].wait(t))
}
