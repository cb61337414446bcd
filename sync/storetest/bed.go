package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

// Bed is an engine and the reports on one store, with a clock the test
// sets and a team of users, each signed in on device dev-<name> with
// login l-<name>:
//
//   - admin;
//   - rep1 and mgr (a manager) in territory t-1;
//   - rep2 in territory t-2;
//   - dist, the user of distributor d-1.
//
// The store holds no records: each test writes its own.
type Bed struct {
	T       testing.TB
	Store   Store
	Engine  *sync.Engine
	Reports *report.Reports
	// Now is the engine's and the reports' clock.
	Now time.Time
	// Users are the principals of the team, by username.
	Users map[string]schema.Principal

	n int // mutations named by Push
}

// NewBed builds a bed on s, with the clock at 2026-11-23 12:00 UTC.
func NewBed(tb testing.TB, s Store) *Bed {
	tb.Helper()
	b := &Bed{T: tb, Store: s, Now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), Users: map[string]schema.Principal{}}
	clock := func() time.Time { return b.Now }
	var err error
	// Every push is decided ahead of the write lock where the store can,
	// so that the suite checks what is decided ahead against what is
	// expected of a push decided under the lock.
	b.Engine, err = sync.New(sync.Config{Store: s, Secret: Secret, Now: clock, DecideAheadFrom: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(tb, err)
	b.Reports = report.New(s, clock)
	b.AddUser("admin", schema.RoleAdmin, "")
	b.AddUser("rep1", schema.RoleRep, "", "t-1")
	b.AddUser("rep2", schema.RoleRep, "", "t-2")
	b.AddUser("mgr", schema.RoleManager, "", "t-1")
	b.AddUser("dist", schema.RoleDistributor, "d-1")
	return b
}

// AddUser creates the active user u-<name> with a role, a distributor (for
// the distributor role) and territories, and adds its principal to Users.
func (b *Bed) AddUser(name string, role schema.Role, distributor string, territories ...string) {
	b.T.Helper()
	u := &schema.User{ID: "u-" + name, Username: name, PasswordHash: "x", Role: role, Territories: append([]string{}, territories...),
		DistributorID: distributor, Active: true, CreatedAt: b.Now, UpdatedAt: b.Now}
	require.NoError(b.T, b.Store.CreateUser(context.Background(), u))
	b.Users[name] = u.Principal("dev-"+name, "l-"+name)
}

// SetScope changes a user's role and territories as an admin would.
func (b *Bed) SetScope(name string, role schema.Role, territories ...string) {
	b.T.Helper()
	u, err := b.Store.User(context.Background(), "u-"+name)
	require.NoError(b.T, err)
	u.Role, u.Territories = role, territories
	require.NoError(b.T, b.Store.UpdateUser(context.Background(), u))
	b.Users[name] = u.Principal("dev-"+name, "l-"+name)
}

// Mut is a mutation to push. Push names one whose ID is empty.
type Mut struct {
	ID         string
	Op         schema.MutationOp
	Collection schema.Collection
	RecordID   string
	Base       int64
	Data       any
}

// Up is the upsert of record id of c at base version base.
func Up(c schema.Collection, id string, base int64, data any) Mut {
	return Mut{Op: schema.MutationUpsert, Collection: c, RecordID: id, Base: base, Data: data}
}

// Del is the delete of record id of c at base version base.
func Del(c schema.Collection, id string, base int64) Mut {
	return Mut{Op: schema.MutationDelete, Collection: c, RecordID: id, Base: base}
}

// Raw is the mutation's JSON as a device sends it.
func (m Mut) Raw() json.RawMessage {
	body := map[string]any{"mutation_id": m.ID, "collection": m.Collection, "id": m.RecordID, "op": m.Op, "base_version": m.Base}
	if m.Data != nil {
		body["data"] = m.Data
	}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err) // test data that does not marshal is a broken test
	}
	return raw
}

// Push sends mutations in one push from a user's device, naming those
// without an ID m-1, m-2…, and requires an answer for each.
func (b *Bed) Push(user string, muts ...Mut) []schema.PushResult {
	b.T.Helper()
	req := &schema.PushRequest{DeviceID: "dev-" + user}
	for i := range muts {
		if muts[i].ID == "" {
			b.n++
			muts[i].ID = fmt.Sprintf("m-%d", b.n)
		}
		req.Mutations = append(req.Mutations, muts[i].Raw())
	}
	resp, err := b.Engine.Push(context.Background(), b.Users[user], req)
	require.NoError(b.T, err)
	require.Len(b.T, resp.Results, len(muts))
	return resp.Results
}

// pushBatch is the most mutations OK sends in one push: the engine's
// default MaxMutations.
const pushBatch = 500

// OK pushes mutations as Push does, at most 500 a push, and requires
// every one applied.
func (b *Bed) OK(user string, muts ...Mut) []schema.PushResult {
	b.T.Helper()
	var all []schema.PushResult
	for len(muts) > 0 {
		n := min(len(muts), pushBatch)
		for i, r := range b.Push(user, muts[:n]...) {
			require.Equalf(b.T, schema.PushApplied, r.Status, "%s's mutation %d: %+v", user, len(all)+i, r)
			all = append(all, r)
		}
		muts = muts[n:]
	}
	return all
}

// Pull pulls everything a user may read after a checkpoint, page by page,
// and returns the replica it builds, every change and the last checkpoint.
func (b *Bed) Pull(user, checkpoint string) (Replica, []*schema.Envelope, string) {
	b.T.Helper()
	replica := Replica{}
	var all []*schema.Envelope
	for {
		resp, err := b.Engine.Pull(context.Background(), b.Users[user], &schema.PullRequest{Checkpoint: checkpoint, Limit: 1000})
		require.NoError(b.T, err)
		replica.Apply(resp.Changes)
		all = append(all, resp.Changes...)
		checkpoint = resp.Checkpoint
		if !resp.HasMore {
			return replica, all, checkpoint
		}
	}
}

// Record reads a record's version and current data straight from the
// store.
func (b *Bed) Record(c schema.Collection, id string) (int64, map[string]any) {
	b.T.Helper()
	var r *sync.Record
	require.NoError(b.T, b.Store.View(context.Background(), func(tx sync.RecordTx) (err error) {
		r, err = tx.Record(context.Background(), c, id)
		return err
	}))
	var m map[string]any
	require.NoError(b.T, json.Unmarshal(r.Data, &m))
	return r.Version, m
}

// With returns a copy of m with the key-value pairs kv set.
func With(m map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(m)+len(kv)/2)
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}
