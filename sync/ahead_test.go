package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	gosync "sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// betweenStore is the SQLite store with a write made once, when armed,
// right after the next read transaction: between the snapshot a push is
// decided on and the write transaction that stores it.
type betweenStore struct {
	*sqlitestore.Store
	mu      gosync.Mutex
	between func()
}

func (s *betweenStore) View(ctx context.Context, fn func(sync.RecordTx) error) error {
	err := s.Store.View(ctx, fn)
	s.mu.Lock()
	h := s.between
	s.between = nil
	s.mu.Unlock()
	if h != nil {
		h()
	}
	return err
}

// arm makes write run after the next read transaction, and returns a
// check that it ran.
func (s *betweenStore) arm(t *testing.T, write func()) func() {
	ran := false
	s.mu.Lock()
	s.between = func() { write(); ran = true }
	s.mu.Unlock()
	return func() { t.Helper(); require.True(t, ran, "the write between snapshot and commit ran") }
}

func newBetweenBed(t *testing.T) (*storetest.Bed, *betweenStore) {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	store := &betweenStore{Store: s}
	return storetest.NewBed(t, store), store
}

// recordOf reads a record as stored.
func recordOf(t *testing.T, s sync.RecordStore, c schema.Collection, id string) *sync.Record {
	t.Helper()
	var r *sync.Record
	require.NoError(t, s.View(context.Background(), func(tx sync.RecordTx) error {
		var err error
		r, err = tx.Record(context.Background(), c, id)
		return err
	}))
	return r
}

// Pushes are decided ahead of the write lock when nothing they read
// changes before they are stored.
func TestPushesDecidedAhead(t *testing.T) {
	b, _ := newBetweenBed(t)
	seed(b)
	before := b.Engine.PushDecisions()
	b.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	after := b.Engine.PushDecisions()
	assert.Equal(t, sync.PushDecisions{Ahead: before.Ahead + 1, Again: before.Again}, after)
}

// As a server runs it, the engine decides ahead the pushes of 32
// mutations or more, and smaller ones under the lock.
func TestSmallPushesDecidedUnderTheLock(t *testing.T) {
	b, store := newBetweenBed(t)
	seed(b)
	eng, err := sync.New(sync.Config{Store: store, Secret: storetest.Secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	push := func(n int) {
		req := &schema.PushRequest{DeviceID: "dev-rep1"}
		for i := range n {
			v := storetest.Up(schema.Visits, fmt.Sprintf("v-%d-%d", n, i), 0, visit("c-1", 52.52, 13.405))
			req.Mutations = append(req.Mutations, withID(v, n*100+i).Raw())
		}
		resp, err := eng.Push(context.Background(), b.Users["rep1"], req)
		require.NoError(t, err)
		for _, r := range resp.Results {
			require.Equal(t, schema.PushApplied, r.Status, "%+v", r)
		}
	}
	push(31)
	assert.Equal(t, sync.PushDecisions{Locked: 1}, eng.PushDecisions())
	push(32)
	assert.Equal(t, sync.PushDecisions{Ahead: 1, Locked: 1}, eng.PushDecisions())
}

// A visit decided on a snapshot in which its customer was in t-1, stored
// after the customer moved to t-2, takes t-2: the push is decided again.
func TestPushDecidedAgainWhenARecordItReadChanged(t *testing.T) {
	b, store := newBetweenBed(t)
	seed(b)
	b.SetScope("rep1", schema.RoleRep, "t-1", "t-2")
	ran := store.arm(t, func() { b.OK("admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-2", "A"))) })
	before := b.Engine.PushDecisions()
	b.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	ran()
	assert.Equal(t, before.Again+1, b.Engine.PushDecisions().Again)
	tokens := recordOf(t, store, schema.Visits, "v-1").Tokens
	assert.Contains(t, tokens, "visits|terr:t-2")
	assert.NotContains(t, tokens, "visits|terr:t-1")
}

// A rep's open visit stored by another device between the snapshot and
// the commit of a later visit's push is marked left without a check-out
// by that push: what a query of the snapshot found is confirmed too.
func TestPushDecidedAgainWhenAQueryItMadeChanged(t *testing.T) {
	b, store := newBetweenBed(t)
	seed(b)
	ran := store.arm(t, func() { b.OK("rep1", storetest.Up(schema.Visits, "v-early", 0, visit("c-1", 52.52, 13.405))) })
	later := visit("c-1", 52.52, 13.405)
	later["check_in"].(map[string]any)["at"] = "2026-11-23T10:00:00Z"
	b.OK("rep1", storetest.Up(schema.Visits, "v-late", 0, later))
	ran()
	version, early := b.Record(schema.Visits, "v-early")
	assert.Equal(t, int64(2), version)
	assert.Equal(t, true, early["check_out_missing"])
}

// An order decided on a snapshot and stored after the customer's other
// open orders changed is judged against them as they are at its commit:
// the customer's open orders are confirmed too, whether one was added to
// them meanwhile, one left them as another came (as many as before), or
// one only left them. c-1's credit limit is 100000.
func TestPushDecidedAgainWhenTheOpenOrdersChanged(t *testing.T) {
	order := func(status string, qty int) map[string]any {
		return map[string]any{"customer_id": "c-1", "status": status,
			"lines": []map[string]any{{"product_id": "p-1", "quantity": qty, "unit_price": 250}}}
	}
	for _, tc := range []struct {
		name  string
		open  int // o-0's quantity, at 250 a unit
		other []storetest.Mut
		want  string
	}{
		{"added", 1, []storetest.Mut{storetest.Up(schema.Orders, "o-1", 0, order("submitted", 359))}, "credit_hold"},
		{"swapped", 1, []storetest.Mut{storetest.Up(schema.Orders, "o-0", 1, order("cancelled", 1)),
			storetest.Up(schema.Orders, "o-1", 0, order("submitted", 360))}, "credit_hold"},
		{"left", 360, []storetest.Mut{storetest.Up(schema.Orders, "o-0", 1, order("cancelled", 360))}, "submitted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, store := newBetweenBed(t)
			seed(b)
			b.SetScope("rep2", schema.RoleRep, "t-1")
			b.OK("rep2", storetest.Up(schema.Orders, "o-0", 0, order("submitted", tc.open)))
			ran := store.arm(t, func() { b.OK("rep2", tc.other...) })
			b.OK("rep1", storetest.Up(schema.Orders, "o-2", 0, order("submitted", 80))) // 20000
			ran()
			_, o2 := b.Record(schema.Orders, "o-2")
			assert.Equal(t, tc.want, o2["status"])
		})
	}
}

// The same push sent twice, the second stored between the first's
// snapshot and its commit, writes each record once and answers both
// alike.
func TestPushRetriedWhileDecidedAhead(t *testing.T) {
	b, store := newBetweenBed(t)
	seed(b)
	muts := []storetest.Mut{storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405))}
	rep := b.Users["rep1"]
	req := &schema.PushRequest{DeviceID: "dev-rep1", Mutations: []json.RawMessage{withID(muts[0], 1).Raw()}}
	var second *schema.PushResponse
	ran := store.arm(t, func() {
		var err error
		second, err = b.Engine.Push(context.Background(), rep, req)
		require.NoError(t, err)
	})
	first, err := b.Engine.Push(context.Background(), rep, req)
	require.NoError(t, err)
	ran()
	assert.Equal(t, second.Results, first.Results)
	assert.Equal(t, schema.PushApplied, first.Results[0].Status)
	assert.Equal(t, int64(1), recordOf(t, store, schema.Visits, "v-1").Version)
}

// A push decided ahead sees its own writes where it asks the snapshot
// about facts: an open visit that follows, in the same push, a later
// visit of its rep is stored left without a check-out.
func TestPushDecidedAheadSeesItsOwnLaterVisit(t *testing.T) {
	b, _ := newBetweenBed(t)
	seed(b)
	later := visit("c-1", 52.52, 13.405)
	later["check_in"].(map[string]any)["at"] = "2026-11-23T10:00:00Z"
	later["check_out"] = map[string]any{"at": "2026-11-23T10:20:00Z", "lat": 52.52, "lng": 13.405}
	before := b.Engine.PushDecisions()
	b.OK("rep1", storetest.Up(schema.Visits, "v-late", 0, later), storetest.Up(schema.Visits, "v-early", 0, visit("c-1", 52.52, 13.405)))
	assert.Equal(t, before.Ahead+1, b.Engine.PushDecisions().Ahead)
	version, early := b.Record(schema.Visits, "v-early")
	assert.Equal(t, int64(1), version)
	assert.Equal(t, true, early["check_out_missing"])
}
