package mongostore

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// moveTestBatch is how many writes of a move the test stores write
// together: a move of storetest.MoveDependents visits takes four batches.
const moveTestBatch = 10

// moveStores returns two stores, each with its own client, on one fresh
// database of the embedded FerretDB, as two fieldsync processes have,
// with leases of testLease on one clock the test moves, writing moves
// moveTestBatch writes at a time.
func moveStores(t *testing.T) ([]*Store, *testClock) {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{now: at}
	database := freshDatabase()
	var stores []*Store
	for range 2 {
		client, err := mongo.Connect(ctx, options.Client().ApplyURI(ferretURI(t)).SetMaxPoolSize(1))
		require.NoError(t, err)
		t.Cleanup(func() { client.Disconnect(context.Background()) })
		s, err := New(ctx, client, database)
		require.NoError(t, err)
		s.Now, s.Lease, s.moveBatch = clock.Now, testLease, moveTestBatch
		stores = append(stores, s)
	}
	t.Cleanup(func() { stores[0].db.Drop(context.Background()) })
	return stores, clock
}

// restampedVisits counts the moved customer's visits that carry t-2's
// token in the store.
func restampedVisits(t *testing.T, s *Store) int64 {
	t.Helper()
	return restampedCount(t, s, "customer:c-move")
}

// restampedCount counts the visits of ref that carry t-2's token.
func restampedCount(tb testing.TB, s *Store, ref string) int64 {
	tb.Helper()
	n, err := s.records.CountDocuments(context.Background(), bson.M{"coll": "visits", "refs": ref, "tokens": "visits|terr:t-2"})
	require.NoError(tb, err)
	return n
}

// The move's writer dies after two batches; once its lease has run out
// the other process's store takes it over and dies too after one batch;
// once that lease has run out, a reader's pull finishes it.
func TestMoveResumedAfterCrashes(t *testing.T) {
	stores, clock := moveStores(t)
	ctx := context.Background()
	storetest.TestMove(t, storetest.MoveBed{
		Stores: []storetest.Store{stores[0], stores[1]},
		Now:    clock.Now,
		Crash: func(after int, during func()) {
			stores[0].afterMoveBatch = func(applied int) error {
				if applied < after {
					return nil
				}
				stores[0].afterMoveBatch = nil
				assert.Equal(t, 2*moveTestBatch, applied)
				during()
				return storetest.ErrCrash
			}
		},
		Resume: func(check func(when string)) {
			assert.Equal(t, int64(2*moveTestBatch-1), restampedVisits(t, stores[0]), "the store holds a half-applied move")
			clock.Advance(testLease + time.Second)
			stores[1].afterMoveBatch = func(applied int) error {
				assert.Equal(t, 3*moveTestBatch, applied, "the move is taken over where it stopped")
				return storetest.ErrCrash
			}
			_, err := stores[1].Watermark(ctx)
			require.ErrorIs(t, err, storetest.ErrCrash)
			stores[1].afterMoveBatch = nil
			assert.Equal(t, int64(3*moveTestBatch-1), restampedVisits(t, stores[0]))
			check("after the second crash")
			clock.Advance(testLease + time.Second)
		},
	})
	assert.Equal(t, int64(storetest.MoveDependents), restampedVisits(t, stores[0]), "every visit moved")
	n, err := stores[0].moveItems.CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, n, "the plan is gone")
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
// the push is answered as retryable; the move is finished once, by the
// one that took it.
func TestMoveWriterPastItsLeaseStops(t *testing.T) {
	stores, clock := moveStores(t)
	ctx := context.Background()
	sc := storetest.NewMoveScene(t, []storetest.Store{stores[0], stores[1]}, clock.Now)
	stores[0].afterMoveBatch = func(applied int) error {
		if applied == moveTestBatch {
			clock.Advance(testLease + time.Second)
			_, err := stores[1].Watermark(ctx) // takes the move over and finishes it
			require.NoError(t, err)
		}
		return nil
	}
	_, err := sc.Move(ctx, sc.Engines[0])
	require.ErrorIs(t, err, schema.ErrUnavailable, "the push is answered as retryable")
	stores[0].afterMoveBatch = nil
	assert.Equal(t, int64(storetest.MoveDependents), restampedVisits(t, stores[0]))
	for _, name := range []string{"mgr1", "mgr2"} {
		r := storetest.Replica{}
		storetest.PullAll(t, sc.Engines[0], sc.Users[name], "", 7, r)
		assert.Equalf(t, storetest.Readable(t, stores[0], sc.Users[name]), r, "%s holds exactly what it may read", name)
		assert.NotEmpty(t, r)
	}
}

// moveCommands counts the commands of a push that moves a customer with
// n visits from t-1 to t-2, beside those of the push that made the
// visits, on a fresh store writing moves in its default batches.
func moveCommands(tb testing.TB, n int) (move, visits int, counter *commandCounter) {
	s, eng, counter := countedStore(tb)
	ctx := context.Background()
	require.NoError(tb, s.CreateUser(ctx, &schema.User{ID: rtRep.UserID, Username: "rep", PasswordHash: "x", Role: schema.RoleRep, Territories: rtRep.Territories, Active: true}))
	push(tb, eng, rtAdmin, []json.RawMessage{
		mutationOf(tb, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"}),
		mutationOf(tb, "t-2", schema.Territories, "t-2", 0, map[string]any{"name": "South", "region": "EU"}),
		mutationOf(tb, "c-0", schema.Customers, "c-0", 0, roundTripCustomer(0, "Outlet")),
	})
	var made []json.RawMessage
	for i := range n {
		in := at.Add(-time.Duration(i+1) * time.Hour)
		made = append(made, mutationOf(tb, fmt.Sprintf("visit-%d", i), schema.Visits, fmt.Sprintf("v-%d", i), 0, map[string]any{"customer_id": "c-0",
			"check_in":  map[string]any{"at": in.Format(time.RFC3339), "lat": 52.52, "lng": 13.40},
			"check_out": map[string]any{"at": in.Add(10 * time.Minute).Format(time.RFC3339), "lat": 52.52, "lng": 13.40}}))
	}
	visits, _ = counter.count(func() { push(tb, eng, rtRep, made) })
	moved := roundTripCustomer(0, "Outlet")
	moved["territory_id"] = "t-2"
	move, _ = counter.count(func() {
		push(tb, eng, rtAdmin, []json.RawMessage{mutationOf(tb, "move", schema.Customers, "c-0", 1, moved)})
	})
	require.Equal(tb, int64(n), restampedCount(tb, s, "customer:c-0"), "every visit moved")
	return move, visits, counter
}

// BenchmarkMoveCommands counts the commands a move of a customer with 300
// visits sends (commands per visit re-stamped; not a speed), beside the
// push that made the visits:
//
//	go test -run '^$' -bench MoveCommands -benchtime 1x ./sync/mongostore/
func BenchmarkMoveCommands(b *testing.B) {
	const n = 300
	for range b.N {
		move, visits, counter := moveCommands(b, n)
		b.Logf("move: %d commands, %.2f per visit (%s); the push of the visits: %d, %.2f per visit", move, float64(move)/n, counter, visits, float64(visits)/n)
		b.ReportMetric(float64(move)/n, "commands/visit")
	}
}
