package storetest

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// testWrittenTwiceInAPush: a record that one push writes twice keeps each
// version's audit entry and answer as if the writes had come one push at
// a time, and pulls show it once, at its last write. The writer defers
// what it can of the first write (the creation's audit changes, a merged
// answer's body) to the store; the second write must find it complete.
func testWrittenTwiceInAPush(t *testing.T, b *Bed) {
	ctx := context.Background()
	open := func(at string) map[string]any {
		return map[string]any{"customer_id": "c-1", "notes": "nobody at the counter",
			"check_in": map[string]any{"at": at, "lat": 52.52, "lng": 13.405, "accuracy": 8}}
	}
	raw := func(v any) string {
		out, err := json.Marshal(v)
		require.NoError(t, err)
		return string(out)
	}

	t.Run("an open visit marked by a later check-in of the same push", func(t *testing.T) {
		visits := []Mut{Up(schema.Visits, "v-a", 0, open("2026-11-23T09:00:00Z")), Up(schema.Visits, "v-b", 0, open("2026-11-23T10:00:00Z"))}
		first := b.OK("rep1", visits...)
		assert.Equal(t, []int64{1, 1}, []int64{first[0].Version, first[1].Version}, "each answered at the version its mutation wrote")
		va, a := b.Record(schema.Visits, "v-a")
		vb, bv := b.Record(schema.Visits, "v-b")
		assert.Equal(t, int64(2), va, "v-a is marked in a version of its own")
		assert.Equal(t, true, a["check_out_missing"])
		assert.Equal(t, int64(1), vb)
		assert.NotContains(t, bv, "check_out_missing", "v-b is the latest")

		page, err := b.Engine.Audit(ctx, b.Users["admin"], sync.AuditRequest{Collection: "visits", ID: "v-a"})
		require.NoError(t, err)
		i := slices.IndexFunc(page.Entries, func(e sync.AuditEntry) bool { return e.Version == 1 })
		require.GreaterOrEqual(t, i, 0, "the creation's entry: %+v", page.Entries)
		created := page.Entries[i]
		assert.Equal(t, sync.AuditCreate, created.Action)
		assert.Equal(t, "u-rep1", created.UserID)
		// v-b is as v-a was created: the creation's changes are every
		// field of that data, from null, without the later mark.
		assert.Equal(t, slices.Sorted(maps.Keys(bv)), slices.Sorted(maps.Keys(created.Changes)))
		assert.Equal(t, "null", string(created.Changes["notes"].From))
		assert.Equal(t, raw("nobody at the counter"), string(created.Changes["notes"].To))
		assert.NotContains(t, created.Changes, "check_out_missing")

		again := b.Push("rep1", visits...)
		assert.Equal(t, raw(first), raw(again), "replayed, the push gets its first answers")
		va, _ = b.Record(schema.Visits, "v-a")
		assert.Equal(t, int64(2), va, "and writes nothing")

		_, changes, _ := b.Pull("rep1", "")
		var order []string
		for _, c := range changes {
			if c.Collection == schema.Visits {
				order = append(order, c.ID)
				if c.ID == "v-a" {
					assert.Equal(t, int64(2), c.Version, "pulled at its last write")
				}
			}
		}
		assert.ElementsMatch(t, []string{"v-a", "v-b"}, order, "once each")
	})

	t.Run("a repriced order sent twice under one mutation id", func(t *testing.T) {
		o := Up(schema.Orders, "o-twice", 0, map[string]any{"customer_id": "c-3", "status": "draft",
			"lines": []map[string]any{{"product_id": "p-1", "quantity": 2, "unit_price": 1}}})
		o.ID = "m-twice"
		res := b.Push("rep1", o, o)
		require.Equal(t, schema.PushMerged, res[0].Status, "the server's price replaces the client's: %+v", res[0])
		assert.Equal(t, raw(res[0]), raw(res[1]), "the second gets the first's answer, the record it wrote included")
		assert.Equal(t, raw(res[0]), raw(b.Push("rep1", o)[0]), "and so does a later push")
	})

	t.Run("a repriced order edited later in the same push", func(t *testing.T) {
		created := Up(schema.Orders, "o-edited", 0, map[string]any{"customer_id": "c-3", "status": "draft",
			"lines": []map[string]any{{"product_id": "p-1", "quantity": 2, "unit_price": 1}}})
		edited := Up(schema.Orders, "o-edited", 1, map[string]any{"customer_id": "c-3", "status": "draft",
			"lines": []map[string]any{{"product_id": "p-1", "quantity": 5, "unit_price": 2}}})
		created.ID, edited.ID = "m-created", "m-edited"
		res := b.Push("rep1", created, edited)
		require.Equal(t, []schema.PushStatus{schema.PushMerged, schema.PushMerged}, []schema.PushStatus{res[0].Status, res[1].Status})
		require.Equal(t, int64(1), res[0].Record.Version)
		assert.Contains(t, string(res[0].Record.Data), `"quantity":2`, "the answer carries the record its own mutation wrote")
		replayed := b.Push("rep1", created, edited)
		assert.Equal(t, raw(res), raw(replayed), "each answer as first given, though the record moved on")
	})
}
