package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// crashingStore is a store handle whose units of work, once armed, stop
// after a number of record writes. Failing the unit there rolls its
// transaction back, as SQLite does on reopening a file whose writer died
// inside a transaction.
type crashingStore struct {
	*sqlitestore.Store
	after  int
	during func() // nil: not armed
}

// Update runs fn, through a tx that stops the unit as a crash would when
// the store is armed.
func (s *crashingStore) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	if s.during == nil {
		return s.Store.Update(ctx, fn)
	}
	return s.Store.Update(ctx, func(tx sync.RecordTx) error { return fn(&crashingTx{RecordTx: tx, s: s}) })
}

type crashingTx struct {
	sync.RecordTx
	s    *crashingStore
	puts int
}

func (t *crashingTx) Put(ctx context.Context, r *sync.Record, prev int64) error {
	if err := t.RecordTx.Put(ctx, r, prev); err != nil {
		return err
	}
	if t.puts++; t.puts == t.s.after && t.s.during != nil {
		during := t.s.during
		t.s.during = nil
		during()
		return storetest.ErrCrash
	}
	return nil
}

// A move on two handles onto one file, crashed half way: its transaction
// is rolled back whole, and the client's retry moves everything at once.
func TestMoveNeverHalfApplied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fieldsync.db")
	var stores []storetest.Store
	var crashing *crashingStore
	for i := range 2 {
		s, err := sqlitestore.Open(context.Background(), path)
		require.NoError(t, err)
		t.Cleanup(func() { s.Close() })
		if i == 0 {
			crashing = &crashingStore{Store: s}
			stores = append(stores, crashing)
		} else {
			stores = append(stores, s)
		}
	}
	storetest.TestMove(t, storetest.MoveBed{
		Stores: stores,
		Now:    func() time.Time { return time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC) },
		Crash: func(after int, during func()) {
			crashing.after, crashing.during = after, during
		},
		Resume: func(check func(string)) {},
	})
}
