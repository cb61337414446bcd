package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Secret is the signing secret the suite's engines use.
var Secret = []byte("storetest-secret-storetest-secret-0123456789")

// Replica is what a client holds after applying pulls: version by
// "collection/id".
type Replica map[string]int64

// Apply folds a page of changes into the replica.
func (r Replica) Apply(changes []*schema.Envelope) {
	for _, ch := range changes {
		key := string(ch.Collection) + "/" + ch.ID
		switch {
		case ch.Deleted:
			delete(r, key)
		case ch.Version >= r[key]:
			r[key] = ch.Version
		}
	}
}

// PullAll pulls until has_more is false and returns the last checkpoint.
func PullAll(tb testing.TB, e *sync.Engine, p schema.Principal, checkpoint string, limit int, into Replica) string {
	tb.Helper()
	for range 100000 {
		resp, err := e.Pull(context.Background(), p, &schema.PullRequest{Checkpoint: checkpoint, Limit: limit})
		require.NoError(tb, err)
		into.Apply(resp.Changes)
		checkpoint = resp.Checkpoint
		if !resp.HasMore {
			return checkpoint
		}
	}
	tb.Fatal("pull never ran out of changes")
	return ""
}

// Readable returns what the store says p may read now: every record that
// is not deleted and whose tokens meet p's, at its current version.
func Readable(tb testing.TB, s sync.RecordStore, p schema.Principal) Replica {
	tb.Helper()
	ctx := context.Background()
	wm, err := s.Watermark(ctx)
	require.NoError(tb, err)
	var all []string
	for _, c := range schema.Collections() {
		all = append(all, string(c)+"|all")
	}
	tokens := schema.ReadTokens(p)
	out := Replica{}
	for after := int64(0); ; {
		chs, err := s.Changes(ctx, all, after, wm, 1000, 0)
		require.NoError(tb, err)
		for _, ch := range chs {
			if !ch.Record.Deleted && schema.Intersects(ch.Record.Tokens, tokens) {
				out[string(ch.Record.Collection)+"/"+ch.Record.ID] = ch.Record.Version
			}
		}
		if len(chs) < 1000 {
			return out
		}
		after = chs[len(chs)-1].Seq
	}
}

// TestConvergence runs writers of every role through several engines that
// share one store (open returns handles onto the same database, as
// separate processes would have), while readers of every role pull in
// small pages; at the end every reader's replica must equal exactly what
// the store says it may read, at the same versions.
func TestConvergence(t *testing.T, open func(t *testing.T) []Store, rounds int) {
	stores := open(t)
	require.NotEmpty(t, stores)
	ctx := context.Background()
	var engines []*sync.Engine
	for _, s := range stores {
		e, err := sync.New(sync.Config{Store: s, Secret: Secret})
		require.NoError(t, err)
		engines = append(engines, e)
	}
	users := map[string]*schema.User{
		"admin": {ID: "u-admin", Username: "admin", Role: schema.RoleAdmin},
		"rep1":  {ID: "u-rep1", Username: "rep1", Role: schema.RoleRep, Territories: []string{"t-1"}},
		"rep2":  {ID: "u-rep2", Username: "rep2", Role: schema.RoleRep, Territories: []string{"t-2"}},
		"rep3":  {ID: "u-rep3", Username: "rep3", Role: schema.RoleRep, Territories: []string{"t-1", "t-3"}},
		"mgr":   {ID: "u-mgr", Username: "mgr", Role: schema.RoleManager, Territories: []string{"t-1", "t-2"}},
		"dist":  {ID: "u-dist", Username: "dist", Role: schema.RoleDistributor, DistributorID: "d-1"},
	}
	for _, u := range users {
		u.Active, u.PasswordHash, u.CreatedAt, u.UpdatedAt = true, "x", at, at
		if u.Territories == nil {
			u.Territories = []string{}
		}
		require.NoError(t, stores[0].CreateUser(ctx, u))
	}
	principal := func(name string) schema.Principal {
		u, err := stores[0].User(ctx, users[name].ID)
		require.NoError(t, err)
		return u.Principal("dev-"+name, "login-"+name)
	}
	admin := principal("admin")
	seed := []json.RawMessage{}
	for _, tid := range []string{"t-1", "t-2", "t-3"} {
		seed = append(seed, mutation("seed-"+tid, schema.Territories, tid, schema.MutationUpsert, 0, map[string]any{"name": tid, "region": "r"}))
	}
	seed = append(seed, mutation("seed-p", schema.Products, "p-1", schema.MutationUpsert, 0, map[string]any{"sku": "S1", "name": "Soap", "unit": "each", "price": 250, "active": true}))
	res, err := engines[0].Push(ctx, admin, &schema.PushRequest{Mutations: seed})
	require.NoError(t, err)
	for _, r := range res.Results {
		require.Equal(t, schema.PushApplied, r.Status, "%+v", r)
	}

	type writer struct {
		name string
		fn   func(rng *rand.Rand, e *sync.Engine, i int) []json.RawMessage
	}
	territories := []string{"t-1", "t-2", "t-3"}
	customer := func(rng *rand.Rand, i int) map[string]any {
		c := map[string]any{"code": fmt.Sprintf("C%d", i), "name": fmt.Sprintf("Shop %d", i),
			"territory_id": territories[rng.IntN(3)], "grade": "B", "lat": 52.5, "lng": 13.4, "credit_limit": 100000}
		if rng.IntN(2) == 0 {
			c["distributor_id"] = "d-1"
		}
		return c
	}
	const customers = 12
	versions := make([]int64, customers) // the admin writer's view of its customers
	writers := []writer{
		{"admin", func(rng *rand.Rand, e *sync.Engine, i int) []json.RawMessage {
			n := rng.IntN(customers)
			id := fmt.Sprintf("c-%d", n)
			switch v := versions[n]; {
			case v == 0 || v < 0:
				return []json.RawMessage{mutation(fmt.Sprintf("a-%d", i), schema.Customers, id, schema.MutationUpsert, max(v, 0), customer(rng, n))}
			case rng.IntN(6) == 0:
				return []json.RawMessage{mutation(fmt.Sprintf("a-%d", i), schema.Customers, id, schema.MutationDelete, v, nil)}
			default: // an update, often a territory move
				return []json.RawMessage{mutation(fmt.Sprintf("a-%d", i), schema.Customers, id, schema.MutationUpsert, v, customer(rng, n))}
			}
		}},
		{"rep1", repWriter("c", customers)},
		{"rep3", repWriter("c", customers)},
		{"mgr", func(rng *rand.Rand, e *sync.Engine, i int) []json.RawMessage {
			rep := []string{"u-rep1", "u-rep2", "u-rep3"}[rng.IntN(3)]
			return []json.RawMessage{mutation(fmt.Sprintf("m-%d", i), schema.RoutePlans, fmt.Sprintf("rp-%d", rng.IntN(4)), schema.MutationUpsert, 0, map[string]any{
				"rep_id": rep, "date": "2026-11-23", "stops": []any{map[string]any{"customer_id": fmt.Sprintf("c-%d", rng.IntN(customers)), "position": 1, "status": "planned"}},
			})}
		}},
		{"dist", func(rng *rand.Rand, e *sync.Engine, i int) []json.RawMessage {
			return []json.RawMessage{mutation(fmt.Sprintf("d-%d", i), schema.Orders, fmt.Sprintf("o-d-%d", i), schema.MutationUpsert, 0, map[string]any{
				"customer_id": fmt.Sprintf("c-%d", rng.IntN(customers)), "status": "draft",
				"lines": []any{map[string]any{"product_id": "p-1", "quantity": 2, "unit_price": 250}},
			})}
		}},
	}

	var wg gosync.WaitGroup
	stop := make(chan struct{})
	for wi, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(wi), 7))
			p := principal(w.name)
			for i := range rounds {
				e := engines[i%len(engines)]
				batch := w.fn(rng, e, i)
				resp, err := e.Push(ctx, p, &schema.PushRequest{DeviceID: "dev-" + w.name, Mutations: batch})
				if !assert.NoError(t, err) {
					return
				}
				if w.name == "admin" {
					trackAdmin(resp.Results[0], batch[0], versions)
				}
				if w.name == "admin" && i == rounds/2 {
					// The admin changes a rep's scope mid-run.
					u, err := stores[0].User(ctx, "u-rep3")
					if assert.NoError(t, err) {
						u.Territories = []string{"t-2"}
						assert.NoError(t, stores[0].UpdateUser(ctx, u))
					}
				}
			}
		}()
	}

	type reader struct {
		name    string
		replica Replica
		cp      string
	}
	var readers []*reader
	for _, name := range []string{"admin", "rep1", "rep2", "rep3", "mgr", "dist"} {
		readers = append(readers, &reader{name: name, replica: Replica{}})
	}
	var rg gosync.WaitGroup
	for ri, r := range readers {
		rg.Add(1)
		go func() {
			defer rg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e := engines[(i+ri)%len(engines)]
				resp, err := e.Pull(ctx, principal(r.name), &schema.PullRequest{Checkpoint: r.cp, Limit: 3})
				if !assert.NoError(t, err) {
					return
				}
				r.replica.Apply(resp.Changes)
				r.cp = resp.Checkpoint
				if !resp.HasMore {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	rg.Wait()

	for i, r := range readers {
		p := principal(r.name)
		r.cp = PullAll(t, engines[i%len(engines)], p, r.cp, 5, r.replica)
		want := Readable(t, stores[0], p)
		assert.Equalf(t, want, r.replica, "%s's replica equals what it may read", r.name)
		assert.NotEmptyf(t, want, "%s may read something", r.name)
	}
}

// repWriter makes a rep visit customers, often ones it may not see (those
// are refused, which is part of the test).
func repWriter(prefix string, customers int) func(rng *rand.Rand, e *sync.Engine, i int) []json.RawMessage {
	return func(rng *rand.Rand, e *sync.Engine, i int) []json.RawMessage {
		id := fmt.Sprintf("v-%d-%d", rng.Uint32(), i)
		return []json.RawMessage{mutation("rw-"+id, schema.Visits, id, schema.MutationUpsert, 0, map[string]any{
			"customer_id": fmt.Sprintf("%s-%d", prefix, rng.IntN(customers)),
			"check_in":    map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.5, "lng": 13.4},
		})}
	}
}

// trackAdmin keeps the admin writer's idea of its customers' versions.
func trackAdmin(res schema.PushResult, raw json.RawMessage, versions []int64) {
	var m schema.Mutation
	json.Unmarshal(raw, &m)
	var n int
	fmt.Sscanf(m.ID, "c-%d", &n)
	switch {
	case res.Status == schema.PushApplied && m.Op == schema.MutationDelete:
		versions[n] = -res.Version // recreate from the tombstone next
	case res.Status == schema.PushApplied || res.Status == schema.PushMerged:
		versions[n] = res.Version
	case res.Status == schema.PushConflict:
		versions[n] = res.Record.Version
		if res.Record.Deleted {
			versions[n] = -res.Record.Version
		}
	}
}

// mutation builds one raw mutation.
func mutation(mid string, c schema.Collection, id string, op schema.MutationOp, base int64, data any) json.RawMessage {
	return Mut{ID: mid, Op: op, Collection: c, RecordID: id, Base: base, Data: data}.Raw()
}
