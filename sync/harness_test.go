package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// env is an engine on a fresh SQLite store with a few users.
type env struct {
	t     testing.TB
	store *sqlitestore.Store
	eng   *sync.Engine
	now   time.Time
	n     int // mutation ids
	users map[string]schema.Principal
}

func newEnv(t testing.TB) *env {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store, now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), users: map[string]schema.Principal{}}
	e.eng, err = sync.New(sync.Config{Store: store, Secret: storetest.Secret, Now: func() time.Time { return e.now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e.addUser("admin", schema.RoleAdmin, "")
	e.addUser("rep1", schema.RoleRep, "", "t-1")
	e.addUser("rep2", schema.RoleRep, "", "t-2")
	e.addUser("mgr", schema.RoleManager, "", "t-1")
	e.addUser("dist", schema.RoleDistributor, "d-1")
	return e
}

func (e *env) addUser(name string, role schema.Role, distributor string, territories ...string) {
	e.t.Helper()
	if territories == nil {
		territories = []string{}
	}
	u := &schema.User{ID: "u-" + name, Username: name, PasswordHash: "x", Role: role, Territories: territories,
		DistributorID: distributor, Active: true, CreatedAt: e.now, UpdatedAt: e.now}
	require.NoError(e.t, e.store.CreateUser(context.Background(), u))
	e.users[name] = u.Principal("dev-"+name, "l-"+name)
}

// setScope changes a user's territories (and role) as an admin would.
func (e *env) setScope(name string, role schema.Role, territories ...string) {
	e.t.Helper()
	u, err := e.store.User(context.Background(), "u-"+name)
	require.NoError(e.t, err)
	u.Role, u.Territories = role, territories
	require.NoError(e.t, e.store.UpdateUser(context.Background(), u))
	e.users[name] = u.Principal("dev-"+name, "l-"+name)
}

// mut is a mutation to push.
type mut struct {
	id   string
	op   schema.MutationOp
	coll schema.Collection
	rid  string
	base int64
	data any
}

func up(c schema.Collection, id string, base int64, data any) mut {
	return mut{op: schema.MutationUpsert, coll: c, rid: id, base: base, data: data}
}

func del(c schema.Collection, id string, base int64) mut {
	return mut{op: schema.MutationDelete, coll: c, rid: id, base: base}
}

func (m mut) raw() json.RawMessage {
	body := map[string]any{"mutation_id": m.id, "collection": m.coll, "id": m.rid, "op": m.op, "base_version": m.base}
	if m.data != nil {
		body["data"] = m.data
	}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	return raw
}

// push sends mutations as a user and returns the results.
func (e *env) push(user string, muts ...mut) []schema.PushResult {
	e.t.Helper()
	req := &schema.PushRequest{DeviceID: "dev-" + user}
	for i := range muts {
		if muts[i].id == "" {
			e.n++
			muts[i].id = fmt.Sprintf("m-%d", e.n)
		}
		req.Mutations = append(req.Mutations, muts[i].raw())
	}
	resp, err := e.eng.Push(context.Background(), e.users[user], req)
	require.NoError(e.t, err)
	require.Len(e.t, resp.Results, len(muts))
	return resp.Results
}

// ok pushes and requires every mutation applied.
func (e *env) ok(user string, muts ...mut) []schema.PushResult {
	e.t.Helper()
	res := e.push(user, muts...)
	for i, r := range res {
		require.Equalf(e.t, schema.PushApplied, r.Status, "mutation %d: %+v", i, r)
	}
	return res
}

// seed writes two territories, a customer in each, and a product.
func (e *env) seed() {
	e.t.Helper()
	e.ok("admin",
		up(schema.Territories, "t-1", 0, territory("North")),
		up(schema.Territories, "t-2", 0, territory("South")),
		up(schema.Customers, "c-1", 0, customer("t-1", "A")),
		up(schema.Customers, "c-2", 0, customer("t-2", "B")),
		up(schema.Products, "p-1", 0, map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": 250, "active": true}),
	)
}

func territory(name string) map[string]any { return map[string]any{"name": name, "region": "EU"} }

func customer(territory, grade string) map[string]any {
	return map[string]any{"code": "C-" + territory, "name": "Shop in " + territory, "territory_id": territory, "grade": grade,
		"lat": 52.52, "lng": 13.405, "credit_limit": 100000}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func visit(customerID string, lat, lng float64) map[string]any {
	return map[string]any{"customer_id": customerID, "check_in": map[string]any{"at": "2026-11-23T09:00:00Z", "lat": lat, "lng": lng, "accuracy": 8}}
}

// pull pulls everything a user may read after a checkpoint.
func (e *env) pull(user, checkpoint string) (storetest.Replica, []*schema.Envelope, string) {
	e.t.Helper()
	replica := storetest.Replica{}
	var all []*schema.Envelope
	for {
		resp, err := e.eng.Pull(context.Background(), e.users[user], &schema.PullRequest{Checkpoint: checkpoint, Limit: 1000})
		require.NoError(e.t, err)
		replica.Apply(resp.Changes)
		all = append(all, resp.Changes...)
		checkpoint = resp.Checkpoint
		if !resp.HasMore {
			return replica, all, checkpoint
		}
	}
}

// data decodes an envelope's data.
func data(t *testing.T, env *schema.Envelope) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(env.Data, &m))
	return m
}
