package report_test

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
	"github.com/fieldsync/fieldsync/sync/report"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// env is the engine that writes facts and the reports that read them, on
// a fresh SQLite store with an admin, two reps (t-1, t-2) and a manager
// (t-1).
type env struct {
	t       testing.TB
	store   *sqlitestore.Store
	eng     *sync.Engine
	reports *report.Reports
	now     time.Time
	n       int // mutation ids
	users   map[string]schema.Principal
}

func newEnv(t testing.TB) *env {
	t.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	e := &env{t: t, store: store, now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), users: map[string]schema.Principal{}}
	clock := func() time.Time { return e.now }
	e.eng, err = sync.New(sync.Config{Store: store, Secret: storetest.Secret, Now: clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e.reports = report.New(store, clock)
	e.addUser("admin", schema.RoleAdmin)
	e.addUser("rep1", schema.RoleRep, "t-1")
	e.addUser("rep2", schema.RoleRep, "t-2")
	e.addUser("mgr", schema.RoleManager, "t-1")
	return e
}

// addUser creates user u-name with a role and territories.
func (e *env) addUser(name string, role schema.Role, territories ...string) {
	e.t.Helper()
	u := &schema.User{ID: "u-" + name, Username: name, PasswordHash: "x", Role: role, Territories: append([]string{}, territories...),
		Active: true, CreatedAt: e.now, UpdatedAt: e.now}
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

// upsert is the raw mutation that writes a record at version 0.
func (e *env) upsert(c schema.Collection, id string, data any) json.RawMessage {
	e.t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(e.t, err)
	e.n++
	m, err := json.Marshal(schema.Mutation{MutationID: fmt.Sprintf("m-%d", e.n), Collection: c, ID: id, Op: schema.MutationUpsert, Data: raw})
	require.NoError(e.t, err)
	return m
}

// ok pushes raw mutations as a user, at most 500 at a time, and requires
// every one applied.
func (e *env) ok(user string, muts ...json.RawMessage) {
	e.t.Helper()
	for len(muts) > 0 {
		n := min(len(muts), 500)
		resp, err := e.eng.Push(context.Background(), e.users[user], &schema.PushRequest{DeviceID: "dev-" + user, Mutations: muts[:n]})
		require.NoError(e.t, err)
		for i, r := range resp.Results {
			require.Equalf(e.t, schema.PushApplied, r.Status, "%s's mutation %d: %+v", user, i, r)
		}
		muts = muts[n:]
	}
}

func customer(territory, grade string) map[string]any {
	return map[string]any{"code": "C-" + territory, "name": "Shop in " + territory, "territory_id": territory, "grade": grade,
		"lat": 52.52, "lng": 13.405, "credit_limit": 100000}
}

// visit is a visit at customerID checked in at in and out a quarter of an
// hour later, at the customers' place.
func visit(customerID string, in time.Time) map[string]any {
	spot := func(at time.Time) map[string]any {
		return map[string]any{"at": at.Format(time.RFC3339), "lat": 52.52, "lng": 13.405, "accuracy": 8}
	}
	return map[string]any{"customer_id": customerID, "check_in": spot(in), "check_out": spot(in.Add(15 * time.Minute))}
}
