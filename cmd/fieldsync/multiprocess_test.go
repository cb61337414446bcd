package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/mongostore"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// client is one user's session with one fieldsync process, through a
// checked test client: every exchange is checked against the OpenAPI
// document.
type client struct {
	api   *servertest.Client
	token string
}

// call sends a request as the user, decodes a JSON answer into out when
// out is not nil, and returns the status.
func (c client) call(t testing.TB, method, path string, body, out any) int {
	t.Helper()
	r := c.api.Call(t, method, path, c.token, body)
	if out != nil {
		require.NoErrorf(t, json.Unmarshal(r.Raw, out), "%s %s: %s", method, path, r.Raw)
	}
	return r.Status
}

func (c client) post(t testing.TB, path string, body, out any) int {
	t.Helper()
	return c.call(t, http.MethodPost, path, body, out)
}

func (c client) get(t testing.TB, path string, out any) int {
	t.Helper()
	return c.call(t, http.MethodGet, path, nil, out)
}

// signIn signs a user in on device d-<user> and returns its access token.
func signIn(t testing.TB, api *servertest.Client, user, password string) string {
	t.Helper()
	return api.Login(t, user, password, "d-"+user).Access
}

func (c client) push(t testing.TB, mutations ...map[string]any) []schema.PushResult {
	t.Helper()
	var out schema.PushResponse
	require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/push", map[string]any{"device_id": "d", "mutations": mutations}, &out))
	return out.Results
}

func mutation(id, coll, rid string, base int64, data any) map[string]any {
	m := map[string]any{"mutation_id": id, "collection": coll, "id": rid, "op": "upsert", "base_version": base, "data": data}
	if data == nil {
		m["op"] = "delete"
		delete(m, "data")
	}
	return m
}

// Two fieldsync processes share one data dir: writers and readers of every
// role go through both at once, and each reader ends with exactly what the
// store says it may read.
func TestTwoProcessesOnOneSQLiteFile(t *testing.T) {
	dir := t.TempDir()
	testTwoProcesses(t, dir, nil, func(t *testing.T) sharedStore {
		store, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "data", "fieldsync.db"))
		require.NoError(t, err)
		return store
	})
}

// The same with two processes on one Mongo-protocol store, each with a
// normal connection pool: the test bed of sync/mongostore/mongotest
// (FerretDB behind a proxy that runs one command at a time), or the real
// MongoDB at FIELDSYNC_TEST_MONGO_URI when it is set.
func TestTwoProcessesOnOneMongoDB(t *testing.T) {
	uri := sharedMongoURI(t) + freshMongoDatabase("fieldsync_two")
	testTwoProcesses(t, t.TempDir(), []string{"FIELDSYNC_MONGO_URI=" + uri}, func(t *testing.T) sharedStore {
		store, err := mongostore.Open(context.Background(), uri)
		require.NoError(t, err)
		return store
	})
}

// sharedStore is what the two-process test reads back from the store the
// processes share.
type sharedStore interface {
	sync.RecordStore
	UserByName(ctx context.Context, username string) (*schema.User, error)
	Close() error
}

// testTwoProcesses runs two fieldsync processes with env in dir, drives
// them, and checks every reader against the store that open opens.
func testTwoProcesses(t *testing.T, dir string, env []string, open func(t *testing.T) sharedStore) {
	// Writers push as fast as they can: the sync rate limits are off.
	env = append(env, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1",
		"FIELDSYNC_SYNC_RATE_DEVICE=-1", "FIELDSYNC_SYNC_RATE_USER=-1")
	procs := []*process{startBinary(t, dir, env...), startBinary(t, dir, env...)}
	apis := []*servertest.Client{servertest.Connect(t, "http://"+procs[0].addr), servertest.Connect(t, "http://"+procs[1].addr)}

	admin := client{api: apis[0], token: signIn(t, apis[0], "admin", "admin-password-1")}
	users := map[string][]string{"rep1": {"t-1"}, "rep2": {"t-2"}, "mgr": {"t-1", "t-2"}}
	for name, territories := range users {
		role := "rep"
		if name == "mgr" {
			role = "manager"
		}
		status := admin.post(t, "/v1/admin/users", map[string]any{"username": name, "password": name + "-password", "role": role, "territories": territories}, nil)
		require.Equal(t, http.StatusCreated, status)
	}
	for _, r := range admin.push(t,
		mutation("seed-1", "territories", "t-1", 0, map[string]any{"name": "One", "region": "R"}),
		mutation("seed-2", "territories", "t-2", 0, map[string]any{"name": "Two", "region": "R"})) {
		require.Equal(t, schema.PushApplied, r.Status)
	}

	const customers, rounds = 8, 60
	var wg gosync.WaitGroup
	wg.Add(1)
	go func() { // the admin creates, moves and deletes customers through both processes
		defer wg.Done()
		rng := rand.New(rand.NewPCG(1, 2))
		versions := make([]int64, customers)
		for i := range rounds {
			c := client{api: apis[i%2], token: admin.token}
			n := rng.IntN(customers)
			id := fmt.Sprintf("c-%d", n)
			data := map[string]any{"code": id, "name": "Shop " + id, "grade": "A", "lat": 52.5, "lng": 13.4,
				"territory_id": []string{"t-1", "t-2"}[rng.IntN(2)]}
			var m map[string]any
			switch v := versions[n]; {
			case v <= 0:
				m = mutation(fmt.Sprintf("a-%d", i), "customers", id, 0, data)
			case rng.IntN(5) == 0:
				m = mutation(fmt.Sprintf("a-%d", i), "customers", id, v, nil)
			default:
				m = mutation(fmt.Sprintf("a-%d", i), "customers", id, v, data)
			}
			r := c.push(t, m)[0]
			switch {
			case r.Status == "applied" && m["op"] == "delete":
				versions[n] = -1
			case r.Status == "applied":
				versions[n] = r.Version
			case r.Status == "conflict" && r.Record.Deleted:
				versions[n] = -1
			case r.Status == "conflict":
				versions[n] = r.Record.Version
			}
		}
	}()
	for _, rep := range []string{"rep1", "rep2"} {
		wg.Add(1)
		go func() { // reps record visits, some at customers they may not see
			defer wg.Done()
			token := signIn(t, apis[1], rep, rep+"-password")
			rng := rand.New(rand.NewPCG(3, uint64(len(rep))))
			for i := range rounds {
				c := client{api: apis[(i+1)%2], token: token}
				c.push(t, mutation(fmt.Sprintf("%s-%d", rep, i), "visits", fmt.Sprintf("v-%s-%d", rep, i), 0, map[string]any{
					"customer_id": fmt.Sprintf("c-%d", rng.IntN(customers)),
					"check_in":    map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.5, "lng": 13.4}}))
			}
		}()
	}

	type reader struct {
		name, password, checkpoint string
		replica                    storetest.Replica
		token                      string
	}
	readers := []*reader{{name: "admin", password: "admin-password-1"}, {name: "rep1", password: "rep1-password"},
		{name: "rep2", password: "rep2-password"}, {name: "mgr", password: "mgr-password"}}
	pull := func(r *reader, api *servertest.Client) bool {
		var out schema.PullResponse
		status := client{api: api, token: r.token}.post(t, "/v1/sync/pull", map[string]any{"checkpoint": r.checkpoint, "limit": 3}, &out)
		require.Equal(t, http.StatusOK, status)
		r.replica.Apply(out.Changes)
		r.checkpoint = out.Checkpoint
		return out.HasMore
	}
	stop := make(chan struct{})
	var rg gosync.WaitGroup
	for i, r := range readers {
		r.replica = storetest.Replica{}
		r.token = signIn(t, apis[i%2], r.name, r.password)
		rg.Add(1)
		go func() {
			defer rg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if !pull(r, apis[(i+k)%2]) {
					time.Sleep(5 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()

	store := open(t)
	defer store.Close()
	for i, r := range readers {
		for k := 0; pull(r, apis[(i+k)%2]); k++ {
		}
		u, err := store.UserByName(context.Background(), r.name)
		require.NoError(t, err)
		want := storetest.Readable(t, store, u.Principal("", ""))
		assert.NotEmpty(t, want, r.name)
		assert.Equal(t, want, r.replica, "%s's replica equals what it may read", r.name)
	}
	for _, p := range procs {
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.NoError(t, p.wait(t))
	}
}
