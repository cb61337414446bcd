package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// errCrash stops a move where a crash of its process would.
var errCrash = errors.New("the process dies here")

// moveBed is two stores, each with its own client, on one database of the
// embedded FerretDB, as two fieldsync processes have, with an engine on
// each, leases of testLease on one clock the test moves, and moves
// written moveTestBatch writes at a time. Users of every scope the move
// touches are there, and a customer c-move in t-1 with visits, and a
// customer c-stay in t-1 with a few.
type moveBed struct {
	stores  []*Store
	engines []*sync.Engine
	clock   *testClock
	users   map[string]schema.Principal
}

const (
	moveTestBatch  = 10
	movedVisits    = 35 // with the customer, four batches
	stayingVisits  = 3
	moveTestPageSz = 7
)

func newMoveBed(t *testing.T) *moveBed {
	t.Helper()
	ctx := context.Background()
	b := &moveBed{clock: &testClock{now: at}, users: map[string]schema.Principal{}}
	database := freshDatabase()
	for range 2 {
		client, err := mongo.Connect(ctx, options.Client().ApplyURI(ferretURI).SetMaxPoolSize(1))
		require.NoError(t, err)
		t.Cleanup(func() { client.Disconnect(context.Background()) })
		s, err := New(ctx, client, database)
		require.NoError(t, err)
		s.Now, s.Lease, s.moveBatch = b.clock.Now, testLease, moveTestBatch
		e, err := sync.New(sync.Config{Store: s, Secret: storetest.Secret, Now: b.clock.Now,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		b.stores, b.engines = append(b.stores, s), append(b.engines, e)
	}
	t.Cleanup(func() { b.stores[0].db.Drop(context.Background()) })
	for _, u := range []*schema.User{
		{ID: "u-admin", Username: "admin", Role: schema.RoleAdmin},
		{ID: "u-field", Username: "field", Role: schema.RoleRep, Territories: []string{"t-1"}}, // made the visits
		{ID: "u-rep2", Username: "rep2", Role: schema.RoleRep, Territories: []string{"t-2"}},
		{ID: "u-mgr1", Username: "mgr1", Role: schema.RoleManager, Territories: []string{"t-1"}},
		{ID: "u-mgr2", Username: "mgr2", Role: schema.RoleManager, Territories: []string{"t-2"}},
		{ID: "u-mgr3", Username: "mgr3", Role: schema.RoleManager, Territories: []string{"t-3"}},
	} {
		u.Active, u.PasswordHash, u.CreatedAt, u.UpdatedAt = true, "x", at, at
		require.NoError(t, b.stores[0].CreateUser(ctx, u))
		b.users[u.Username] = u.Principal("dev-"+u.Username, "login-"+u.Username)
	}
	var seed []json.RawMessage
	for _, tid := range []string{"t-1", "t-2", "t-3"} {
		seed = append(seed, mutationOf(t, "seed-"+tid, schema.Territories, tid, 0, map[string]any{"name": tid, "region": "r"}))
	}
	seed = append(seed, mutationOf(t, "seed-move", schema.Customers, "c-move", 0, moveCustomer("t-1")),
		mutationOf(t, "seed-stay", schema.Customers, "c-stay", 0, moveCustomer("t-1")))
	push(t, b.engines[0], b.users["admin"], seed)
	var visits []json.RawMessage
	for i := range movedVisits + stayingVisits {
		customer := "c-move"
		if i >= movedVisits {
			customer = "c-stay"
		}
		in := at.Add(-time.Duration(i+1) * time.Hour)
		visits = append(visits, mutationOf(t, fmt.Sprintf("visit-%d", i), schema.Visits, fmt.Sprintf("v-%02d", i), 0, map[string]any{
			"customer_id": customer,
			"check_in":    map[string]any{"at": in.Format(time.RFC3339), "lat": 52.5, "lng": 13.4},
			"check_out":   map[string]any{"at": in.Add(20 * time.Minute).Format(time.RFC3339), "lat": 52.5, "lng": 13.4},
		}))
	}
	push(t, b.engines[0], b.users["field"], visits)
	return b
}

func moveCustomer(territory string) map[string]any {
	return map[string]any{"code": "C1", "name": "Shop", "territory_id": territory, "grade": "B", "lat": 52.5, "lng": 13.4, "credit_limit": 100000}
}

// reader is a client of one user: its replica and checkpoint.
type moveReader struct {
	name    string
	replica storetest.Replica
	cp      string
}

// pull brings r up to date through engine e and returns what it got.
func (b *moveBed) pull(t *testing.T, e *sync.Engine, r *moveReader) storetest.Replica {
	t.Helper()
	got := storetest.Replica{}
	before := cloneReplica(r.replica)
	r.cp = storetest.PullAll(t, e, b.users[r.name], r.cp, moveTestPageSz, r.replica)
	for k, v := range r.replica {
		if before[k] != v {
			got[k] = v
		}
	}
	for k := range before {
		if _, ok := r.replica[k]; !ok {
			got[k] = -1 // removed
		}
	}
	return got
}

func cloneReplica(r storetest.Replica) storetest.Replica {
	out := storetest.Replica{}
	for k, v := range r {
		out[k] = v
	}
	return out
}

// ofMoved keeps the keys of r that are the moved customer or its visits.
func ofMoved(r storetest.Replica) []string {
	var out []string
	for k := range r {
		if k == "customers/c-move" || (strings.HasPrefix(k, "visits/v-") && k < fmt.Sprintf("visits/v-%02d", movedVisits)) {
			out = append(out, k)
		}
	}
	return out
}

// restampedVisits counts the moved customer's visits that carry t-2's
// token in the store.
func restampedVisits(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.records.CountDocuments(context.Background(), bson.M{"coll": "visits", "refs": "customer:c-move", "tokens": "visits|terr:t-2"})
	require.NoError(t, err)
	return n
}

// A customer with more visits than a move's batch moves from t-1 to t-2;
// its writer dies after two batches, the store of another process takes
// the move over once the lease has run out, dies too after one batch, and
// the first process's store finishes it. Readers of the old territory,
// the new one, another one, and the rep who made the visits pull
// throughout: before the move is finished none of them gets anything of
// it, and afterwards each holds exactly what it may read — every visit
// for the new territory's manager, a removal of every one for the old
// one's, nothing for the others.
func TestMoveResumedAfterCrashes(t *testing.T) {
	b := newMoveBed(t)
	ctx := context.Background()
	readers := map[string]*moveReader{}
	for _, name := range []string{"admin", "field", "rep2", "mgr1", "mgr2", "mgr3"} {
		readers[name] = &moveReader{name: name, replica: storetest.Replica{}}
		b.pull(t, b.engines[1], readers[name])
	}
	require.Len(t, ofMoved(readers["mgr1"].replica), movedVisits+1, "t-1's manager holds the customer and its visits")
	require.Empty(t, ofMoved(readers["mgr2"].replica))

	// pullAll pulls for every reader, and for a reader with no checkpoint
	// yet of each manager, and checks that nothing of the move shows
	// while it is not finished.
	nothingShows := func(when string) {
		for name, r := range readers {
			got := b.pull(t, b.engines[1], r)
			assert.Emptyf(t, ofMoved(got), "%s: %s gets nothing of the move", when, name)
		}
		for _, name := range []string{"mgr2", "mgr3"} {
			fresh := &moveReader{name: name, replica: storetest.Replica{}}
			b.pull(t, b.engines[1], fresh)
			assert.Emptyf(t, ofMoved(fresh.replica), "%s: a first sync of %s gets nothing of the move", when, name)
		}
	}

	s0, s1 := b.stores[0], b.stores[1]
	var pulledDuring bool
	s0.afterMoveBatch = func(applied int) error {
		switch applied {
		case moveTestBatch:
			nothingShows("after the first batch")
			pulledDuring = true
		case 2 * moveTestBatch:
			return errCrash
		}
		return nil
	}
	cust, err := b.engines[0].Pull(ctx, b.users["admin"], &schema.PullRequest{})
	require.NoError(t, err)
	var version int64
	for _, ch := range cust.Changes {
		if ch.ID == "c-move" {
			version = ch.Version
		}
	}
	require.NotZero(t, version)
	_, err = b.engines[0].Push(ctx, b.users["admin"], &schema.PushRequest{DeviceID: "dev-admin",
		Mutations: []json.RawMessage{mutationOf(t, "move", schema.Customers, "c-move", version, moveCustomer("t-2"))}})
	require.ErrorIs(t, err, errCrash, "the push dies with its process")
	require.True(t, pulledDuring)
	s0.afterMoveBatch = nil
	require.Equal(t, int64(2*moveTestBatch-1), restampedVisits(t, s0), "the store holds a half-applied move")

	nothingShows("after the crash, within the lease")

	// The other process's store takes the move over and dies after one
	// batch of it.
	b.clock.Advance(testLease + time.Second)
	s1.afterMoveBatch = func(applied int) error {
		assert.Equal(t, 3*moveTestBatch, applied, "the move is taken over where it stopped")
		return errCrash
	}
	_, err = b.engines[1].Pull(ctx, b.users["mgr2"], &schema.PullRequest{Checkpoint: readers["mgr2"].cp})
	require.ErrorIs(t, err, errCrash)
	s1.afterMoveBatch = nil
	require.Equal(t, int64(3*moveTestBatch-1), restampedVisits(t, s0))
	nothingShows("after the second crash, within its lease")

	// The first process's store finishes it.
	b.clock.Advance(testLease + time.Second)
	before := map[string]storetest.Replica{}
	for name, r := range readers {
		before[name] = cloneReplica(r.replica)
	}
	for name, r := range readers {
		b.pull(t, b.engines[0], r)
		assert.Equalf(t, storetest.Readable(t, s0, b.users[name]), r.replica, "%s holds exactly what it may read", name)
	}
	assert.Equal(t, int64(movedVisits), restampedVisits(t, s0), "every visit moved")
	assert.Empty(t, ofMoved(readers["mgr1"].replica), "t-1's manager got a removal of the customer and every visit")
	assert.Len(t, ofMoved(readers["mgr2"].replica), movedVisits+1, "t-2's manager got the customer and every visit")
	assert.Empty(t, ofMoved(readers["mgr3"].replica), "t-3's manager got nothing")
	assert.Equal(t, before["mgr3"], readers["mgr3"].replica)
	assert.Len(t, ofMoved(readers["field"].replica), movedVisits, "the rep keeps its own visits and loses the customer")
	assert.Contains(t, readers["mgr1"].replica, "customers/c-stay", "the other customer stays")

	n, err := s0.moveItems.CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, n, "the plan is gone")

	// The client sends the push again: the history answers it.
	res, err := b.engines[1].Push(ctx, b.users["admin"], &schema.PushRequest{DeviceID: "dev-admin",
		Mutations: []json.RawMessage{mutationOf(t, "move", schema.Customers, "c-move", version, moveCustomer("t-2"))}})
	require.NoError(t, err)
	assert.Equal(t, schema.PushApplied, res.Results[0].Status)
	assert.Equal(t, version+1, res.Results[0].Version)
}

// A move whose writer dies before its plan is complete is given up once
// its lease runs out: nothing of it was written, and the push is sent
// again.
func TestMoveNotReadyIsGivenUp(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	a := record("c-a", 1, "t1")
	put(t, s, a, 0)
	hold, err := s.insertSeq(ctx, seqDoc{Move: true, Owner: "dead"})
	require.NoError(t, err)
	_, err = s.moveItems.InsertOne(ctx, moveItem{Key: fmt.Sprint(hold, "/0"), Hold: hold, Doc: newRecordDoc(record("c-b", 1, "t1"), 0)})
	require.NoError(t, err)
	b := record("c-b", 1, "t1")
	put(t, s, b, 0)

	assert.Equal(t, a.Seq, watermark(t, s), "the hold holds the watermark")
	clock.Advance(testLease + time.Second)
	assert.Equal(t, b.Seq, watermark(t, s), "until its lease runs out")
	assert.Equal(t, seqAbandoned, seqState(t, s, hold))
	n, err := s.moveItems.CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, n, "its plan is dropped")
	assert.Equal(t, []string{"c-a@1", "c-b@1"}, feed(t, s, 0, "t1"))
}

// A move's writer that outlives its lease finds the move taken over, and
// the move is finished once, by the one that took it.
func TestMoveWriterPastItsLeaseStops(t *testing.T) {
	b := newMoveBed(t)
	ctx := context.Background()
	s0 := b.stores[0]
	s0.afterMoveBatch = func(applied int) error {
		if applied == moveTestBatch {
			b.clock.Advance(testLease + time.Second)
			_, err := b.stores[1].Watermark(ctx) // takes the move over and finishes it
			require.NoError(t, err)
		}
		return nil
	}
	_, err := b.engines[0].Push(ctx, b.users["admin"], &schema.PushRequest{DeviceID: "dev-admin",
		Mutations: []json.RawMessage{mutationOf(t, "move", schema.Customers, "c-move", 1, moveCustomer("t-2"))}})
	require.ErrorIs(t, err, schema.ErrUnavailable, "the push is answered as retryable")
	s0.afterMoveBatch = nil
	assert.Equal(t, int64(movedVisits), restampedVisits(t, s0))
	for _, name := range []string{"mgr1", "mgr2"} {
		r := &moveReader{name: name, replica: storetest.Replica{}}
		b.pull(t, b.engines[0], r)
		assert.Equalf(t, storetest.Readable(t, s0, b.users[name]), r.replica, "%s holds exactly what it may read", name)
	}
}
