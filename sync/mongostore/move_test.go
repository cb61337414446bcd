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
	"github.com/fieldsync/fieldsync/sync"
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
		s.Now, s.Lease, s.MoveBatch = clock.Now, testLease, moveTestBatch
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
			assert.Equal(t, int64(2*moveTestBatch), restampedVisits(t, stores[0]), "the store holds a half-applied move: the plan re-stamps the visits first")
			clock.Advance(testLease + time.Second)
			stores[1].afterMoveBatch = func(applied int) error {
				assert.Equal(t, 3*moveTestBatch, applied, "the move is taken over where it stopped")
				return storetest.ErrCrash
			}
			_, err := stores[1].Watermark(ctx)
			require.ErrorIs(t, err, storetest.ErrCrash)
			stores[1].afterMoveBatch = nil
			assert.Equal(t, int64(3*moveTestBatch), restampedVisits(t, stores[0]))
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

// seedMove seeds eng's store with territories t-1 and t-2 and customer
// c-0 in t-1, and returns the mutations of n visits of c-0 by rtRep.
func seedMove(tb testing.TB, s *Store, eng *sync.Engine, n int) []json.RawMessage {
	tb.Helper()
	ctx := context.Background()
	require.NoError(tb, s.CreateUser(ctx, &schema.User{ID: rtRep.UserID, Username: "rep", PasswordHash: "x", Role: schema.RoleRep, Territories: rtRep.Territories, Active: true}))
	push(tb, eng, rtAdmin, []json.RawMessage{
		mutationOf(tb, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"}),
		mutationOf(tb, "t-2", schema.Territories, "t-2", 0, map[string]any{"name": "South", "region": "EU"}),
		mutationOf(tb, "c-0", schema.Customers, "c-0", 0, roundTripCustomer(0, "Outlet")),
	})
	var made []json.RawMessage
	for i := range n {
		made = append(made, mutationOf(tb, fmt.Sprintf("visit-%d", i), schema.Visits, fmt.Sprintf("v-%04d", i), 0, moveVisit(i, "")))
	}
	return made
}

// moveVisit is the data of the i-th visit of c-0, with notes.
func moveVisit(i int, notes string) map[string]any {
	in := at.Add(-time.Duration(i+1) * time.Hour)
	return map[string]any{"customer_id": "c-0", "notes": notes,
		"check_in":  map[string]any{"at": in.Format(time.RFC3339), "lat": 52.52, "lng": 13.40},
		"check_out": map[string]any{"at": in.Add(10 * time.Minute).Format(time.RFC3339), "lat": 52.52, "lng": 13.40}}
}

// moveToT2 is the mutation that moves c-0 (at version 1) to t-2.
func moveToT2(tb testing.TB) json.RawMessage {
	moved := roundTripCustomer(0, "Outlet")
	moved["territory_id"] = "t-2"
	return mutationOf(tb, "move", schema.Customers, "c-0", 1, moved)
}

// moveCommands counts the commands of a push that moves a customer with
// n visits from t-1 to t-2, beside those of the push that made the
// visits, on a fresh store writing moves in its default batches.
func moveCommands(tb testing.TB, n int) (move, visits int, counter *commandCounter) {
	s, eng, counter := countedStore(tb)
	made := seedMove(tb, s, eng, n)
	visits, _ = counter.count(func() { push(tb, eng, rtRep, made) })
	move, _ = counter.count(func() { push(tb, eng, rtAdmin, []json.RawMessage{moveToT2(tb)}) })
	require.Equal(tb, int64(n), restampedCount(tb, s, "customer:c-0"), "every visit moved")
	return move, visits, counter
}

// The writer of a move holds a few batches of records, not the
// customer's dependents: its unit writes its re-stamps out to the plan a
// batch at a time. Without that, it would hold every dependent, twice
// (as read and as written). The unit here re-stamps as the engine does,
// reading the dependents a page at a time (the engine's pages are
// larger: it holds one more page).
func TestMoveWriterHoldsAFewBatches(t *testing.T) {
	const n, page = 120, 20
	s := MustOpen(t)
	s.MoveBatch = moveTestBatch
	ctx := context.Background()
	dependent := func(i int, terr string) *sync.Record {
		return &sync.Record{Collection: schema.Visits, ID: fmt.Sprintf("v-%04d", i), Version: 1, UpdatedAt: at, UpdatedBy: "u-1",
			Data: json.RawMessage(`{"customer_id":"c-0"}`), Tokens: []string{"visits|terr:" + terr}, Refs: []string{"customer:c-0"},
			History: []sync.Revision{{Version: 1, MutationID: fmt.Sprint("m-", i)}}}
	}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		for i := range n {
			if err := tx.Put(ctx, dependent(i, "t-1"), 0); err != nil {
				return err
			}
		}
		return nil
	}))
	before := watermark(t, s)

	most := 0
	s.afterHold = func(held int) { most = max(most, held) }
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		for after := ""; ; {
			recs, err := tx.RecordsByRef(ctx, schema.Visits, "customer:c-0", after, page)
			if err != nil {
				return err
			}
			for _, r := range recs {
				moved := *r
				moved.Tokens = []string{"visits|terr:t-2"}
				if err := tx.Put(ctx, &moved, r.Version); err != nil {
					return err
				}
			}
			if len(recs) < page {
				return nil
			}
			after = recs[len(recs)-1].ID
		}
	}))
	s.afterHold = nil

	assert.Positive(t, most)
	assert.LessOrEqualf(t, most, page+2*moveTestBatch+1, "the writer held %d record documents re-stamping %d", most, n)
	assert.Equal(t, int64(n), restampedCount(t, s, "customer:c-0"), "every dependent moved")
	for tok, gone := range map[string]bool{"visits|terr:t-2": false, "visits|terr:t-1": true} {
		chs, _, err := pull(ctx, s, []string{tok}, before, 100)
		require.NoError(t, err)
		ids := map[string]bool{}
		for _, ch := range chs {
			assert.Equal(t, gone, ch.Gone, tok)
			ids[ch.Record.ID] = true
		}
		assert.Lenf(t, chs, n, "each dependent once in the feed of %s", tok)
		assert.Len(t, ids, n)
	}
	left, err := s.moveItems.CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, left, "the plan is gone")
}

// A record whose re-stamp the unit wrote out to the plan, written again
// later in the same push, is read as re-stamped and written once: its
// planned write is replaced, guarded on the stored record.
func TestMoveRecordWrittenAgainAfterItsRestampWentOut(t *testing.T) {
	const n = 4 * moveTestBatch
	s, eng, _ := countedStore(t)
	s.MoveBatch = moveTestBatch
	push(t, eng, rtRep, seedMove(t, s, eng, n))
	push(t, eng, rtAdmin, []json.RawMessage{
		moveToT2(t),
		mutationOf(t, "note", schema.Visits, "v-0003", 1, moveVisit(3, "seen after the move")),
	})

	assert.Equal(t, int64(n), restampedCount(t, s, "customer:c-0"), "every visit moved")
	var r recordDoc
	require.NoError(t, findOne(context.Background(), "test", s.records, bson.M{"_id": "visits/v-0003"}, nil, &r))
	assert.Equal(t, int64(2), r.Version, "the visit is written once more, not twice")
	assert.Contains(t, *r.Data, "seen after the move")
	assert.Contains(t, r.Tokens, "visits|terr:t-2")
	left, err := s.moveItems.CountDocuments(context.Background(), bson.M{})
	require.NoError(t, err)
	assert.Zero(t, left, "the plan is gone")
}

// A writer whose plan is being written when its lease runs out (its
// hold, not ready, is given up by a reader) fails its push as retryable
// and leaves no plan behind; nothing of the move was written, and the
// push sent again moves the customer once.
func TestMoveGivenUpWhileItsPlanIsWritten(t *testing.T) {
	stores, clock := moveStores(t)
	ctx := context.Background()
	sc := storetest.NewMoveScene(t, []storetest.Store{stores[0], stores[1]}, clock.Now)
	puts := 0
	stores[0].afterHold = func(int) {
		if puts++; puts == 2*moveTestBatch+1 { // two batches of the plan are out
			clock.Advance(testLease + time.Second)
			_, err := stores[1].Watermark(ctx) // gives the hold up
			require.NoError(t, err)
		}
	}
	_, err := sc.Move(ctx, sc.Engines[0])
	require.ErrorIs(t, err, schema.ErrUnavailable, "the push is answered as retryable")
	stores[0].afterHold = nil
	assert.Zero(t, restampedVisits(t, stores[0]), "nothing of the move was written")
	left, err := stores[0].moveItems.CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, left, "no plan is left behind")

	_, err = sc.Move(ctx, sc.Engines[0])
	require.NoError(t, err)
	assert.Equal(t, int64(storetest.MoveDependents), restampedVisits(t, stores[0]))
	for _, name := range []string{"mgr1", "mgr2"} {
		r := storetest.Replica{}
		storetest.PullAll(t, sc.Engines[0], sc.Users[name], "", 7, r)
		assert.Equalf(t, storetest.Readable(t, stores[0], sc.Users[name]), r, "%s holds exactly what it may read", name)
	}
}

// The items of plans whose hold is settled (a drop that failed, a process
// that died between settling a hold and dropping its plan) are swept
// with the answers; those of a pending hold stay.
func TestMoveSettledPlansAreSwept(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	abandoned, err := s.insertSeq(ctx, seqDoc{Move: true, Owner: "dead"})
	require.NoError(t, err)
	live, err := s.insertSeq(ctx, seqDoc{Move: true, Owner: "alive"})
	require.NoError(t, err)
	gone := live + 100 // a hold pruned since
	for i, hold := range []int64{abandoned, abandoned, live, gone} {
		_, err := s.moveItems.InsertOne(ctx, moveItem{Key: itemKey(hold, fmt.Sprint("customers/c-", i)), Hold: hold, N: i,
			Doc: newRecordDoc(record(fmt.Sprint("c-", i), 1, "t1"), 0)})
		require.NoError(t, err)
	}
	_, err = s.seqs.UpdateOne(ctx, bson.M{"_id": abandoned}, bson.M{"$set": bson.M{"state": seqAbandoned}})
	require.NoError(t, err)
	clock.Advance(testLease / 2) // the live hold's lease runs

	_, err = s.SweepAnswers(ctx, clock.Now())
	require.NoError(t, err)
	var left []moveItem
	cur, err := s.moveItems.Find(ctx, bson.M{})
	require.NoError(t, err)
	require.NoError(t, cur.All(ctx, &left))
	require.Len(t, left, 1)
	assert.Equal(t, live, left[0].Hold, "only the pending hold's plan stays")
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
