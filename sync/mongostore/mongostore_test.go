package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/event"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/mongostore/mongotest"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// ferret is the one FerretDB test bed of the package's tests.
var ferret mongotest.Shared

// databases numbers the databases tests create, one per store.
var databases atomic.Int64

func TestMain(m *testing.M) { os.Exit(ferret.Main(m)) }

// ferretURI is the MongoDB URI, ending in "/", of FerretDB itself, not of
// the bed's proxy: the tests' stores each use one connection, which needs
// no proxy to keep FerretDB's guarded updates atomic.
func ferretURI(tb testing.TB) string {
	tb.Helper()
	return ferret.Start(tb).DirectURI()
}

// freshDatabase names a database no test has used.
func freshDatabase() string {
	return fmt.Sprintf("fieldsync_%x_%d", time.Now().UnixNano(), databases.Add(1))
}

// MustOpen returns a store on a fresh database of the embedded FerretDB,
// through a client of one connection: FerretDB's guarded updates are not
// atomic when they run concurrently. Both go when the test ends.
func MustOpen(tb testing.TB) *Store {
	tb.Helper()
	return mustOpenMonitored(tb, nil)
}

// mustOpenMonitored is MustOpen with monitor, when not nil, watching the
// client's commands.
func mustOpenMonitored(tb testing.TB, monitor *event.CommandMonitor) *Store {
	tb.Helper()
	ctx := context.Background()
	opts := options.Client().ApplyURI(ferretURI(tb)).SetMaxPoolSize(1)
	if monitor != nil {
		opts.SetMonitor(monitor)
	}
	client, err := mongo.Connect(ctx, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { client.Disconnect(context.Background()) })
	s, err := New(ctx, client, freshDatabase())
	require.NoError(tb, err)
	tb.Cleanup(func() { s.db.Drop(context.Background()) })
	return s
}

// MustOpenMongoDB returns a store on a fresh database of the MongoDB at
// uri, with a normal pool, dropped when the test ends.
func MustOpenMongoDB(tb testing.TB, uri string) *Store {
	tb.Helper()
	return mustOpenPooled(tb, uri, freshDatabase())
}

func TestConformance(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) storetest.Store { return MustOpen(t) })
}

func TestConformanceMongoDB(t *testing.T) {
	uri := os.Getenv("FIELDSYNC_TEST_MONGO_URI")
	if uri == "" {
		t.Skip("FIELDSYNC_TEST_MONGO_URI is not set; the suite ran against embedded FerretDB only")
	}
	storetest.TestStore(t, func(t *testing.T) storetest.Store { return MustOpenMongoDB(t, uri) })
}

func TestOpenTwiceKeepsDataAndIndexes(t *testing.T) {
	ctx := context.Background()
	database := freshDatabase()
	uri := ferretURI(t) + database + "?maxPoolSize=1"
	s, err := Open(ctx, uri)
	require.NoError(t, err)
	t.Cleanup(func() { s.db.Drop(context.Background()) })
	require.NoError(t, s.Ping(ctx))
	assert.Equal(t, database, s.db.Name(), "the database the URI names")
	require.NoError(t, s.CreateUser(ctx, &schema.User{ID: "u-1", Username: "ana", PasswordHash: "x", Role: schema.RoleAdmin, Active: true}))
	require.NoError(t, s.Close())

	s, err = Open(ctx, uri)
	require.NoError(t, err, "creating the indexes again")
	defer s.Close()
	n, err := s.CountUsers(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.ErrorIs(t, s.CreateUser(ctx, &schema.User{ID: "u-2", Username: "ana"}), sync.ErrExists, "the unique index holds")
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := Open(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500")
	assert.Error(t, err)
	_, err = Open(ctx, "not a uri://user:secret@x")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "secret", "a bad URI is refused without quoting it")
}

// testClock is a clock that moves only when told.
type testClock struct {
	mu  gosync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const testLease = time.Minute

var at = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

// leaseStore is a fresh store whose leases last testLease on a clock the
// test moves.
func leaseStore(t *testing.T) (*Store, *testClock) {
	s := MustOpen(t)
	clock := &testClock{now: at}
	s.Now, s.Lease = clock.Now, testLease
	return s, clock
}

func record(id string, version int64, tokens ...string) *sync.Record {
	return &sync.Record{
		Collection: schema.Customers, ID: id, Version: version, UpdatedAt: at, UpdatedBy: "u-1",
		Data: json.RawMessage(fmt.Sprintf(`{"v":%d}`, version)), Tokens: tokens, Refs: []string{},
		History: []sync.Revision{{Version: version, MutationID: fmt.Sprintf("m-%s-%d", id, version)}},
	}
}

func put(t *testing.T, s *Store, r *sync.Record, prev int64) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, prev) }))
}

func watermark(t *testing.T, s *Store) int64 {
	t.Helper()
	wm, err := s.Watermark(context.Background())
	require.NoError(t, err)
	return wm
}

// pull reads the feed of tokens after checkpoint up to the watermark, page
// changes at a time, as a client does, and returns the changes and the
// checkpoint to pull from next.
func pull(ctx context.Context, s *Store, tokens []string, checkpoint int64, page int) ([]sync.Change, int64, error) {
	wm, err := s.Watermark(ctx)
	if err != nil {
		return nil, checkpoint, err
	}
	var all []sync.Change
	for {
		chs, err := s.Changes(ctx, tokens, checkpoint, wm, page, 0)
		if err != nil {
			return nil, checkpoint, err
		}
		all = append(all, chs...)
		if len(chs) < page {
			return all, wm, nil
		}
		checkpoint = chs[len(chs)-1].Seq
	}
}

// feed is what a reader of tokens pulls after checkpoint: "id@version" for
// held records, "-id@version" for gone ones.
func feed(t *testing.T, s *Store, checkpoint int64, tokens ...string) []string {
	t.Helper()
	chs, _, err := pull(context.Background(), s, tokens, checkpoint, 2)
	require.NoError(t, err)
	var out []string
	for _, ch := range chs {
		sign := ""
		if ch.Gone {
			sign = "-"
		}
		out = append(out, fmt.Sprintf("%s%s@%d", sign, ch.Record.ID, ch.Record.Version))
	}
	return out
}

// seqState is the state of seq, "" when it is not kept.
func seqState(t *testing.T, s *Store, seq int64) string {
	t.Helper()
	var d seqDoc
	err := findOne(context.Background(), "seq", s.seqs, bson.M{"_id": seq}, nil, &d)
	if errors.Is(err, sync.ErrNotFound) {
		return ""
	}
	require.NoError(t, err)
	return d.State
}

// abandonedSeq takes a seq for a writer that then stalls past its lease,
// and has a reader settle it as abandoned and read the feed past it; it
// returns the seq and that reader's checkpoint.
func abandonedSeq(t *testing.T, s *Store, clock *testClock) (seq, checkpoint int64) {
	t.Helper()
	seq, err := s.takeSeq(context.Background())
	require.NoError(t, err)
	clock.Advance(testLease + time.Second)
	checkpoint = watermark(t, s)
	require.Equal(t, seq, checkpoint)
	require.Equal(t, seqAbandoned, seqState(t, s, seq))
	return seq, checkpoint
}

func TestPendingSeqHoldsWatermarkUntilLeaseRunsOut(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	a := record("c-a", 1, "t1")
	put(t, s, a, 0)
	stalled, err := s.takeSeq(ctx) // a writer takes a seq and goes away
	require.NoError(t, err)
	b := record("c-b", 1, "t1")
	put(t, s, b, 0)
	require.Equal(t, []int64{1, 2, 3}, []int64{a.Seq, stalled, b.Seq})

	assert.Equal(t, a.Seq, watermark(t, s), "a pending seq holds the watermark below it")
	assert.Equal(t, []string{"c-a@1"}, feed(t, s, 0, "t1"))
	clock.Advance(testLease - time.Second)
	assert.Equal(t, a.Seq, watermark(t, s), "while its lease runs")

	clock.Advance(2 * time.Second)
	assert.Equal(t, b.Seq, watermark(t, s), "then it is settled and passed")
	assert.Equal(t, seqAbandoned, seqState(t, s, stalled), "nothing was written at it")
	assert.Equal(t, []string{"c-a@1", "c-b@1"}, feed(t, s, 0, "t1"))
}

func TestLeaseSettlesWriteOfDeadWriterAsDone(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	seq, err := s.takeSeq(ctx)
	require.NoError(t, err)
	r := record("c-a", 1, "t1")
	require.NoError(t, s.writeAt(ctx, r, prior{}, seq)) // and dies before finishing
	assert.Equal(t, seq-1, watermark(t, s))

	clock.Advance(testLease + time.Second)
	assert.Equal(t, seq, watermark(t, s))
	assert.Equal(t, seqDone, seqState(t, s, seq), "the record carries it")
	assert.Equal(t, []string{"c-a@1"}, feed(t, s, 0, "t1"))
}

func TestAbandonedWriterRestamps(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	a := record("c-a", 1, "t1")
	put(t, s, a, 0)

	// A writer moving c-a from t1 to t2 takes a seq and stalls past its
	// lease; a reader settles the seq as abandoned and moves past it.
	seq, checkpoint := abandonedSeq(t, s, clock)

	// The writer wakes, writes at its seq and finishes.
	a2 := record("c-a", 2, "t2")
	require.NoError(t, s.writeAt(ctx, a2, prior{version: 1, seq: a.Seq, tokens: a.Tokens}, seq))
	restamped, err := s.finish(ctx, seq)
	require.NoError(t, err)
	assert.Greater(t, restamped, seq, "the write moves to a fresh seq")
	assert.Equal(t, seqDone, seqState(t, s, restamped))
	got, err := s.recordDoc(ctx, recordKey(schema.Customers, "c-a"))
	require.NoError(t, err)
	assert.Equal(t, restamped, got.Seq)

	assert.Equal(t, []string{"c-a@2"}, feed(t, s, checkpoint, "t2"), "a reader past the old seq sees the write")
	assert.Equal(t, []string{"-c-a@2"}, feed(t, s, checkpoint, "t1"), "and the loss")
}

func TestAbandonedWriterWhoseRecordMovedOnRestampsItsLosses(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	put(t, s, record("c-a", 1, "t1"), 0)
	seq, checkpoint := abandonedSeq(t, s, clock)

	// The stalled writer moves c-a to t2; a second writer updates it
	// before the first one finishes.
	require.NoError(t, s.writeAt(ctx, record("c-a", 2, "t2"), prior{version: 1, seq: 1, tokens: []string{"t1"}}, seq))
	a3 := record("c-a", 3, "t2")
	put(t, s, a3, 2)
	_, err := s.finish(ctx, seq)
	require.NoError(t, err)

	assert.Equal(t, []string{"-c-a@3"}, feed(t, s, checkpoint, "t1"), "holders of t1 learn of the loss")
	assert.Equal(t, []string{"c-a@3"}, feed(t, s, checkpoint, "t2"))
}

func TestPruneRestampsWriteOfWriterThatDiedLate(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	put(t, s, record("c-a", 1, "t1"), 0)
	seq, checkpoint := abandonedSeq(t, s, clock)

	// The writer wakes, writes at its abandoned seq, and dies.
	require.NoError(t, s.writeAt(ctx, record("c-b", 1, "t1"), prior{}, seq))
	assert.Empty(t, feed(t, s, checkpoint, "t1"), "readers past the seq miss it for now")

	clock.Advance(testLease + time.Second)
	n, err := s.SweepAnswers(ctx, at)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, []string{"c-b@1"}, feed(t, s, checkpoint, "t1"), "prune re-stamped it")
	assert.Empty(t, seqState(t, s, seq), "and pruned the seq")
	assert.Empty(t, seqState(t, s, 1), "and the seqs done before it")
	top, err := s.topSeq(ctx)
	require.NoError(t, err)
	assert.Equal(t, seqDone, seqState(t, s, top), "the highest seq stays")
}

func TestStaleWriteAbandonsItsSeqAndLeavesNoLoss(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	put(t, s, record("c-a", 1, "t1"), 0)
	seq, err := s.takeSeq(ctx)
	require.NoError(t, err)
	// Another writer gets version 2 in first, keeping t1.
	put(t, s, record("c-a", 2, "t1"), 1)
	err = s.writeAt(ctx, record("c-a", 2, "t2"), prior{version: 1, seq: 1, tokens: []string{"t1"}}, seq)
	assert.ErrorIs(t, err, sync.ErrStale)
	assert.Equal(t, seqAbandoned, seqState(t, s, seq))
	assert.Equal(t, []string{"c-a@2"}, feed(t, s, 0, "t1"), "no loss is reported")
	n, err := s.gone.CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, n, "the gone documents were taken back")
}

func TestTakeSeqIsDense(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	const takers, each = 4, 10
	var (
		mu   gosync.Mutex
		seqs []int64
		wg   gosync.WaitGroup
	)
	for range takers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				seq, err := s.takeSeq(ctx)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(seqs)
	want := make([]int64, takers*each)
	for i := range want {
		want[i] = int64(i + 1)
	}
	assert.Equal(t, want, seqs)
}

func TestStoresShareOnlyTheDatabase(t *testing.T) {
	ctx := context.Background()
	a := MustOpen(t)
	b, err := New(ctx, a.client, a.db.Name())
	require.NoError(t, err)
	r := record("c-a", 1, "t1")
	put(t, a, r, 0)
	assert.Equal(t, r.Seq, watermark(t, b))
	assert.Equal(t, []string{"c-a@1"}, feed(t, b, 0, "t1"))
	err = b.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, record("c-a", 1, "t1"), 0) })
	assert.ErrorIs(t, err, sync.ErrStale)
	r2 := record("c-a", 2, "t2")
	put(t, b, r2, 1)
	assert.Greater(t, r2.Seq, r.Seq)
	assert.Equal(t, []string{"-c-a@2"}, feed(t, a, r.Seq, "t1"))
}

func TestRewriteOfSameVersionIsGuardedBySeq(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	a := record("c-a", 1, "t1")
	put(t, s, a, 0)
	was := prior{version: 1, seq: a.Seq, tokens: a.Tokens}
	// Between a writer's read and its write, another rewrites version 1.
	put(t, s, record("c-a", 1, "t2"), 1)
	seq, err := s.takeSeq(ctx)
	require.NoError(t, err)
	err = s.writeAt(ctx, record("c-a", 1, "t3"), was, seq)
	assert.ErrorIs(t, err, sync.ErrStale, "what the writer read has changed")
	assert.Equal(t, []string{"-c-a@1"}, feed(t, s, 0, "t1"))
	assert.Equal(t, []string{"c-a@1"}, feed(t, s, 0, "t2"))
}

// TestNeverSkipWhileLeasesRunOut is the change-feed invariant with writers
// that stall after taking their seq, so that others commit past it, some
// of them for longer than their lease, so that readers abandon their seqs
// and they must re-stamp their writes, and with records moving between
// tokens: every reader still ends with exactly the server's state.
func TestNeverSkipWhileLeasesRunOut(t *testing.T) {
	s := MustOpen(t)
	s.Lease = 20 * time.Millisecond
	var stalls atomic.Int64
	s.stall = func() { // of every three writes, one is slow, one outlives its lease
		switch stalls.Add(1) % 3 {
		case 1:
			time.Sleep(s.Lease / 2)
		case 2:
			time.Sleep(2 * s.Lease)
		}
	}
	ctx := context.Background()
	const (
		writers = 3
		records = 3
		updates = 6
	)
	tokenSets := [][]string{{"t1"}, {"t2"}, {"t1", "t2"}}
	tokensOf := func(v int64) []string { return tokenSets[v%int64(len(tokenSets))] }

	type entry struct {
		version int64
		present bool
	}
	var (
		wg, rg gosync.WaitGroup
		done   atomic.Bool
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := int64(1); v <= updates; v++ {
				for i := range records {
					r := record(fmt.Sprintf("w%d-r%d", w, i), v, tokensOf(int64(w+i)+v)...)
					assert.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, v-1) }))
				}
			}
		}()
	}
	readers := [][]string{{"t1"}, {"t2"}, {"t1", "t2"}}
	replicas := make([]map[string]entry, len(readers))
	for i, tokens := range readers {
		replicas[i] = map[string]entry{}
		rg.Add(1)
		go func() {
			defer rg.Done()
			var checkpoint int64
			for last := false; !last; {
				last = done.Load() // one more pass after the writers stop
				chs, next, err := pull(ctx, s, tokens, checkpoint, 4)
				if !assert.NoError(t, err) {
					return
				}
				for _, ch := range chs {
					if ch.Record.Version > replicas[i][ch.Record.ID].version {
						replicas[i][ch.Record.ID] = entry{ch.Record.Version, !ch.Gone}
					}
				}
				checkpoint = next
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()

	for i, tokens := range readers {
		for w := range writers {
			for j := range records {
				id := fmt.Sprintf("w%d-r%d", w, j)
				want := entry{updates, holdsAny(tokensOf(int64(w+j)+updates), tokens)}
				got := replicas[i][id]
				if !want.present {
					got.version = want.version // a reader that never held it need not know it
				}
				assert.Equalf(t, want, got, "reader of %v, record %s", tokens, id)
			}
		}
	}
	n, err := s.seqs.CountDocuments(ctx, bson.M{"state": seqAbandoned})
	require.NoError(t, err)
	assert.Positive(t, n, "readers abandoned seqs of live writers")
}

// Two engine instances on one FerretDB, as two fieldsync processes on one
// MongoDB would be (one connection: FerretDB's guarded updates are not
// atomic under concurrency).
func TestConvergenceOfTwoEnginesOnOneFerretDB(t *testing.T) {
	storetest.TestConvergence(t, func(t *testing.T) []storetest.Store {
		s := MustOpen(t)
		return []storetest.Store{s, s}
	}, 40)
}

// Two stores, each with its own client and a normal pool, on one
// database, as two fieldsync processes have: on the test bed (FerretDB
// behind a proxy that runs one command at a time), and on the MongoDB at
// FIELDSYNC_TEST_MONGO_URI when it is set.
func TestConvergenceOfTwoPooledStores(t *testing.T) {
	uri := os.Getenv("FIELDSYNC_TEST_MONGO_URI")
	if uri == "" {
		uri = ferret.Start(t).URI()
	}
	storetest.TestConvergence(t, func(t *testing.T) []storetest.Store {
		database := freshDatabase()
		return []storetest.Store{mustOpenPooled(t, uri, database), mustOpenPooled(t, uri, database)}
	}, 40)
}

// mustOpenPooled returns a store on database at uri through a client of
// its own with a normal pool; the database is dropped when the test ends.
func mustOpenPooled(tb testing.TB, uri, database string) *Store {
	tb.Helper()
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	require.NoError(tb, err)
	tb.Cleanup(func() { client.Disconnect(context.Background()) })
	s, err := New(ctx, client, database)
	require.NoError(tb, err)
	tb.Cleanup(func() { s.db.Drop(context.Background()) })
	return s
}

// Crashes right after record writes, before their audit entries reached
// the audit collection, are simulated by deleting from it every entry the
// record documents still carry (those already dropped from a document
// were projected before the drop): the sweep restores them from the
// documents.
func TestAuditProjectionRebuilt(t *testing.T) {
	s := MustOpen(t)
	storetest.TestAuditSurvivesLostProjection(t, s, func(t *testing.T) {
		ctx := context.Background()
		cur, err := s.records.Find(ctx, bson.M{})
		require.NoError(t, err)
		var docs []recordDoc
		require.NoError(t, cur.All(ctx, &docs))
		var keys []string
		for _, d := range docs {
			for _, e := range d.Audit {
				keys = append(keys, e.Key)
			}
		}
		res, err := s.audit.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": keys}})
		require.NoError(t, err)
		require.Positive(t, res.DeletedCount)
		_, err = s.meta.DeleteMany(context.Background(), bson.M{})
		require.NoError(t, err)
	})
}

// TestChangesLoadOnlyThePage reads a page of big records: what the server
// sends the store (its find and getMore replies) is about the page, not a
// page's limit of records, and carries no history.
func TestChangesLoadOnlyThePage(t *testing.T) {
	ctx := context.Background()
	var reading atomic.Bool
	var received atomic.Int64
	monitor := &event.CommandMonitor{Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
		if reading.Load() && (e.CommandName == "find" || e.CommandName == "getMore") {
			received.Add(int64(len(e.Reply)))
		}
	}}
	s := mustOpenMonitored(t, monitor)

	tokens := []string{"customers|all", "customers|terr:t-1", "customers|dist:d-1"}
	data := json.RawMessage(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 64<<10)))
	for i := range 100 {
		r := record(fmt.Sprintf("c-%03d", i), 1, tokens...)
		r.Data, r.History = data, []sync.Revision{{Version: 1, Data: data}}
		put(t, s, r, 0)
	}
	wm := watermark(t, s)

	reading.Store(true)
	chs, err := s.Changes(ctx, tokens, 0, wm, 100, 128<<10)
	reading.Store(false)
	require.NoError(t, err)
	require.Len(t, chs, 2, "the page ends with the record that reaches 128 KiB")
	// The whole limit, with history, would be 100 × 2 × 64 KiB ≈ 13 MiB.
	assert.Less(t, received.Load(), int64(3<<20), "received %d bytes for a page of 2 records", received.Load())
}
