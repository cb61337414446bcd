package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// quiet is how long a test waits to see that no event comes: several
// polls of the watcher.
const quiet = 600 * time.Millisecond

// streamTeam is a field team on a server whose watcher polls often.
func streamTeam(t *testing.T, tweak ...func(*server.Config)) *fieldTeam {
	t.Helper()
	return newFieldTeamOn(t, startServer(t, append([]func(*server.Config){func(c *server.Config) {
		c.StreamPoll = 20 * time.Millisecond
	}}, tweak...)...))
}

func openStream(t *testing.T, f *fieldTeam, s session, query string) *servertest.Stream {
	t.Helper()
	st := servertest.OpenStream(t, f.ts.URL, s.Access, query)
	require.Equal(t, http.StatusOK, st.Status, st.Body)
	ev, ok := st.Next(5 * time.Second)
	require.True(t, ok, "an event at once")
	require.Equal(t, "ready", ev.Name)
	return st
}

// drain forgets the events the writes made before the streams opened may
// still cause: the watcher may read them after a stream subscribed.
func drain(streams ...*servertest.Stream) {
	time.Sleep(200 * time.Millisecond)
	for _, st := range streams {
		st.Drain()
	}
}

// collectionsOf decodes a changes event's collections.
func collectionsOf(t *testing.T, ev servertest.Event) []string {
	t.Helper()
	require.Equal(t, "changes", ev.Name)
	var data struct {
		Collections []string `json:"collections"`
	}
	require.NoError(t, json.Unmarshal([]byte(ev.Data), &data), ev.Data)
	return data.Collections
}

func TestStreamTellsReadersOfAWriteAndNoOneElse(t *testing.T) {
	f := streamTeam(t)
	rep1 := openStream(t, f, f.rep1, "")
	rep2 := openStream(t, f, f.rep2, "")
	mgr := openStream(t, f, f.mgr, "")
	assert.Equal(t, "text/event-stream", rep1.Header.Get("Content-Type"))
	assert.Equal(t, "no", rep1.Header.Get("X-Accel-Buffering"))
	assert.Equal(t, "no-cache", rep1.Header.Get("Cache-Control"))
	drain(rep1, rep2, mgr)

	// A customer in t-2: rep2 may read it, rep1 and t-1's manager may not.
	f.push(t, f.admin, mut("c-3", "customers", "c-3", 0, map[string]any{"code": "C3", "name": "Shop 3", "territory_id": "t-2", "grade": "B"}))
	ev, ok := rep2.Next(5 * time.Second)
	require.True(t, ok, "rep2 hears of a customer in its territory")
	assert.Equal(t, []string{"customers"}, collectionsOf(t, ev))
	ev, ok = rep1.Next(quiet)
	assert.False(t, ok, "rep1 hears nothing of t-2"+": %+v", ev)
	ev, ok = mgr.Next(quiet)
	assert.False(t, ok, "nor does t-1's manager"+": %+v", ev)

	// rep1's visit: rep1 and its manager read it, rep2 does not.
	f.push(t, f.rep1, mut("v-1b", "visits", "v-1", 1, map[string]any{"customer_id": "c-1", "notes": "busy",
		"check_in": map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.52, "lng": 13.405}}))
	for name, st := range map[string]*servertest.Stream{"rep1": rep1, "mgr": mgr} {
		ev, ok := st.Next(5 * time.Second)
		require.True(t, ok, name)
		assert.Equal(t, []string{"visits"}, collectionsOf(t, ev), name)
	}
	ev, ok = rep2.Next(quiet)
	assert.False(t, ok, "rep2 hears nothing of rep1's visit"+": %+v", ev)

	// c-1 moves to t-2: rep1 loses it, rep2 gains it; both hear.
	f.push(t, f.admin, mut("c-1b", "customers", "c-1", 1, map[string]any{"code": "C1", "name": "Shop 1", "territory_id": "t-2", "grade": "A", "lat": 52.52, "lng": 13.405}))
	for name, st := range map[string]*servertest.Stream{"rep1": rep1, "rep2": rep2} {
		ev, ok := st.Next(5 * time.Second)
		require.True(t, ok, name)
		assert.Contains(t, collectionsOf(t, ev), "customers", name)
	}
}

func TestStreamRestrictedToCollections(t *testing.T) {
	f := streamTeam(t)
	visits := openStream(t, f, f.mgr, "collections=visits")
	all := openStream(t, f, f.mgr, "")
	drain(visits, all)
	f.push(t, f.admin, mut("c-3", "customers", "c-3", 0, map[string]any{"code": "C3", "name": "Shop 3", "territory_id": "t-1", "grade": "B"}))
	ev, ok := all.Next(5 * time.Second)
	require.True(t, ok)
	assert.Equal(t, []string{"customers"}, collectionsOf(t, ev))
	ev, ok = visits.Next(quiet)
	assert.False(t, ok, "a stream for visits hears nothing of customers"+": %+v", ev)

	f.push(t, f.rep1, mut("v-1b", "visits", "v-1", 1, map[string]any{"customer_id": "c-1", "notes": "busy",
		"check_in": map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.52, "lng": 13.405}}))
	ev, ok = visits.Next(5 * time.Second)
	require.True(t, ok)
	assert.Equal(t, []string{"visits"}, collectionsOf(t, ev))

	r := f.ts.call(t, "GET", "/v1/sync/stream?collections=visits,nope", f.mgr.Access, nil)
	assert.Equal(t, http.StatusBadRequest, r.Status)
	assert.Equal(t, "bad_request", r.ErrorCode())
	assert.Equal(t, "collections[1]", r.Body["error"].(map[string]any)["field"])
}

func TestStreamRefusesWithoutAGoodToken(t *testing.T) {
	f := streamTeam(t)
	for name, token := range map[string]string{"none": "", "garbage": "x.y.z", "tampered": f.rep1.Access + "x"} {
		t.Run(name, func(t *testing.T) {
			st := servertest.OpenStream(t, f.ts.URL, token, "")
			assert.Equal(t, http.StatusUnauthorized, st.Status)
			assert.Contains(t, st.Body, `"code":"unauthorized"`)
		})
	}
}

func TestStreamSendsPingsAndEndsWhenTheTokenExpires(t *testing.T) {
	ts := startServer(t, func(c *server.Config) {
		c.AccessTTL = 3 * time.Second
		c.StreamHeartbeat = 200 * time.Millisecond
	})
	admin := ts.login(t, adminName, adminPassword, "laptop")
	st := servertest.OpenStream(t, ts.URL, admin.Access, "")
	require.Equal(t, http.StatusOK, st.Status, st.Body)
	ev, ok := st.Next(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, "ready", ev.Name)
	ev, ok = st.NextAny(2 * time.Second)
	require.True(t, ok)
	assert.Equal(t, servertest.Event{Name: "comment", Data: "ping", At: ev.At}, ev)

	ev, ok = st.Next(10 * time.Second)
	require.True(t, ok, "an event before the stream ends")
	assert.Equal(t, "expired", ev.Name)
	assert.JSONEq(t, `{"reason":"token_expired"}`, ev.Data)
	select {
	case <-st.Ended():
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after expired")
	}
	_, ok = st.Next(time.Second)
	assert.False(t, ok, "nothing after expired")
}

func TestStreamEndsWhenTheUserIsDeactivated(t *testing.T) {
	f := streamTeam(t, func(c *server.Config) { c.StreamRecheck = 100 * time.Millisecond })
	st := openStream(t, f, f.rep2, "")
	drain(st)
	r := f.ts.call(t, "PATCH", "/v1/admin/users/"+f.rep2.UserID, f.admin.Access, map[string]any{"active": false})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	ev, ok := st.Next(5 * time.Second)
	require.True(t, ok)
	assert.Equal(t, "expired", ev.Name)
	assert.JSONEq(t, `{"reason":"signed_out"}`, ev.Data)
}

func TestStreamFollowsAScopeChange(t *testing.T) {
	f := streamTeam(t, func(c *server.Config) { c.StreamRecheck = 100 * time.Millisecond })
	st := openStream(t, f, f.rep2, "")
	drain(st)
	r := f.ts.call(t, "PATCH", "/v1/admin/users/"+f.rep2.UserID, f.admin.Access, map[string]any{"territories": []string{"t-1"}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	ev, ok := st.Next(5 * time.Second)
	require.True(t, ok, "a scope change is a change to pull")
	assert.Contains(t, collectionsOf(t, ev), "customers")

	f.push(t, f.admin, mut("c-3", "customers", "c-3", 0, map[string]any{"code": "C3", "name": "Shop 3", "territory_id": "t-1", "grade": "B"}))
	ev, ok = st.Next(5 * time.Second)
	require.True(t, ok, "the stream now hears of t-1")
	assert.Equal(t, []string{"customers"}, collectionsOf(t, ev))
}

func TestStreamCaps(t *testing.T) {
	f := streamTeam(t, func(c *server.Config) {
		c.MaxStreams = 3
		c.MaxStreamsPerUser = 2
	})
	first := openStream(t, f, f.rep1, "")
	openStream(t, f, f.rep1, "")
	openStream(t, f, f.rep1, "")
	select {
	case <-first.Ended():
	case <-time.After(5 * time.Second):
		t.Fatal("a user's third stream did not end its first")
	}
	openStream(t, f, f.rep2, "")
	over := servertest.OpenStream(t, f.ts.URL, f.mgr.Access, "")
	assert.Equal(t, http.StatusServiceUnavailable, over.Status)
	assert.Contains(t, over.Body, `"code":"unavailable"`)
	assert.NotEmpty(t, over.Header.Get("Retry-After"))

	r := f.ts.call(t, "GET", "/metrics", "", nil)
	assert.Contains(t, string(r.Raw), "fieldsync_streams_open 3")
	assert.Regexp(t, `fieldsync_stream_events_total\{event="ready"\} 4`, string(r.Raw))
	assert.True(t, strings.Contains(string(r.Raw), "fieldsync_stream_events_total"))
}
