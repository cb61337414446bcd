package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// testAudit checks the audit trail of record writes: one entry per
// version, with the fields that changed.
//
// Why a crash between a change and its entry cannot happen: the engine
// puts the entry in the sync.Record it hands to RecordTx.Put, so the
// change and its entry are one store write. SQLite inserts the entry in
// the transaction that writes the record: both commit or neither does.
// MongoDB keeps the entry inside the record's document, written by the one
// guarded document write that is the change; the audit collection is only
// a projection of those embedded entries, rebuilt by SweepAudit. There is
// no instant at which one is stored and the other is not, so there is no
// place to inject a crash between them; what a crash can interrupt (the
// projection) the sweep makes good, which the MongoDB adapter's own test
// shows by deleting projected entries.
func testAudit(t *testing.T, b *Bed) {
	ctx := context.Background()
	b.Now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	b.OK("rep1", Up(schema.Customers, "c-1", 1, With(shop("C-1", "t-1", 52.52, 100000, 0), "notes", "back door")))
	b.Now = b.Now.Add(time.Minute)
	b.OK("admin", Up(schema.Customers, "c-1", 2, With(shop("C-1", "t-1", 52.52, 100000, 0), "notes", "back door", "grade", "B")))
	b.Now = b.Now.Add(time.Minute)
	// rep1 still holds version 2 and changes the notes again: a merge.
	res := b.Push("rep1", Up(schema.Customers, "c-1", 2, With(shop("C-1", "t-1", 52.52, 100000, 0), "notes", "front door")))[0]
	require.Equal(t, schema.PushMerged, res.Status, "%+v", res)
	b.Now = b.Now.Add(time.Minute)
	b.OK("admin", Up(schema.Products, "p-2", 0, map[string]any{"sku": "S2", "name": "Brush", "unit": "each", "price": 100, "active": true}))
	b.Now = b.Now.Add(time.Minute)
	b.OK("admin", Del(schema.Products, "p-2", 1))

	page := func(user string, req sync.AuditRequest) *sync.AuditPage {
		t.Helper()
		p, err := b.Engine.Audit(ctx, b.Users[user], req)
		require.NoError(t, err)
		return p
	}
	raw := func(v any) json.RawMessage {
		out, err := json.Marshal(v)
		require.NoError(t, err)
		return out
	}
	got := page("admin", sync.AuditRequest{Collection: "customers", ID: "c-1"}).Entries
	require.Len(t, got, 4, "one entry per version")
	for i, want := range []struct {
		action, user string
		version      int64
		changes      map[string]sync.FieldChange
	}{
		{"merge", "u-rep1", 4, map[string]sync.FieldChange{"notes": {From: raw("back door"), To: raw("front door")}}},
		{"update", "u-admin", 3, map[string]sync.FieldChange{"grade": {From: raw("A"), To: raw("B")}}},
		{"update", "u-rep1", 2, map[string]sync.FieldChange{"notes": {From: raw(nil), To: raw("back door")}}},
	} {
		assert.Equal(t, want.action, got[i].Action, "entry %d", i)
		assert.Equal(t, want.user, got[i].UserID, "entry %d", i)
		assert.Equal(t, "dev-"+want.user[2:], got[i].DeviceID, "entry %d", i)
		assert.Equal(t, want.version, got[i].Version, "entry %d", i)
		assert.Equal(t, want.changes, got[i].Changes, "entry %d", i)
	}
	created := got[3]
	assert.Equal(t, "create", created.Action)
	assert.Equal(t, int64(1), created.Version)
	assert.Equal(t, raw(nil), created.Changes["code"].From)
	assert.Equal(t, raw("C-1"), created.Changes["code"].To)

	products := page("admin", sync.AuditRequest{Collection: "products", ID: "p-2"}).Entries
	require.Len(t, products, 2)
	assert.Equal(t, "delete", products[0].Action)
	assert.Equal(t, raw("Brush"), products[0].Changes["name"].From)
	assert.Equal(t, raw(nil), products[0].Changes["name"].To)

	t.Run("filters", func(t *testing.T) {
		for _, e := range page("admin", sync.AuditRequest{UserID: "u-rep1"}).Entries {
			assert.Equal(t, "u-rep1", e.UserID)
		}
		assert.Len(t, page("admin", sync.AuditRequest{UserID: "u-rep1"}).Entries, 2)
		window := page("admin", sync.AuditRequest{From: "2026-11-23T12:01:00Z", To: "2026-11-23T12:03:00Z"}).Entries
		require.Len(t, window, 2)
		assert.Equal(t, int64(4), window[0].Version)
		assert.Equal(t, int64(3), window[1].Version)
	})
	t.Run("cursor pages newest first, each entry once", func(t *testing.T) {
		all := page("admin", sync.AuditRequest{Limit: 1000}).Entries
		var walked []sync.AuditEntry
		req := sync.AuditRequest{Limit: 3}
		for range 100 {
			p := page("admin", req)
			walked = append(walked, p.Entries...)
			if p.NextCursor == "" {
				break
			}
			req.Cursor = p.NextCursor
		}
		assert.Equal(t, all, walked)
		for i := 1; i < len(walked); i++ {
			assert.False(t, walked[i].At.After(walked[i-1].At), "newest first")
		}
	})
	t.Run("a manager sees its territories' records only", func(t *testing.T) {
		for _, e := range page("mgr", sync.AuditRequest{Limit: 1000}).Entries {
			assert.Contains(t, e.Territories, "t-1", "%s %s", e.Collection, e.ID)
		}
		assert.NotEmpty(t, page("mgr", sync.AuditRequest{Collection: "customers", ID: "c-1"}).Entries)
		assert.Empty(t, page("mgr", sync.AuditRequest{Collection: "customers", ID: "c-2"}).Entries)
		assert.Empty(t, page("mgr", sync.AuditRequest{Collection: "products"}).Entries)
		_, err := b.Engine.Audit(ctx, b.Users["rep1"], sync.AuditRequest{})
		assert.Equal(t, schema.CodeForbidden, schema.AsError(err).Code)
		_, err = b.Engine.Audit(ctx, b.Users["admin"], sync.AuditRequest{Cursor: "garbage!"})
		assert.Equal(t, schema.CodeBadRequest, schema.AsError(err).Code)
	})
	t.Run("retention", func(t *testing.T) {
		before := len(page("admin", sync.AuditRequest{Limit: 1000}).Entries)
		b.Now = time.Date(2026, 11, 23, 12, 2, 30, 0, time.UTC).Add(400 * 24 * time.Hour)
		n, err := b.Engine.SweepAudit(ctx)
		require.NoError(t, err)
		after := page("admin", sync.AuditRequest{Limit: 1000}).Entries
		assert.Equal(t, before-n, len(after))
		for _, e := range after {
			assert.False(t, e.At.Before(time.Date(2026, 11, 23, 12, 2, 30, 0, time.UTC)), "older than 400 days went")
		}
		assert.Len(t, after, 2, "the product's create (12:03) and delete (12:04) stay")
	})
}

// AuditOfEveryVersion checks that every version of every record in the
// store has exactly one audit entry.
func AuditOfEveryVersion(tb testing.TB, s Store) {
	tb.Helper()
	ctx := context.Background()
	admin := Readable(tb, s, schema.Principal{Role: schema.RoleAdmin, UserID: "audit-check"})
	entries, err := s.AuditEntries(ctx, sync.AuditQuery{Limit: 1 << 30})
	require.NoError(tb, err)
	seen := map[string]int{}
	for _, e := range entries {
		seen[e.Key]++
	}
	for key, version := range admin {
		for v := int64(1); v <= version; v++ {
			assert.Equal(tb, 1, seen[key+"/"+itoa(v)], "%s version %d", key, v)
		}
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

// TestAuditSurvivesLostProjection writes records through an engine, calls
// lose — which throws away whatever the store builds its audit trail from
// the records' own writes, as a crash right after a record write would —
// then sweeps, and checks that every version of every record has exactly
// one entry again.
func TestAuditSurvivesLostProjection(t *testing.T, s Store, lose func(t *testing.T)) {
	b := newPlansBed(t, s)
	for i := range 5 {
		b.OK("rep1", Up(schema.Customers, "c-1", int64(i+1), With(shop("C-1", "t-1", 52.52, 100000, 0), "notes", itoa(int64(i)))))
	}
	b.OK("rep1", Up(schema.Orders, "o-1", 0, order("c-1", "submitted", 1)))
	lose(t)
	_, err := s.SweepAudit(context.Background(), time.Time{})
	require.NoError(t, err)
	AuditOfEveryVersion(t, s)
}

// testAuditEvents: the audit entries handed to the user store's writes
// are in the trail once the write is, and not when it did nothing.
func testAuditEvents(t *testing.T, s Store) {
	ctx := context.Background()
	admin := schema.Principal{UserID: "u-0", DeviceID: "laptop", Role: schema.RoleAdmin}
	u := newUser("u-1", "ana")
	require.NoError(t, s.CreateUser(ctx, u, sync.UserAudit(admin, nil, u, at)))
	before := *u
	u.Role, u.UpdatedAt = schema.RoleManager, at.Add(time.Second)
	require.NoError(t, s.UpdateUser(ctx, u, sync.UserAudit(admin, &before, u, at.Add(time.Second))))
	l := &sync.Login{ID: "l-1", UserID: "u-1", DeviceID: "phone", Generation: 1, CreatedAt: at.Add(2 * time.Second)}
	require.NoError(t, s.CreateLogin(ctx, l, sync.LoginAudit(sync.AuditLogin, "u-1", "phone", "l-1", at.Add(2*time.Second))))
	require.NoError(t, s.RevokeLogin(ctx, "l-1", at.Add(3*time.Second), sync.LoginAudit(sync.AuditLogout, "u-1", "phone", "l-1", at.Add(3*time.Second))))
	require.NoError(t, s.RevokeLogin(ctx, "l-1", at.Add(4*time.Second), sync.LoginAudit(sync.AuditLogout, "u-1", "phone", "l-1-again", at.Add(4*time.Second))),
		"revoking a revoked login is no error")
	for i := range 3 {
		when := at.Add(time.Duration(5+i) * time.Second)
		_, _, err := s.NoteLoginFailure(ctx, "ana", when, time.Minute, sync.LoginAudit(sync.AuditLoginFailed, "u-1", "tablet", "", when))
		require.NoError(t, err)
	}
	require.NoError(t, s.ClearLoginFailures(ctx, "ana"))

	got, err := s.AuditEntries(ctx, sync.AuditQuery{Limit: 100})
	require.NoError(t, err)
	var actions []string
	for _, e := range got {
		actions = append(actions, e.Action)
	}
	assert.Equal(t, []string{"login_failed", "login_failed", "login_failed", "logout", "login", "user_update", "user_create"}, actions,
		"newest first; the second logout revoked nothing and left no entry")
	require.Len(t, got, 7)
	assert.Equal(t, map[string]sync.FieldChange{"role": {From: json.RawMessage(`"rep"`), To: json.RawMessage(`"manager"`)}}, got[5].Changes)
	assert.Equal(t, "u-0", got[5].UserID)
	assert.Equal(t, "laptop", got[5].DeviceID)
	assert.Equal(t, "tablet", got[0].DeviceID)
	assert.Equal(t, json.RawMessage(`"(changed)"`), got[6].Changes["password"].To)
	assert.NotContains(t, string(must(json.Marshal(got))), "hash-u-1", "no password hash")

	manager, err := s.AuditEntries(ctx, sync.AuditQuery{Limit: 100, Territories: []string{"t-1"}})
	require.NoError(t, err)
	assert.Empty(t, manager, "sign-ins and user changes belong to no territory")
	_, err = s.SweepAudit(ctx, time.Time{})
	require.NoError(t, err)
	again, err := s.AuditEntries(ctx, sync.AuditQuery{Limit: 100})
	require.NoError(t, err)
	assert.Equal(t, got, again, "a sweep adds nothing twice")
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
