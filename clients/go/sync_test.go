package fieldsync_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

// ids returns the ids of records.
func ids(records []fieldsync.Record) []string {
	var list []string
	for _, r := range records {
		list = append(list, r.ID)
	}
	return list
}

func TestFirstSyncPullsWhatTheUserMayRead(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	tests := []struct {
		user                   string
		territories, customers []string
	}{
		{"rep1", []string{"t-1"}, []string{"c-1", "c-2"}},
		{"rep2", []string{"t-2"}, []string{"c-3"}},
		{adminName, []string{"t-1", "t-2"}, []string{"c-1", "c-2", "c-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c := tm.open(t, tt.user, "new-phone", func(c *fieldsync.Config) { c.PullLimit = 2 }) // several pages
			rep, err := c.Sync(ctx)
			require.NoError(t, err)
			assert.Equal(t, len(tt.territories)+len(tt.customers)+1, rep.Pulled, "territories, customers and the product")
			assert.Equal(t, 1, rep.Logins)

			for coll, want := range map[schema.Collection][]string{
				schema.Territories: tt.territories, schema.Customers: tt.customers, schema.Products: {"p-1"}} {
				got, err := c.List(ctx, coll)
				require.NoError(t, err)
				assert.Equal(t, want, ids(got), "%s", coll)
			}
			cust, err := c.Get(ctx, schema.Customers, tt.customers[0])
			require.NoError(t, err)
			assert.Equal(t, int64(1), cust.Version)
			assert.False(t, cust.Pending)
			assert.NotZero(t, cust.UpdatedAt)

			again, err := c.Sync(ctx)
			require.NoError(t, err)
			assert.Zero(t, again.Pulled, "nothing changed since")
		})
	}
}

func TestOfflineEditsSurviveRestartAndPushOnce(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	cfg := tm.config(t, "rep1", "phone-1")
	c := openClient(t, cfg)
	_, err := c.Sync(ctx)
	require.NoError(t, err)

	// Offline: a new visit and a note on a customer.
	require.NoError(t, c.Put(ctx, schema.Visits, "v-1", visit("c-1", "first visit")))
	edit(t, c, schema.Customers, "c-1", func(cust *schema.Customer) { cust.Notes = "Deliveries by the back door" })
	require.NoError(t, c.Close())

	c = openClient(t, cfg)
	n, err := c.Pending(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the outbox survives a restart")
	v, err := c.Get(ctx, schema.Visits, "v-1")
	require.NoError(t, err)
	assert.True(t, v.Pending)
	assert.Equal(t, int64(0), v.Version, "not on the server yet")
	rec, err := c.Get(ctx, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.Equal(t, "Deliveries by the back door", decode[schema.Customer](t, rec).Notes, "the app sees its own change")
	assert.Equal(t, int64(1), rec.Version, "on top of the version last seen")

	rep, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, fieldsync.SyncReport{Pushed: 2, Applied: 2, Pulled: 2, Logins: 1}, rep)
	n, err = c.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, int64(1), tm.serverRecord(t, schema.Visits, "v-1").Version)
	server := tm.serverRecord(t, schema.Customers, "c-1")
	assert.Equal(t, int64(2), server.Version)
	assert.Equal(t, "Deliveries by the back door", server.Fields["notes"])

	v, err = c.Get(ctx, schema.Visits, "v-1")
	require.NoError(t, err)
	assert.False(t, v.Pending)
	assert.Equal(t, int64(1), v.Version)
	assert.NotEmpty(t, decode[schema.Visit](t, v).RepID, "the server's fields arrive with the pull")

	again, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, fieldsync.SyncReport{}, again, "a second sync is a no-op")
}

func TestSeveralEditsOfOneRecord(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()

	t.Run("made offline, they fold into one change", func(t *testing.T) {
		c := tm.open(t, "rep1", "phone-1")
		_, err := c.Sync(ctx)
		require.NoError(t, err)
		for _, notes := range []string{"one", "two", "three"} {
			require.NoError(t, c.Put(ctx, schema.Visits, "v-fold", visit("c-1", notes)))
			edit(t, c, schema.Customers, "c-2", func(cust *schema.Customer) { cust.Notes = notes })
		}
		n, err := c.Pending(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, n)

		rep, err := c.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, rep.Applied)
		assert.Zero(t, rep.Conflicts+rep.Rejected+rep.Merged)
		v := tm.serverRecord(t, schema.Visits, "v-fold")
		assert.Equal(t, int64(1), v.Version)
		assert.Equal(t, "three", v.Fields["notes"])
		cust := tm.serverRecord(t, schema.Customers, "c-2")
		assert.Equal(t, int64(2), cust.Version)
		assert.Equal(t, "three", cust.Fields["notes"])
	})

	t.Run("made while a push is in flight, they are rebased", func(t *testing.T) {
		faults := &faultyTransport{}
		c := tm.open(t, "rep1", "phone-2", faultyClient(faults), func(c *fieldsync.Config) { c.Retry.MaxAttempts = 1 })
		_, err := c.Sync(ctx)
		require.NoError(t, err)

		require.NoError(t, c.Put(ctx, schema.Visits, "v-rebase", visit("c-1", "one")))
		faults.set(on("/v1/sync/push", loseAnswer, 1))
		_, err = c.Sync(ctx)
		require.Error(t, err, "the answer was lost")
		// The server wrote version 1; the device does not know yet.
		require.NoError(t, c.Put(ctx, schema.Visits, "v-rebase", visit("c-1", "two")))
		require.NoError(t, c.Put(ctx, schema.Visits, "v-rebase", visit("c-1", "three")))
		n, err := c.Pending(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, n, "the sent change is frozen; later ones queue behind it")

		rep, err := c.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, rep.Applied, "%+v", rep)
		assert.Zero(t, rep.Conflicts, "no conflict with the device's own change")
		v := tm.serverRecord(t, schema.Visits, "v-rebase")
		assert.Equal(t, int64(2), v.Version)
		assert.Equal(t, "three", v.Fields["notes"])
		conflicts, err := c.Conflicts(ctx)
		require.NoError(t, err)
		assert.Empty(t, conflicts)
	})

	t.Run("made while a push is in flight and merged, they keep the others' changes", func(t *testing.T) {
		faults := &faultyTransport{}
		a := tm.open(t, "rep1", "phone-4", faultyClient(faults), func(c *fieldsync.Config) { c.Retry.MaxAttempts = 1 })
		b := tm.open(t, "rep1", "phone-5")
		for _, c := range []*fieldsync.Client{a, b} {
			_, err := c.Sync(ctx)
			require.NoError(t, err)
		}
		edit(t, a, schema.Customers, "c-1", func(cust *schema.Customer) { cust.Notes = "first" })
		faults.set(on("/v1/sync/push", refuse, 1))
		_, err := a.Sync(ctx)
		require.Error(t, err, "the push never left")

		edit(t, b, schema.Customers, "c-1", func(cust *schema.Customer) {
			cust.Contacts = []schema.Contact{{Name: "Bo", Phone: "+49 30 1234"}}
		})
		_, err = b.Sync(ctx)
		require.NoError(t, err)

		edit(t, a, schema.Customers, "c-1", func(cust *schema.Customer) { cust.Notes = "second" })
		rep, err := a.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.Merged, "%+v", rep)
		assert.Equal(t, 1, rep.Applied, "%+v", rep)
		assert.Zero(t, rep.Conflicts)
		server := tm.serverRecord(t, schema.Customers, "c-1")
		assert.Equal(t, "second", server.Fields["notes"])
		assert.Equal(t, []any{map[string]any{"name": "Bo", "phone": "+49 30 1234"}}, server.Fields["contacts"], "B's change stays")
	})

	t.Run("created and deleted offline, it never leaves the device", func(t *testing.T) {
		c := tm.open(t, "rep1", "phone-3")
		require.NoError(t, c.Put(ctx, schema.Visits, "v-gone", visit("c-1", "oops")))
		require.NoError(t, c.Delete(ctx, schema.Visits, "v-gone"))
		n, err := c.Pending(ctx)
		require.NoError(t, err)
		assert.Zero(t, n)
		_, err = c.Get(ctx, schema.Visits, "v-gone")
		assert.ErrorIs(t, err, fieldsync.ErrNotFound)
		assert.ErrorIs(t, c.Delete(ctx, schema.Visits, "v-gone"), fieldsync.ErrNotFound)
	})
}

func TestConflicts(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		resolver  fieldsync.Resolver
		wantNotes string // on the server and both devices in the end
		requeued  bool
	}{
		{"server wins by default", nil, "from A", false},
		{"a resolver re-applies the local change", fieldsync.LocalWins, "from B", true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "v-conflict-" + string(rune('a'+i))
			a := tm.open(t, "rep1", "phone-a")
			b := tm.open(t, "rep1", "phone-b", func(c *fieldsync.Config) { c.Resolver = tt.resolver })
			require.NoError(t, a.Put(ctx, schema.Visits, id, visit("c-1", "created")))
			_, err := a.Sync(ctx)
			require.NoError(t, err)
			_, err = b.Sync(ctx)
			require.NoError(t, err)

			// Both edit version 1; A lands first. Visits never merge.
			edit(t, a, schema.Visits, id, func(v *schema.Visit) { v.Notes = "from A" })
			edit(t, b, schema.Visits, id, func(v *schema.Visit) { v.Notes = "from B" })
			_, err = a.Sync(ctx)
			require.NoError(t, err)
			rep, err := b.Sync(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, rep.Conflicts)
			if tt.requeued {
				assert.Equal(t, 1, rep.Requeued)
				assert.Equal(t, 1, rep.Applied, "the re-applied change is pushed in the same sync")
			}

			conflicts, err := b.Conflicts(ctx)
			require.NoError(t, err)
			require.Len(t, conflicts, 1)
			k := conflicts[0]
			assert.Equal(t, id, k.ID)
			assert.Equal(t, int64(2), k.Server.Version)
			assert.Contains(t, string(k.Local), "from B")
			assert.Contains(t, string(k.Server.Data), "from A")
			assert.Equal(t, tt.requeued, k.Requeued)
			require.NoError(t, b.ClearConflicts(ctx))
			conflicts, err = b.Conflicts(ctx)
			require.NoError(t, err)
			assert.Empty(t, conflicts)

			assert.Equal(t, tt.wantNotes, tm.serverRecord(t, schema.Visits, id).Fields["notes"])
			_, err = a.Sync(ctx)
			require.NoError(t, err)
			for name, c := range map[string]*fieldsync.Client{"A": a, "B": b} {
				rec, err := c.Get(ctx, schema.Visits, id)
				require.NoError(t, err)
				assert.Equal(t, tt.wantNotes, decode[schema.Visit](t, rec).Notes, "device %s", name)
				assert.False(t, rec.Pending, "device %s", name)
			}
		})
	}

	t.Run("customers merge fields changed on each side", func(t *testing.T) {
		a := tm.open(t, "rep1", "phone-c")
		b := tm.open(t, "rep1", "phone-d")
		for _, c := range []*fieldsync.Client{a, b} {
			_, err := c.Sync(ctx)
			require.NoError(t, err)
		}
		edit(t, a, schema.Customers, "c-1", func(cust *schema.Customer) { cust.Notes = "ring twice" })
		edit(t, b, schema.Customers, "c-1", func(cust *schema.Customer) { cust.Contacts = []schema.Contact{{Name: "Ana", Role: "owner"}} })
		_, err := a.Sync(ctx)
		require.NoError(t, err)
		rep, err := b.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.Merged)
		rec, err := b.Get(ctx, schema.Customers, "c-1")
		require.NoError(t, err)
		got := decode[schema.Customer](t, rec)
		assert.Equal(t, "ring twice", got.Notes)
		assert.Equal(t, []schema.Contact{{Name: "Ana", Role: "owner"}}, got.Contacts)
	})
}

func TestRejectionsAreKeptAndNotRetried(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	c := tm.open(t, "rep1", "phone-1")
	_, err := c.Sync(ctx)
	require.NoError(t, err)

	edit(t, c, schema.Customers, "c-1", func(cust *schema.Customer) { cust.Grade = "D" })
	require.NoError(t, c.Put(ctx, schema.Visits, "v-far", visit("c-3", "another territory")))
	require.NoError(t, c.Put(ctx, schema.Visits, "v-bad", map[string]any{"customer_id": "c-1"}))
	require.NoError(t, c.Put(ctx, schema.Visits, "v-ok", visit("c-1", "fine")))

	rep, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Rejected)
	assert.Equal(t, 1, rep.Applied, "one bad change does not spoil the others")
	rejections, err := c.Rejections(ctx)
	require.NoError(t, err)
	got := map[string]string{}
	for _, r := range rejections {
		got[r.ID] = r.Error.Code
	}
	assert.Equal(t, map[string]string{
		"c-1":   schema.CodeForbidden,
		"v-far": schema.CodeValidationFailed, // a customer the rep cannot see is, to it, no customer
		"v-bad": schema.CodeValidationFailed,
	}, got)

	n, err := c.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "rejections leave the outbox")
	rec, err := c.Get(ctx, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.Equal(t, "A", decode[schema.Customer](t, rec).Grade, "the device shows the server's record again")
	_, err = c.Get(ctx, schema.Visits, "v-bad")
	assert.ErrorIs(t, err, fieldsync.ErrNotFound)

	again, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Zero(t, again.Pushed, "not retried")
	require.NoError(t, c.ClearRejections(ctx))
	rejections, err = c.Rejections(ctx)
	require.NoError(t, err)
	assert.Empty(t, rejections)
}

func TestLocalChecks(t *testing.T) {
	t.Parallel()
	ts := &testServer{URL: "http://127.0.0.1:1"} // never reached
	c := ts.open(t, "rep1", "phone-1")
	ctx := context.Background()
	tests := []struct {
		name string
		err  error
	}{
		{"unknown collection", c.Put(ctx, "widgets", "w-1", map[string]any{})},
		{"bad id", c.Put(ctx, schema.Visits, "no spaces", map[string]any{})},
		{"not an object", c.Put(ctx, schema.Visits, "v-1", []int{1})},
		{"photo without bytes", c.AddPhoto(ctx, "ph-1", "v-1", nil, fieldsync.PhotoInfo{})},
		{"photo not an image", c.AddPhoto(ctx, "ph-1", "v-1", []byte("%PDF-1.4"), fieldsync.PhotoInfo{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, schema.CodeValidationFailed, schema.ErrorCode(tt.err), "%v", tt.err)
		})
	}
	n, err := c.Pending(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.ErrorIs(t, c.Delete(ctx, schema.Visits, "v-unknown"), fieldsync.ErrNotFound)
	_, err = c.Get(ctx, schema.Visits, "v-unknown")
	assert.ErrorIs(t, err, fieldsync.ErrNotFound)
}

func TestStoreBelongsToOneUser(t *testing.T) {
	t.Parallel()
	ts := &testServer{URL: "http://127.0.0.1:1"}
	cfg := ts.config(t, "rep1", "phone-1")
	c, err := fieldsync.Open(context.Background(), cfg)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	cfg.Username = "rep2"
	_, err = fieldsync.Open(context.Background(), cfg)
	assert.ErrorIs(t, err, fieldsync.ErrOtherOwner)
}
