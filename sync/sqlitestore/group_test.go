package sqlitestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// openStore opens a store in a fresh temp dir, closed when the test ends.
func openStore(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), "fieldsync.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { s.Close() })
	return s
}

// pendingUnits returns how many units wait for a transaction.
func pendingUnits(s *Store) int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.pending)
}

// inOneGroup starts the calls, each of which makes one Update, while a
// write transaction is held open, one after the other as each one's unit
// is queued, and then lets that transaction end: the calls' units run in
// the next transaction, in the order given. It returns each call's error.
func inOneGroup(t *testing.T, s *Store, calls ...func() error) []error {
	t.Helper()
	require.LessOrEqual(t, len(calls), maxGroup)
	inside, release := make(chan struct{}), make(chan struct{})
	var wg gosync.WaitGroup
	var holdErr error
	wg.Go(func() {
		holdErr = s.Update(context.Background(), func(sync.RecordTx) error {
			close(inside)
			<-release
			return nil
		})
	})
	<-inside
	errs := make([]error, len(calls))
	for i, call := range calls {
		wg.Go(func() { errs[i] = call() })
		require.Eventually(t, func() bool { return pendingUnits(s) == i+1 }, 30*time.Second, time.Millisecond,
			"call %d never queued its unit", i)
	}
	close(release)
	wg.Wait()
	require.NoError(t, holdErr)
	return errs
}

// customerRecord is a record of a customer in territory t-1, first version.
func customerRecord(id string) *sync.Record {
	return &sync.Record{
		Collection: schema.Customers, ID: id, Version: 1, UpdatedAt: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC),
		UpdatedBy: "u-1", Data: json.RawMessage(`{"name":"` + id + `"}`), Tokens: []string{"customers|terr:t-1"}, Refs: []string{},
		History: []sync.Revision{{Version: 1, MutationID: "m-" + id, UserID: "u-1"}},
	}
}

// feed returns the feed through the token of customerRecord, by record id.
func feed(t *testing.T, s *Store) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	wm, err := s.Watermark(ctx)
	require.NoError(t, err)
	changes, err := s.Changes(ctx, []string{"customers|terr:t-1"}, 0, wm, 10_000, 0)
	require.NoError(t, err)
	out := map[string]int64{}
	for _, c := range changes {
		out[c.Record.ID] = c.Seq
	}
	return out
}

// Updates that arrive while a transaction runs share the next one, and
// their writes take seqs in the order they arrived.
func TestUpdatesThatWaitShareOneTransaction(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	const n = 8
	txs := make([]string, n)
	calls := make([]func() error, n)
	for i := range calls {
		calls[i] = func() error {
			return s.Update(ctx, func(tx sync.RecordTx) error {
				txs[i] = fmt.Sprintf("%p", tx)
				return tx.Put(ctx, customerRecord(fmt.Sprintf("c-%d", i)), 0)
			})
		}
	}
	before := s.CommitGroups()
	for i, err := range inOneGroup(t, s, calls...) {
		require.NoError(t, err, "call %d", i)
	}
	after := s.CommitGroups()
	assert.Equal(t, before.Transactions+2, after.Transactions, "the holding unit's group and the group of the others")
	assert.Equal(t, before.Units+n+1, after.Units)
	require.Equal(t, []float64{1, 2, 4, 8, 16, 32, 64}, after.Bounds)
	for i, b := range after.Bounds {
		want := before.AtMost[i] // a group of 1 and a group of 8
		if b >= 1 {
			want++
		}
		if b >= n {
			want++
		}
		assert.Equal(t, want, after.AtMost[i], "groups of at most %v units", b)
	}
	for i := range txs {
		assert.Equal(t, txs[0], txs[i], "call %d ran in a transaction of its own", i)
	}
	seqs := feed(t, s)
	require.Len(t, seqs, n)
	for i := range n {
		assert.Equal(t, int64(i+1), seqs[fmt.Sprintf("c-%d", i)], "seq of the write of call %d", i)
	}
}

// A unit of work that fails, in a group, loses its own writes and answers
// and nothing of the others', whether SQLite kept the transaction going or
// gave it up whole.
func TestAFailingUnitSpoilsNoOtherInItsGroup(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name string
		fail func(ctx context.Context, tx sync.RecordTx) error
	}{
		{"its function fails", func(context.Context, sync.RecordTx) error { return boom }},
		{"its function panics", func(context.Context, sync.RecordTx) error { panic(boom) }},
		{"SQLite gives up the transaction", func(ctx context.Context, rtx sync.RecordTx) error {
			_, err := rtx.(*tx).t.ExecContext(ctx, "ROLLBACK")
			return errors.Join(boom, err)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t)
			ctx := context.Background()
			const n, failing = 5, 2
			var mu gosync.Mutex
			runs := map[int]int{}
			calls := make([]func() error, n)
			for i := range calls {
				id := fmt.Sprintf("c-%d", i)
				calls[i] = func() error {
					return s.Update(ctx, func(tx sync.RecordTx) error {
						mu.Lock()
						runs[i]++
						mu.Unlock()
						if err := tx.Put(ctx, customerRecord(id), 0); err != nil {
							return err
						}
						if err := tx.SaveAnswer(ctx, &sync.Answer{UserID: "u-1", MutationID: "m-" + id, Body: json.RawMessage(`{}`), At: time.Now()}); err != nil {
							return err
						}
						if i == failing {
							return tc.fail(ctx, tx)
						}
						return nil
					})
				}
			}
			errs := inOneGroup(t, s, calls...)
			seqs := feed(t, s)
			var want int64
			for i, err := range errs {
				id := fmt.Sprintf("c-%d", i)
				var answered bool
				require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
					got, err := tx.Answers(ctx, "u-1", []string{"m-" + id})
					answered = got["m-"+id] != nil
					return err
				}))
				if i == failing {
					assert.ErrorContains(t, err, boom.Error())
					assert.NotContains(t, seqs, id, "the failed unit's record")
					assert.False(t, answered, "the failed unit's answer was stored")
					continue
				}
				want++
				assert.NoError(t, err, "call %d", i)
				assert.Equal(t, want, seqs[id], "seq of call %d's write: the failed unit leaves no hole", i)
				assert.True(t, answered, "call %d's answer is missing", i)
			}
			assert.Len(t, seqs, n-1)
			assert.Equal(t, 1, runs[failing], "the failed unit ran again")
			assert.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, customerRecord("c-after"), 0) }),
				"a write after the group")
		})
	}
}

// A unit that fails takes the answers it saved with it: a later unit of
// the same transaction with the same mutation (a retry that raced the
// first try) finds none, so it applies the mutation and its answer is the
// one stored.
func TestAFailedUnitsAnswersAreForgotten(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	boom := errors.New("boom")
	try := func(fail bool) func() error {
		return func() error {
			return s.Update(ctx, func(tx sync.RecordTx) error {
				got, err := tx.Answers(ctx, "u-1", []string{"m-c-1"})
				if err != nil {
					return err
				}
				if got["m-c-1"] != nil {
					return nil // a replay: nothing to write
				}
				if err := tx.Put(ctx, customerRecord("c-1"), 0); err != nil {
					return err
				}
				body := `{"try":"second"}`
				if fail {
					body = `{"try":"first"}`
				}
				if err := tx.SaveAnswer(ctx, &sync.Answer{UserID: "u-1", MutationID: "m-c-1", Body: json.RawMessage(body), At: time.Now()}); err != nil {
					return err
				}
				if fail {
					return boom
				}
				return nil
			})
		}
	}
	errs := inOneGroup(t, s, try(true), try(false))
	assert.ErrorIs(t, errs[0], boom)
	require.NoError(t, errs[1])
	assert.Contains(t, feed(t, s), "c-1", "the second try wrote the record")
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		got, err := tx.Answers(ctx, "u-1", []string{"m-c-1"})
		require.NotNil(t, got["m-c-1"], "the second try's answer is stored")
		assert.JSONEq(t, `{"try":"second"}`, string(got["m-c-1"].Body))
		return err
	}))
}

// Update returns only once its writes are committed: a read right after
// it, on the read connections, sees them.
func TestUpdateReturnsAfterItsTransactionCommits(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	const n = 16
	calls := make([]func() error, n)
	for i := range calls {
		id := fmt.Sprintf("c-%d", i)
		calls[i] = func() error {
			if err := s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, customerRecord(id), 0) }); err != nil {
				return err
			}
			return s.View(ctx, func(tx sync.RecordTx) error {
				_, err := tx.Record(ctx, schema.Customers, id)
				return err
			})
		}
	}
	for i, err := range inOneGroup(t, s, calls...) {
		assert.NoError(t, err, "call %d: its write was not readable when Update returned", i)
	}
}

// boomKey marks, in a context, a push whose unit of work is to fail.
type boomKey struct{}

// failingStore fails the unit of work of pushes marked with boomKey after
// the engine did all of it.
type failingStore struct{ *Store }

var errBoom = errors.New("store failure")

func (s failingStore) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	return s.Store.Update(ctx, func(tx sync.RecordTx) error {
		if err := fn(tx); err != nil {
			return err
		}
		if ctx.Value(boomKey{}) != nil {
			return errBoom
		}
		return nil
	})
}

// pushEnv is an engine on a store, with two admins.
type pushEnv struct {
	s            *Store
	eng          *sync.Engine
	ann, bob     schema.Principal
	customerData func(name string) json.RawMessage
}

func newPushEnv(t *testing.T) *pushEnv {
	t.Helper()
	s := openStore(t)
	eng, err := sync.New(sync.Config{Store: failingStore{s}, Secret: []byte("a secret of at least thirty-two bytes, for tests"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	e := &pushEnv{s: s, eng: eng,
		ann: schema.Principal{UserID: "u-ann", Role: schema.RoleAdmin, DeviceID: "d-ann"},
		bob: schema.Principal{UserID: "u-bob", Role: schema.RoleAdmin, DeviceID: "d-bob"},
		customerData: func(name string) json.RawMessage {
			return json.RawMessage(`{"code":"` + name + `","name":"` + name + `","territory_id":"t-1","grade":"A","lat":52.5,"lng":13.4,"credit_limit":1000}`)
		},
	}
	res := e.push(t, context.Background(), e.ann, mutation("m-t", "territories", "t-1", 0, `{"name":"North","region":"EU"}`))
	require.Equal(t, schema.PushApplied, res.Results[0].Status)
	return e
}

// mutation is the JSON of one mutation; data empty for a delete.
func mutation(mid, coll, id string, base int64, data string) json.RawMessage {
	op := "upsert"
	if data == "" {
		op, data = "delete", "null"
	}
	return json.RawMessage(fmt.Sprintf(`{"mutation_id":%q,"collection":%q,"id":%q,"op":%q,"base_version":%d,"data":%s}`, mid, coll, id, op, base, data))
}

func (e *pushEnv) push(t *testing.T, ctx context.Context, p schema.Principal, muts ...json.RawMessage) *schema.PushResponse {
	t.Helper()
	resp, err := e.eng.Push(ctx, p, &schema.PushRequest{DeviceID: p.DeviceID, Mutations: muts})
	require.NoError(t, err)
	return resp
}

// Pushes that share a transaction each get their own answers: a retry of
// a push in the same group gets the same answers and writes nothing twice,
// another user's same mutation id is its own, a rejected mutation stops
// nothing, and a later push in the group sees what an earlier one wrote.
func TestGroupedPushesKeepTheirOwnAnswers(t *testing.T) {
	e := newPushEnv(t)
	ctx := context.Background()
	first := []json.RawMessage{
		mutation("m-1", "customers", "c-1", 0, string(e.customerData("One"))),
		mutation("m-2", "customers", "c-2", 0, `{"name":"no code, no territory"}`),
		mutation("m-3", "customers", "c-3", 0, string(e.customerData("Three"))),
	}
	answers := make([]*schema.PushResponse, 4)
	calls := []func() error{
		func() error { answers[0] = e.push(t, ctx, e.ann, first...); return nil },
		func() error { answers[1] = e.push(t, ctx, e.ann, first...); return nil }, // a retry while the first is in flight
		func() error {
			answers[2] = e.push(t, ctx, e.bob, mutation("m-1", "customers", "c-9", 0, string(e.customerData("Nine"))))
			return nil
		},
		func() error {
			answers[3] = e.push(t, ctx, e.bob, mutation("m-4", "customers", "c-1", 1, string(e.customerData("One, renamed"))))
			return nil
		},
	}
	for _, err := range inOneGroup(t, e.s, calls...) {
		require.NoError(t, err)
	}
	status := func(r *schema.PushResponse) []string {
		var out []string
		for _, res := range r.Results {
			out = append(out, fmt.Sprintf("%s %s v%d", res.MutationID, res.Status, res.Version))
		}
		return out
	}
	assert.Equal(t, []string{"m-1 applied v1", "m-2 rejected v0", "m-3 applied v1"}, status(answers[0]))
	assert.Equal(t, answers[0], answers[1], "the retry's answers")
	assert.Equal(t, []string{"m-1 applied v1"}, status(answers[2]))
	assert.Equal(t, []string{"m-4 applied v2"}, status(answers[3]))

	require.NoError(t, e.s.View(ctx, func(tx sync.RecordTx) error {
		c1, err := tx.Record(ctx, schema.Customers, "c-1")
		require.NoError(t, err)
		assert.Equal(t, int64(2), c1.Version)
		var writes []string
		for _, h := range c1.History {
			writes = append(writes, h.UserID+" "+h.MutationID)
		}
		assert.Equal(t, []string{"u-ann m-1", "u-bob m-4"}, writes, "c-1's writes")
		c9, err := tx.Record(ctx, schema.Customers, "c-9")
		require.NoError(t, err)
		assert.Equal(t, "u-bob", c9.UpdatedBy)
		return nil
	}))
}

// A push whose whole unit of work fails in a group fails alone: nothing
// of it is written or remembered, so that its retry applies it, and the
// others of the group are applied.
func TestAFailingPushSpoilsNoOtherInItsGroup(t *testing.T) {
	e := newPushEnv(t)
	ctx := context.Background()
	doomed := []json.RawMessage{
		mutation("m-10", "customers", "c-10", 0, string(e.customerData("Ten"))),
		mutation("m-11", "customers", "c-11", 0, string(e.customerData("Eleven"))),
	}
	var ok1, ok2 *schema.PushResponse
	var failed error
	errs := inOneGroup(t, e.s,
		func() error {
			ok1 = e.push(t, ctx, e.ann, mutation("m-20", "customers", "c-20", 0, string(e.customerData("Twenty"))))
			return nil
		},
		func() error {
			_, failed = e.eng.Push(context.WithValue(ctx, boomKey{}, true), e.ann, &schema.PushRequest{DeviceID: "d-ann", Mutations: doomed})
			return nil
		},
		func() error {
			ok2 = e.push(t, ctx, e.bob, mutation("m-21", "customers", "c-21", 0, string(e.customerData("Twenty-one"))))
			return nil
		},
	)
	for _, err := range errs {
		require.NoError(t, err)
	}
	assert.ErrorIs(t, failed, errBoom)
	assert.Equal(t, schema.PushApplied, ok1.Results[0].Status)
	assert.Equal(t, schema.PushApplied, ok2.Results[0].Status)
	seqs := feed(t, e.s)
	assert.NotContains(t, seqs, "c-10")
	assert.NotContains(t, seqs, "c-11")
	assert.Equal(t, seqs["c-20"]+1, seqs["c-21"], "the failed push left a hole in the feed")

	retry := e.push(t, ctx, e.ann, doomed...)
	for _, r := range retry.Results {
		assert.Equal(t, schema.PushApplied, r.Status, "%s", r.MutationID)
		assert.Equal(t, int64(1), r.Version, "%s", r.MutationID)
	}
}

// Under concurrent pushes, each push's writes take consecutive seqs in the
// order of its mutations, and a reader that follows the feed while they
// run ends with exactly the records written.
func TestConcurrentPushesKeepFeedOrder(t *testing.T) {
	e := newPushEnv(t)
	ctx := context.Background()
	const writers, pushes, perPush = 12, 8, 3
	done := make(chan struct{})
	seen := map[string]int64{}
	var readErr error
	var reader gosync.WaitGroup
	reader.Go(func() {
		var after int64
		for last := false; ; {
			select {
			case <-done:
				last = true
			default:
			}
			wm, err := e.s.Watermark(ctx)
			if err != nil {
				readErr = err
				return
			}
			changes, err := e.s.Changes(ctx, []string{"customers|all"}, after, wm, 10_000, 0)
			if err != nil {
				readErr = err
				return
			}
			for _, c := range changes {
				seen[c.Record.ID] = c.Record.Version
			}
			after = wm
			if last {
				return
			}
		}
	})
	var wg gosync.WaitGroup
	for w := range writers {
		p := e.ann
		if w%2 == 1 {
			p = e.bob
		}
		wg.Go(func() {
			for n := range pushes {
				var muts []json.RawMessage
				for k := range perPush {
					id := fmt.Sprintf("c-%d-%d-%d", w, n, k)
					muts = append(muts, mutation("m-"+id, "customers", id, 0, string(e.customerData(id))))
				}
				resp, err := e.eng.Push(ctx, p, &schema.PushRequest{DeviceID: p.DeviceID, Mutations: muts})
				if !assert.NoError(t, err) {
					return
				}
				for _, r := range resp.Results {
					assert.Equal(t, schema.PushApplied, r.Status, "%s", r.MutationID)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	reader.Wait()
	require.NoError(t, readErr)

	wm, err := e.s.Watermark(ctx)
	require.NoError(t, err)
	changes, err := e.s.Changes(ctx, []string{"customers|all"}, 0, wm, 10_000, 0)
	require.NoError(t, err)
	seqs := map[string]int64{}
	for _, c := range changes {
		seqs[c.Record.ID] = c.Seq
	}
	require.Len(t, seqs, writers*pushes*perPush)
	assert.Len(t, seen, writers*pushes*perPush, "records the following reader saw")
	for w := range writers {
		for n := range pushes {
			first := seqs[fmt.Sprintf("c-%d-%d-0", w, n)]
			for k := 1; k < perPush; k++ {
				assert.Equal(t, first+int64(k), seqs[fmt.Sprintf("c-%d-%d-%d", w, n, k)], "seq of mutation %d of push %d of writer %d", k, n, w)
			}
		}
	}
}
