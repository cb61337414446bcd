package sync_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// watchedStore tells whether a write transaction is open.
type watchedStore struct {
	*sqlitestore.Store
	mu     gosync.Mutex
	inside bool
}

func (s *watchedStore) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	return s.Store.Update(ctx, func(tx sync.RecordTx) error {
		s.set(true)
		defer s.set(false)
		return fn(tx)
	})
}

func (s *watchedStore) set(v bool) { s.mu.Lock(); s.inside = v; s.mu.Unlock() }
func (s *watchedStore) locked() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inside
}

// lockedReads is a photo store that counts the reads made while the
// record store's write lock is held.
type lockedReads struct {
	store          *watchedStore
	reads, blocked int
}

func (p *lockedReads) PhotoFacts(ctx context.Context, sum string) (schema.PhotoFacts, error) {
	p.reads++
	if p.store.locked() {
		p.blocked++
	}
	return schema.PhotoFacts{Stored: true, Size: 10}, nil
}

// The photo store is never read while the write lock is held, whether a
// photo record is pushed before or after its bytes arrive.
func TestNoPhotoStoreReadsUnderTheWriteLock(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	store := &watchedStore{Store: s}
	photos := &lockedReads{store: store}
	eng, err := sync.New(sync.Config{Store: store, Secret: storetest.Secret, Photos: photos,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) }})
	require.NoError(t, err)
	require.NoError(t, store.CreateUser(ctx, &schema.User{ID: "u-rep1", Username: "rep1", PasswordHash: "x", Role: schema.RoleRep,
		Territories: []string{"t-1"}, Active: true}))
	admin := schema.Principal{UserID: "u-admin", Role: schema.RoleAdmin}
	rep := schema.Principal{UserID: "u-rep1", Role: schema.RoleRep, Territories: []string{"t-1"}}
	push := func(p schema.Principal, muts ...storetest.Mut) []schema.PushResult {
		t.Helper()
		req := &schema.PushRequest{}
		for i, m := range muts {
			req.Mutations = append(req.Mutations, withID(m, int(time.Now().UnixNano())+i).Raw())
		}
		resp, err := eng.Push(ctx, p, req)
		require.NoError(t, err)
		return resp.Results
	}
	push(admin, storetest.Up(schema.Territories, "t-1", 0, territory("North")), storetest.Up(schema.Customers, "c-1", 0, customer("t-1", "A")))
	hash := strings.Repeat("ab", 32)
	res := push(rep, storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)),
		storetest.Up(schema.Photos, "ph-1", 0, map[string]any{"visit_id": "v-1", "sha256": hash, "content_type": "image/jpeg", "size": 10}))
	assert.Equal(t, []string{"applied", "applied"}, statuses(res))
	require.NoError(t, eng.PhotoArrived(ctx, hash, "u-rep1"))
	push(rep, storetest.Up(schema.Photos, "ph-2", 0, map[string]any{"visit_id": "v-1", "sha256": hash, "content_type": "image/jpeg", "size": 10}))

	assert.Positive(t, photos.reads, "the photo store was asked")
	assert.Zero(t, photos.blocked, "never under the write lock")
}
