package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// Every base-version case for each collection's policy.
func TestBaseVersionPolicies(t *testing.T) {
	type step struct {
		user string
		m    storetest.Mut
	}
	order := func(note string) map[string]any {
		return map[string]any{"customer_id": "c-1", "status": "draft", "notes": note,
			"lines": []any{map[string]any{"product_id": "p-1", "quantity": 2, "unit_price": 250}}}
	}
	tests := []struct {
		name       string
		before     []step // applied first, each must apply
		m          step
		wantStatus schema.PushStatus
		wantCode   string // for rejections
		wantVer    int64
	}{
		{"create new", nil, step{"admin", storetest.Up(schema.Customers, "c-9", 0, customer("t-1", "C"))}, schema.PushApplied, "", 1},
		{"create existing", nil, step{"admin", storetest.Up(schema.Customers, "c-1", 0, customer("t-1", "C"))}, schema.PushConflict, "", 1},
		{"update at current", nil, step{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "C"))}, schema.PushApplied, "", 2},
		{"update ahead of server", nil, step{"admin", storetest.Up(schema.Customers, "c-1", 5, customer("t-1", "C"))}, schema.PushRejected, schema.CodeValidationFailed, 0},
		{"update missing", nil, step{"admin", storetest.Up(schema.Customers, "c-404", 1, customer("t-1", "C"))}, schema.PushRejected, schema.CodeNotFound, 0},
		{"customer stale, disjoint fields: merged",
			[]step{{"admin", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "credit_limit", 5))}},
			step{"admin", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "notes", "back door"))}, schema.PushMerged, "", 3},
		{"customer stale, same field: conflict",
			[]step{{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "B"))}},
			step{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "C"))}, schema.PushConflict, "", 2},
		{"customer stale, same change: merged without a write",
			[]step{{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "B"))}},
			step{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "A"))}, schema.PushMerged, "", 2},
		{"route plan stale, disjoint: merged",
			[]step{{"admin", storetest.Up(schema.RoutePlans, "rp-1", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23"})},
				{"admin", storetest.Up(schema.RoutePlans, "rp-1", 1, map[string]any{"rep_id": "u-rep1", "date": "2026-11-24"})}},
			step{"admin", storetest.Up(schema.RoutePlans, "rp-1", 1, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23",
				"stops": []any{map[string]any{"customer_id": "c-1", "position": 1, "status": "planned"}}})}, schema.PushMerged, "", 3},
		{"visit stale: conflict, never merged",
			[]step{{"rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405))},
				{"rep1", storetest.Up(schema.Visits, "v-1", 1, storetest.With(visit("c-1", 52.52, 13.405), "notes", "a"))}},
			step{"rep1", storetest.Up(schema.Visits, "v-1", 1, storetest.With(visit("c-1", 52.52, 13.405), "outcome", "order"))}, schema.PushConflict, "", 2},
		{"order stale: conflict, never merged",
			[]step{{"rep1", storetest.Up(schema.Orders, "o-1", 0, order("a"))}, {"rep1", storetest.Up(schema.Orders, "o-1", 1, order("b"))}},
			step{"rep1", storetest.Up(schema.Orders, "o-1", 1, storetest.With(order("a"), "requested_delivery_date", "2026-12-01"))}, schema.PushConflict, "", 2},
		{"delete at current", nil, step{"admin", storetest.Del(schema.Customers, "c-1", 1)}, schema.PushApplied, "", 2},
		{"delete stale", []step{{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "B"))}},
			step{"admin", storetest.Del(schema.Customers, "c-1", 1)}, schema.PushConflict, "", 2},
		{"delete missing", nil, step{"admin", storetest.Del(schema.Customers, "c-404", 1)}, schema.PushRejected, schema.CodeNotFound, 0},
		{"delete deleted", []step{{"admin", storetest.Del(schema.Customers, "c-1", 1)}},
			step{"admin", storetest.Del(schema.Customers, "c-1", 2)}, schema.PushConflict, "", 2},
		{"update deleted", []step{{"admin", storetest.Del(schema.Customers, "c-1", 1)}},
			step{"admin", storetest.Up(schema.Customers, "c-1", 2, customer("t-1", "A"))}, schema.PushConflict, "", 2},
		{"recreate deleted", []step{{"admin", storetest.Del(schema.Customers, "c-1", 1)}},
			step{"admin", storetest.Up(schema.Customers, "c-1", 0, customer("t-1", "A"))}, schema.PushApplied, "", 3},
		{"unchanged upsert writes nothing", nil, step{"admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "A"))}, schema.PushApplied, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			seed(e)
			for _, s := range tt.before {
				e.OK(s.user, s.m)
			}
			res := e.Push(tt.m.user, tt.m.m)[0]
			assert.Equal(t, tt.wantStatus, res.Status, "%+v", res)
			switch tt.wantStatus {
			case schema.PushRejected:
				require.NotNil(t, res.Error)
				assert.Equal(t, tt.wantCode, res.Error.Code)
			case schema.PushConflict:
				require.NotNil(t, res.Record, "a conflict carries the server's record")
				assert.Equal(t, tt.wantVer, res.Record.Version)
			case schema.PushMerged:
				require.NotNil(t, res.Record)
				assert.Equal(t, tt.wantVer, res.Version)
				assert.Equal(t, tt.wantVer, res.Record.Version)
			default:
				assert.Equal(t, tt.wantVer, res.Version)
			}
		})
	}
}

func TestMergeKeepsBothSides(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "credit_limit", 777)))
	res := e.Push("rep1", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "notes", "ask for Ana")))[0]
	require.Equal(t, schema.PushMerged, res.Status, "%+v", res)
	got := data(t, res.Record)
	assert.Equal(t, float64(777), got["credit_limit"], "the server's change stays")
	assert.Equal(t, "ask for Ana", got["notes"], "the client's change lands")

	t.Run("history too old to tell", func(t *testing.T) {
		for v := int64(2); v < 14; v++ {
			e.OK("admin", storetest.Up(schema.Customers, "c-1", v+1, storetest.With(customer("t-1", "A"), "credit_limit", v, "notes", "ask for Ana")))
		}
		res := e.Push("rep1", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "contacts", []any{map[string]any{"name": "Ana"}})))[0]
		assert.Equal(t, schema.PushConflict, res.Status)
	})
}

func TestReplayAnswersTheSameAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	seed(e)
	batch := []storetest.Mut{
		{ID: "r-1", Op: schema.MutationUpsert, Collection: schema.Visits, RecordID: "v-1", Data: visit("c-1", 52.52, 13.405)},
		{ID: "r-2", Op: schema.MutationUpsert, Collection: schema.Customers, RecordID: "c-1", Base: 0, Data: customer("t-1", "B")}, // conflict
		{ID: "r-3", Op: schema.MutationUpsert, Collection: schema.Visits, RecordID: "v-2", Data: visit("c-2", 52.52, 13.405)},      // rejected: c-2 is not rep1's
		{ID: "r-4", Op: schema.MutationUpsert, Collection: schema.Orders, RecordID: "o-1", Data: map[string]any{"customer_id": "c-1", "status": "draft",
			"lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 250}}}},
	}
	first := e.Push("rep1", batch...)
	assert.Equal(t, []string{"applied", "conflict", "rejected", "applied"}, statuses(first))
	wm, err := e.Store.Watermark(context.Background())
	require.NoError(t, err)

	// The client timed out and sends the same batch again, even after the
	// record changed in between.
	e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "D")))
	wm2, err := e.Store.Watermark(context.Background())
	require.NoError(t, err)
	again := e.Push("rep1", batch...)
	assert.Equal(t, mustJSON(t, first), mustJSON(t, again), "identical answers")
	wm3, err := e.Store.Watermark(context.Background())
	require.NoError(t, err)
	assert.Equal(t, wm2, wm3, "the replay wrote nothing")
	assert.Greater(t, wm2, wm)

	t.Run("answers lost before they were stored", func(t *testing.T) {
		// As if the process died after writing the record but before
		// storing the answer: only the record's history remembers.
		_, err := e.Store.SweepAnswers(context.Background(), e.Now.Add(1e15))
		require.NoError(t, err)
		res := e.Push("rep1", batch[0])[0]
		assert.Equal(t, schema.PushApplied, res.Status)
		assert.Equal(t, int64(1), res.Version)
		wm4, err := e.Store.Watermark(context.Background())
		require.NoError(t, err)
		assert.Equal(t, wm3, wm4, "still nothing written")
	})
	t.Run("the same mutation id from another user is another mutation", func(t *testing.T) {
		res := e.Push("admin", storetest.Mut{ID: "r-1", Op: schema.MutationUpsert, Collection: schema.Visits, RecordID: "v-admin", Data: visit("c-1", 52.52, 13.405)})[0]
		assert.Equal(t, schema.PushApplied, res.Status)
	})
}

func statuses(rs []schema.PushResult) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Status))
	}
	return out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func TestServerOwnedFieldsAreComputed(t *testing.T) {
	e := newEnv(t)
	seed(e)
	v := storetest.With(visit("c-1", 52.5205, 13.405), "rep_id", "u-rep2", "distance_m", 0, "within_geofence", true,
		"check_out", map[string]any{"at": "2026-11-23T09:25:00Z", "lat": 52.52, "lng": 13.405})
	far := storetest.With(visit("c-1", 52.53, 13.405), "check_out", map[string]any{"at": "2026-11-23T09:10:00Z", "lat": 52.53, "lng": 13.405})
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, v), storetest.Up(schema.Visits, "v-far", 0, far))
	e.OK("rep1", storetest.Up(schema.Orders, "o-1", 0, map[string]any{"customer_id": "c-1", "status": "draft", "placed_by": "u-admin", "total": 1,
		"lines": []any{map[string]any{"product_id": "p-1", "quantity": 3, "unit_price": 250, "discount": 50}}}))
	replica, changes, _ := e.Pull("rep1", "")
	require.Contains(t, replica, "visits/v-1")
	byID := map[string]map[string]any{}
	for _, ch := range changes {
		byID[ch.ID] = data(t, ch)
	}
	assert.Equal(t, "u-rep1", byID["v-1"]["rep_id"], "rep_id is the caller, not the claim")
	assert.InDelta(t, 55.6, byID["v-1"]["distance_m"], 1)
	assert.Equal(t, true, byID["v-1"]["within_geofence"])
	assert.Equal(t, float64(1500), byID["v-1"]["duration_s"])
	assert.InDelta(t, 1111.9, byID["v-far"]["distance_m"], 2)
	assert.Equal(t, false, byID["v-far"]["within_geofence"], "over 200 m away")
	assert.Equal(t, "u-rep1", byID["o-1"]["placed_by"])
	assert.Equal(t, float64(700), byID["o-1"]["total"], "3 × 250 − 50")

	t.Run("per-customer geofence", func(t *testing.T) {
		e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "geofence_m", 2000)))
		e.OK("rep1", storetest.Up(schema.Visits, "v-far2", 0, far))
		_, changes, _ := e.Pull("rep1", "")
		for _, ch := range changes {
			if ch.ID == "v-far2" {
				assert.Equal(t, true, data(t, ch)["within_geofence"])
			}
		}
	})
	t.Run("event times far in the future are refused", func(t *testing.T) {
		future := visit("c-1", 52.52, 13.405)
		future["check_in"].(map[string]any)["at"] = "2027-01-01T00:00:00Z"
		res := e.Push("rep1", storetest.Up(schema.Visits, "v-future", 0, future))[0]
		require.Equal(t, schema.PushRejected, res.Status)
		assert.Equal(t, "check_in.at", res.Error.Field)
	})
}

func TestRepMayChangeOnlySomeFields(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("admin", storetest.Up(schema.RoutePlans, "rp-1", 0, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23",
		"stops": []any{map[string]any{"customer_id": "c-1", "position": 1, "status": "planned"}}}))
	tests := []struct {
		name  string
		m     storetest.Mut
		field string // empty: applied
	}{
		{"customer notes", storetest.Up(schema.Customers, "c-1", 1, storetest.With(customer("t-1", "A"), "notes", "closed Mondays")), ""},
		{"customer contacts and location", storetest.Up(schema.Customers, "c-1", 2, storetest.With(customer("t-1", "A"), "notes", "closed Mondays",
			"contacts", []any{map[string]any{"name": "Ana", "phone": "+49 30 1"}}, "lat", 52.6)), ""},
		{"customer grade", storetest.Up(schema.Customers, "c-1", 3, storetest.With(customer("t-1", "B"), "notes", "closed Mondays",
			"contacts", []any{map[string]any{"name": "Ana", "phone": "+49 30 1"}}, "lat", 52.6)), "grade"},
		{"customer credit limit", storetest.Up(schema.Customers, "c-1", 3, storetest.With(customer("t-1", "A"), "credit_limit", 9999999,
			"notes", "closed Mondays", "contacts", []any{map[string]any{"name": "Ana", "phone": "+49 30 1"}}, "lat", 52.6)), "credit_limit"},
		{"stop status", storetest.Up(schema.RoutePlans, "rp-1", 1, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23",
			"stops": []any{map[string]any{"customer_id": "c-1", "position": 1, "status": "done"}}}), ""},
		{"stop customer", storetest.Up(schema.RoutePlans, "rp-1", 2, map[string]any{"rep_id": "u-rep1", "date": "2026-11-23",
			"stops": []any{map[string]any{"customer_id": "c-2", "position": 1, "status": "done"}}}), "stops"},
		{"plan date", storetest.Up(schema.RoutePlans, "rp-1", 2, map[string]any{"rep_id": "u-rep1", "date": "2026-11-24",
			"stops": []any{map[string]any{"customer_id": "c-1", "position": 1, "status": "done"}}}), "date"},
		{"create a customer", storetest.Up(schema.Customers, "c-new", 0, customer("t-1", "A")), "-"},
		{"delete a customer", storetest.Del(schema.Customers, "c-1", 3), "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.Push("rep1", tt.m)[0]
			if tt.field == "" {
				assert.Equal(t, schema.PushApplied, res.Status, "%+v", res)
				return
			}
			require.Equal(t, schema.PushRejected, res.Status, "%+v", res)
			assert.Equal(t, schema.CodeForbidden, res.Error.Code)
			if tt.field != "-" {
				assert.Equal(t, tt.field, res.Error.Field)
			}
		})
	}
}

func TestScopeOnPushPullAndConflicts(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("admin", storetest.Up(schema.Customers, "c-secret", 0, storetest.With(customer("t-2", "A"), "name", "Secret Shop", "notes", "t-2 only")))
	e.OK("rep2", storetest.Up(schema.Visits, "v-rep2", 0, visit("c-2", 52.52, 13.405)))

	replica, changes, _ := e.Pull("rep1", "")
	assert.Equal(t, storetest.Replica{"territories/t-1": 1, "customers/c-1": 1, "products/p-1": 1}, replica)
	for _, ch := range changes {
		assert.NotContains(t, string(ch.Data), "t-2")
	}

	// Each case names, where there is one, the same write to a record
	// that does not exist: the caller must get the very same answer.
	cases := []struct {
		name   string
		m      storetest.Mut
		code   string
		absent *storetest.Mut
	}{
		{"create with a taken id outside scope", storetest.Up(schema.Customers, "c-secret", 0, customer("t-1", "A")), schema.CodeForbidden, nil},
		{"update outside scope", storetest.Up(schema.Customers, "c-secret", 1, customer("t-2", "A")), schema.CodeNotFound,
			&storetest.Mut{Op: schema.MutationUpsert, Collection: schema.Customers, RecordID: "c-none", Base: 1, Data: customer("t-2", "A")}},
		{"delete outside scope", storetest.Del(schema.Customers, "c-secret", 1), schema.CodeNotFound,
			&storetest.Mut{Op: schema.MutationDelete, Collection: schema.Customers, RecordID: "c-none", Base: 1}},
		{"visit a customer outside scope", storetest.Up(schema.Visits, "v-x", 0, visit("c-secret", 52.52, 13.405)), schema.CodeValidationFailed,
			&storetest.Mut{Op: schema.MutationUpsert, Collection: schema.Visits, RecordID: "v-y", Data: visit("c-none", 52.52, 13.405)}},
		{"touch another rep's visit", storetest.Up(schema.Visits, "v-rep2", 1, visit("c-1", 52.52, 13.405)), schema.CodeNotFound,
			&storetest.Mut{Op: schema.MutationUpsert, Collection: schema.Visits, RecordID: "v-none", Base: 1, Data: visit("c-1", 52.52, 13.405)}},
		{"move own customer away", storetest.Up(schema.Customers, "c-1", 1, customer("t-2", "A")), schema.CodeForbidden, nil},
		{"write a territory", storetest.Up(schema.Territories, "t-9", 0, territory("Nine")), schema.CodeForbidden, nil},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			res := e.Push("rep1", tt.m)[0]
			require.Equal(t, schema.PushRejected, res.Status, "%+v", res)
			assert.Equal(t, tt.code, res.Error.Code)
			if tt.absent != nil {
				none := e.Push("rep1", *tt.absent)[0]
				require.Equal(t, schema.PushRejected, none.Status, "%+v", none)
				assert.Equal(t, none.Error, res.Error, "the same answer as for a record that does not exist")
			}
			assert.Nil(t, res.Record, "no record from outside the scope")
			body := mustJSON(t, res)
			for _, secret := range []string{"Secret Shop", "t-2 only", "u-rep2", "t-2"} {
				assert.NotContains(t, body, secret)
			}
		})
	}

	t.Run("every role reads only its own", func(t *testing.T) {
		e.OK("admin", storetest.Up(schema.Customers, "c-d", 0, storetest.With(customer("t-2", "C"), "distributor_id", "d-1")))
		e.OK("dist", storetest.Up(schema.Orders, "o-d", 0, map[string]any{"customer_id": "c-d", "status": "draft",
			"lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 250}}}))
		res := e.Push("dist", storetest.Up(schema.Orders, "o-x", 0, map[string]any{"customer_id": "c-1", "status": "draft",
			"lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 250}}}))[0]
		assert.Equal(t, schema.PushRejected, res.Status, "distributors order only for customers they serve")
		for _, user := range []string{"admin", "rep1", "rep2", "mgr", "dist"} {
			got, _, _ := e.Pull(user, "")
			assert.Equal(t, storetest.Readable(t, e.Store, e.Users[user]), got, user)
		}
		dist, _, _ := e.Pull("dist", "")
		assert.Equal(t, storetest.Replica{"customers/c-d": 1, "products/p-1": 1, "orders/o-d": 1}, dist)
	})
}

func TestTerritoryMoveRemovesAndAdds(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.AddUser("mgr2", schema.RoleManager, "", "t-2")
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	_, _, cp1 := e.Pull("rep1", "")
	_, _, cp2 := e.Pull("rep2", "")
	_, _, cpm := e.Pull("mgr", "")
	_, _, cpm2 := e.Pull("mgr2", "")

	e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-2", "A")))

	_, changes, _ := e.Pull("rep1", cp1)
	got := map[string]*schema.Envelope{}
	for _, ch := range changes {
		got[ch.ID] = ch
	}
	require.Contains(t, got, "c-1")
	assert.True(t, got["c-1"].Deleted, "the old rep is told it left")
	assert.Equal(t, int64(2), got["c-1"].Version, "at its current version")
	assert.Equal(t, "null", string(got["c-1"].Data))
	if v, ok := got["v-1"]; ok {
		assert.False(t, v.Deleted, "its own visit may come again, never as removed")
	}

	replica, _, _ := e.Pull("rep2", cp2)
	assert.Equal(t, storetest.Replica{"customers/c-1": 2}, replica, "the new rep gets it")

	_, changes, _ = e.Pull("mgr", cpm)
	removed := map[string]bool{}
	for _, ch := range changes {
		removed[ch.ID] = ch.Deleted
	}
	assert.Equal(t, map[string]bool{"c-1": true, "v-1": true}, removed, "the old manager loses the customer and its visits")
	replica, _, _ = e.Pull("mgr2", cpm2)
	assert.Equal(t, storetest.Replica{"customers/c-1": 2, "visits/v-1": 1}, replica, "the new manager gains both")

	rep1, _, _ := e.Pull("rep1", "")
	assert.Contains(t, rep1, "visits/v-1", "a rep keeps its own visits wherever the customer goes")
}

func TestUserScopeChangeOnNextPull(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	replica, _, cp := e.Pull("rep1", "")
	assert.Equal(t, storetest.Replica{"territories/t-1": 1, "customers/c-1": 1, "products/p-1": 1, "visits/v-1": 1}, replica)

	e.SetScope("rep1", schema.RoleRep, "t-2")
	_, changes, cp := e.Pull("rep1", cp)
	replica.Apply(changes)
	assert.Equal(t, storetest.Readable(t, e.Store, e.Users["rep1"]), replica)
	assert.Equal(t, storetest.Replica{"territories/t-2": 1, "customers/c-2": 1, "products/p-1": 1, "visits/v-1": 1}, replica)

	e.SetScope("rep1", schema.RoleManager, "t-1", "t-2")
	_, changes, cp = e.Pull("rep1", cp)
	replica.Apply(changes)
	assert.Equal(t, storetest.Readable(t, e.Store, e.Users["rep1"]), replica, "a role change too")

	e.SetScope("rep1", schema.RoleRep)
	_, changes, _ = e.Pull("rep1", cp)
	replica.Apply(changes)
	assert.Equal(t, storetest.Replica{"products/p-1": 1, "visits/v-1": 1}, replica, "no territories left")
}

func TestScopeChangeDuringBackfill(t *testing.T) {
	e := newEnv(t)
	seed(e)
	for i := range 30 {
		e.OK("admin", storetest.Up(schema.Customers, fmt.Sprintf("c-t2-%d", i), 0, customer("t-2", "C")))
	}
	replica := storetest.Replica{}
	resp, err := e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Limit: 1000})
	require.NoError(t, err)
	replica.Apply(resp.Changes)

	e.SetScope("rep1", schema.RoleRep, "t-2")
	resp, err = e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Checkpoint: resp.Checkpoint, Limit: 5})
	require.NoError(t, err)
	require.True(t, resp.HasMore, "the backfill is cut short")
	replica.Apply(resp.Changes)

	e.SetScope("rep1", schema.RoleRep, "t-1")
	_, changes, _ := e.Pull("rep1", resp.Checkpoint)
	replica.Apply(changes)
	assert.Equal(t, storetest.Readable(t, e.Store, e.Users["rep1"]), replica, "what the cut-short backfill added is removed again")
}

func TestPullPagesAndCheckpoints(t *testing.T) {
	e := newEnv(t)
	seed(e)
	ctx := context.Background()
	var checkpoint string
	var pages int
	replica := storetest.Replica{}
	for {
		resp, err := e.Engine.Pull(ctx, e.Users["admin"], &schema.PullRequest{Checkpoint: checkpoint, Limit: 2})
		require.NoError(t, err)
		assert.LessOrEqual(t, len(resp.Changes), 2)
		replica.Apply(resp.Changes)
		checkpoint = resp.Checkpoint
		pages++
		if !resp.HasMore {
			break
		}
	}
	assert.Equal(t, 3, pages)
	assert.Len(t, replica, 5)
	resp, err := e.Engine.Pull(ctx, e.Users["admin"], &schema.PullRequest{Checkpoint: checkpoint})
	require.NoError(t, err)
	assert.Empty(t, resp.Changes, "nothing new")

	e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-1", "B")), storetest.Up(schema.Customers, "c-1", 2, customer("t-1", "C")))
	resp, err = e.Engine.Pull(ctx, e.Users["admin"], &schema.PullRequest{Checkpoint: checkpoint})
	require.NoError(t, err)
	require.Len(t, resp.Changes, 1, "each record once, at its latest version")
	assert.Equal(t, int64(3), resp.Changes[0].Version)

	bad := []struct{ name, checkpoint string }{
		{"garbage", "garbage"},
		{"tampered", checkpoint[:len(checkpoint)-3] + "AAA"},
		{"truncated", checkpoint[:len(checkpoint)/2]},
		{"payload swapped", "eyJ2IjoxLCJ1IjoidS1yZXAxIiwicyI6MCwiaCI6eyJyIjoiYWRtaW4ifX0" + checkpoint[strings.Index(checkpoint, "."):]},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Engine.Pull(ctx, e.Users["admin"], &schema.PullRequest{Checkpoint: tt.checkpoint})
			assert.Equal(t, schema.CodeBadRequest, schema.ErrorCode(err))
		})
	}
	t.Run("another user's checkpoint", func(t *testing.T) {
		_, err := e.Engine.Pull(ctx, e.Users["rep1"], &schema.PullRequest{Checkpoint: checkpoint})
		assert.Equal(t, schema.CodeBadRequest, schema.ErrorCode(err))
	})
	t.Run("limits", func(t *testing.T) {
		for _, limit := range []int{-1, 1001} {
			_, err := e.Engine.Pull(ctx, e.Users["admin"], &schema.PullRequest{Limit: limit})
			assert.Equal(t, schema.CodeValidationFailed, schema.ErrorCode(err))
		}
	})
}

func TestBatchOverTheLimitIsRefusedWhole(t *testing.T) {
	e := newEnv(t)
	seed(e)
	req := &schema.PushRequest{}
	for i := range 501 {
		req.Mutations = append(req.Mutations, withID(storetest.Up(schema.Territories, "t-x"+strings.Repeat("x", i%3), 0, territory("X")), i).Raw())
	}
	wm, err := e.Store.Watermark(context.Background())
	require.NoError(t, err)
	_, err = e.Engine.Push(context.Background(), e.Users["admin"], req)
	assert.Equal(t, schema.CodePayloadTooLarge, schema.ErrorCode(err))
	wm2, err := e.Store.Watermark(context.Background())
	require.NoError(t, err)
	assert.Equal(t, wm, wm2, "nothing written")
}

func withID(m storetest.Mut, i int) storetest.Mut {
	m.ID = fmt.Sprintf("bulk-%d", i)
	return m
}
