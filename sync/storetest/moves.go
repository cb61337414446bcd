package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// ErrCrash is what a MoveBed's crash makes the interrupted write fail
// with: the process that ran it dies there.
var ErrCrash = errors.New("storetest: the process dies here")

// MoveDependents is how many visits the moved customer of a MoveScene
// has; a MoveBed's stores should write fewer than that together, so that
// a move takes several of their batches. The last MovePhotos of them
// have a photo each.
const (
	MoveDependents = 35
	MovePhotos     = 5
)

// MoveBed is a store under TestMove: handles onto one database, as
// separate processes have, and the means to crash a move half way.
type MoveBed struct {
	// Stores are at least two handles onto one fresh database.
	Stores []Store
	// Now is the clock the engines use; the stores' leases, if any, run
	// on it too.
	Now func() time.Time
	// Crash arranges for the next write through Stores[0] that re-stamps
	// records to stop, as a crash of its process would, once after of
	// its record writes are done (in a store with transactions: handed to
	// the transaction), calling during at that point; the write fails
	// with an error wrapping ErrCrash.
	Crash func(after int, during func())
	// Resume does what must pass before the store finishes or undoes a
	// crashed move by itself (a lease running out), calling check after
	// any step a reader must not see half of.
	Resume func(check func(when string))
}

// MoveScene is a store seeded for a territory move: users of every scope
// the move touches (admin; rep "field" of t-1, who made the visits; rep2
// of t-2; managers mgr1, mgr2 and mgr3 of t-1, t-2 and t-3), customer
// c-move in t-1 with MoveDependents visits (the last MovePhotos with a
// photo each), customer c-stay in t-1 with three visits, and an engine on
// each store.
type MoveScene struct {
	Engines []*sync.Engine
	Users   map[string]schema.Principal
	// Version is c-move's version before the move.
	Version int64
}

// NewMoveScene seeds stores, handles onto one fresh database, for a move.
func NewMoveScene(t *testing.T, stores []Store, now func() time.Time) *MoveScene {
	t.Helper()
	ctx := context.Background()
	sc := &MoveScene{Users: map[string]schema.Principal{}, Version: 1}
	for _, s := range stores {
		e, err := sync.New(sync.Config{Store: s, Secret: Secret, Now: now})
		require.NoError(t, err)
		sc.Engines = append(sc.Engines, e)
	}
	for _, u := range []*schema.User{
		{ID: "u-admin", Username: "admin", Role: schema.RoleAdmin},
		{ID: "u-field", Username: "field", Role: schema.RoleRep, Territories: []string{"t-1"}},
		{ID: "u-rep2", Username: "rep2", Role: schema.RoleRep, Territories: []string{"t-2"}},
		{ID: "u-mgr1", Username: "mgr1", Role: schema.RoleManager, Territories: []string{"t-1"}},
		{ID: "u-mgr2", Username: "mgr2", Role: schema.RoleManager, Territories: []string{"t-2"}},
		{ID: "u-mgr3", Username: "mgr3", Role: schema.RoleManager, Territories: []string{"t-3"}},
	} {
		u.Active, u.PasswordHash, u.CreatedAt, u.UpdatedAt = true, "x", at, at
		require.NoError(t, stores[0].CreateUser(ctx, u))
		sc.Users[u.Username] = u.Principal("dev-"+u.Username, "login-"+u.Username)
	}
	var seed []json.RawMessage
	for _, tid := range []string{"t-1", "t-2", "t-3"} {
		seed = append(seed, mutation("seed-"+tid, schema.Territories, tid, schema.MutationUpsert, 0, map[string]any{"name": tid, "region": "r"}))
	}
	seed = append(seed, mutation("seed-move", schema.Customers, "c-move", schema.MutationUpsert, 0, movedCustomer("t-1")),
		mutation("seed-stay", schema.Customers, "c-stay", schema.MutationUpsert, 0, movedCustomer("t-1")))
	sc.push(t, sc.Engines[0], "admin", seed)
	var visits []json.RawMessage
	for i := range MoveDependents + 3 {
		customer := "c-move"
		if i >= MoveDependents {
			customer = "c-stay"
		}
		in := at.Add(-time.Duration(i+1) * time.Hour)
		visits = append(visits, mutation(fmt.Sprintf("visit-%d", i), schema.Visits, fmt.Sprintf("v-%02d", i), schema.MutationUpsert, 0, map[string]any{
			"customer_id": customer,
			"check_in":    map[string]any{"at": in.Format(time.RFC3339), "lat": 52.5, "lng": 13.4},
			"check_out":   map[string]any{"at": in.Add(20 * time.Minute).Format(time.RFC3339), "lat": 52.5, "lng": 13.4},
		}))
	}
	for i := MoveDependents - MovePhotos; i < MoveDependents; i++ {
		visits = append(visits, mutation(fmt.Sprintf("photo-%d", i), schema.Photos, fmt.Sprintf("ph-%02d", i), schema.MutationUpsert, 0, map[string]any{
			"visit_id": fmt.Sprintf("v-%02d", i), "sha256": fmt.Sprintf("%064x", i), "content_type": "image/jpeg", "size": 10,
		}))
	}
	sc.push(t, sc.Engines[0], "field", visits)
	return sc
}

func movedCustomer(territory string) map[string]any {
	return map[string]any{"code": "C1", "name": "Shop", "territory_id": territory, "grade": "B", "lat": 52.5, "lng": 13.4, "credit_limit": 100000}
}

func (sc *MoveScene) push(t *testing.T, e *sync.Engine, user string, mutations []json.RawMessage) {
	t.Helper()
	res, err := e.Push(context.Background(), sc.Users[user], &schema.PushRequest{DeviceID: "dev-" + user, Mutations: mutations})
	require.NoError(t, err)
	for _, r := range res.Results {
		require.Equal(t, schema.PushApplied, r.Status, "%+v", r.Error)
	}
}

// Move pushes, as the admin through e, c-move's move to t-2.
func (sc *MoveScene) Move(ctx context.Context, e *sync.Engine) (*schema.PushResponse, error) {
	return e.Push(ctx, sc.Users["admin"], &schema.PushRequest{DeviceID: "dev-admin",
		Mutations: []json.RawMessage{mutation("move", schema.Customers, "c-move", schema.MutationUpsert, sc.Version, movedCustomer("t-2"))}})
}

// OfMove returns the keys of r ("collection/id") that are c-move, its
// visits or their photos.
func OfMove(r Replica) []string {
	var out []string
	for k := range r {
		visit := strings.HasPrefix(k, "visits/v-") && k < fmt.Sprintf("visits/v-%02d", MoveDependents)
		if k == "customers/c-move" || visit || strings.HasPrefix(k, "photos/") {
			out = append(out, k)
		}
	}
	return out
}

// moveReader is a client of one user: its replica and checkpoint.
type moveReader struct {
	name    string
	replica Replica
	cp      string
}

// pull brings r up to date through e and returns what changed: the
// version of each record added or updated, -1 for each removed.
func (sc *MoveScene) pull(t *testing.T, e *sync.Engine, r *moveReader) Replica {
	t.Helper()
	before := Replica{}
	for k, v := range r.replica {
		before[k] = v
	}
	r.cp = PullAll(t, e, sc.Users[r.name], r.cp, 7, r.replica)
	got := Replica{}
	for k, v := range r.replica {
		if before[k] != v {
			got[k] = v
		}
	}
	for k := range before {
		if _, ok := r.replica[k]; !ok {
			got[k] = -1
		}
	}
	return got
}

// TestMove moves a customer with MoveDependents visits, MovePhotos of
// them with a photo, from t-1 to t-2,
// and crashes the write half way; the store finishes or undoes it by
// itself (bed.Resume), and the client sends the push again, which is
// answered as applied. Readers of the old territory, the new one, another
// one, and the rep who made the visits pull throughout, and a first sync
// of each manager is made at every step: before the move is whole, none
// of them gets anything of it; afterwards each holds exactly what it may
// read — every visit for the new territory's manager, a removal of each
// for the old one's, nothing for the others.
func TestMove(t *testing.T, bed MoveBed) {
	require.GreaterOrEqual(t, len(bed.Stores), 2)
	ctx := context.Background()
	sc := NewMoveScene(t, bed.Stores, bed.Now)
	readers := map[string]*moveReader{}
	for _, name := range []string{"admin", "field", "rep2", "mgr1", "mgr2", "mgr3"} {
		readers[name] = &moveReader{name: name, replica: Replica{}}
		sc.pull(t, sc.Engines[1], readers[name])
	}
	require.Len(t, OfMove(readers["mgr1"].replica), MoveDependents+MovePhotos+1, "t-1's manager holds the customer, its visits and their photos")
	require.Empty(t, OfMove(readers["mgr2"].replica))
	before := map[string]Replica{}
	for name, r := range readers {
		before[name] = Replica{}
		for k, v := range r.replica {
			before[name][k] = v
		}
	}

	checks := 0
	nothingShows := func(when string) {
		checks++
		for name, r := range readers {
			assert.Emptyf(t, OfMove(sc.pull(t, sc.Engines[1], r)), "%s: %s gets nothing of the move", when, name)
		}
		for _, name := range []string{"mgr1", "mgr2", "mgr3"} {
			fresh := &moveReader{name: name, replica: Replica{}}
			sc.pull(t, sc.Engines[1], fresh)
			assert.Subsetf(t, OfMove(before[name]), OfMove(fresh.replica), "%s: a first sync of %s gets nothing of the move", when, name)
		}
	}
	bed.Crash(MoveDependents/2, func() { nothingShows("half way through the move") })
	_, err := sc.Move(ctx, sc.Engines[0])
	require.ErrorIs(t, err, ErrCrash, "the push dies with its process")
	require.Equal(t, 1, checks, "the crash came half way")
	nothingShows("after the crash")
	bed.Resume(nothingShows)

	// The client sends its push again, to the other process.
	res, err := sc.Move(ctx, sc.Engines[1])
	require.NoError(t, err)
	assert.Equal(t, schema.PushApplied, res.Results[0].Status, "%+v", res.Results[0].Error)
	assert.Equal(t, sc.Version+1, res.Results[0].Version)

	for name, r := range readers {
		sc.pull(t, sc.Engines[0], r)
		assert.Equalf(t, Readable(t, bed.Stores[0], sc.Users[name]), r.replica, "%s holds exactly what it may read", name)
	}
	assert.Empty(t, OfMove(readers["mgr1"].replica), "t-1's manager got a removal of the customer and of every visit and photo")
	assert.Len(t, OfMove(readers["mgr2"].replica), MoveDependents+MovePhotos+1, "t-2's manager got the customer and every visit and photo")
	assert.Equal(t, before["mgr3"], readers["mgr3"].replica, "t-3's manager got nothing")
	assert.Len(t, OfMove(readers["field"].replica), MoveDependents+MovePhotos, "the rep keeps its own visits and photos and loses the customer")
	assert.Contains(t, readers["rep2"].replica, "customers/c-move", "t-2's rep got the customer")
	assert.Contains(t, readers["mgr1"].replica, "customers/c-stay", "the other customer stays")
}
