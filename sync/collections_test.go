package sync_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// only keeps the entries of a replica in collections.
func only(r storetest.Replica, collections ...schema.Collection) storetest.Replica {
	out := storetest.Replica{}
	for key, v := range r {
		for _, c := range collections {
			if strings.HasPrefix(key, string(c)+"/") {
				out[key] = v
			}
		}
	}
	return out
}

// pullSet pulls, a page of limit at a time, the changes of collections
// after a checkpoint into a replica.
func pullSet(e *storetest.Bed, user, checkpoint string, limit int, into storetest.Replica, collections ...schema.Collection) string {
	e.T.Helper()
	for {
		resp, err := e.Engine.Pull(context.Background(), e.Users[user], &schema.PullRequest{Checkpoint: checkpoint, Limit: limit, Collections: collections})
		require.NoError(e.T, err)
		for _, ch := range resp.Changes {
			require.Contains(e.T, collections, ch.Collection, "only the collections asked for")
		}
		into.Apply(resp.Changes)
		checkpoint = resp.Checkpoint
		if !resp.HasMore {
			return checkpoint
		}
	}
}

func TestPullRestrictedToCollections(t *testing.T) {
	e := newEnv(t)
	seed(e)
	e.OK("rep1", storetest.Up(schema.Visits, "v-1", 0, visit("c-1", 52.52, 13.405)))
	set := []schema.Collection{schema.Visits, schema.Customers}

	replica := storetest.Replica{}
	cp := pullSet(e, "rep1", "", 1, replica, set...)
	assert.Equal(t, storetest.Replica{"customers/c-1": 1, "visits/v-1": 1}, replica)

	// Writes in and out of the set, a removal and a scope change.
	e.OK("admin", storetest.Up(schema.Customers, "c-2", 1, customer("t-1", "B")), storetest.Up(schema.Products, "p-2", 0, map[string]any{"sku": "S2", "name": "Rope", "unit": "m", "price": 90, "active": true}))
	cp = pullSet(e, "rep1", cp, 1, replica, set...)
	assert.Equal(t, storetest.Replica{"customers/c-1": 1, "customers/c-2": 2, "visits/v-1": 1}, replica)
	e.OK("admin", storetest.Up(schema.Customers, "c-1", 1, customer("t-2", "A")))
	cp = pullSet(e, "rep1", cp, 1, replica, set...)
	assert.Equal(t, storetest.Replica{"customers/c-2": 2, "visits/v-1": 1}, replica, "a customer moved away is removed")
	e.SetScope("rep1", schema.RoleRep, "t-2")
	pullSet(e, "rep1", cp, 1, replica, set...)
	assert.Equal(t, only(storetest.Readable(t, e.Store, e.Users["rep1"]), set...), replica, "a scope change, within the set")

	t.Run("order and repeats do not matter", func(t *testing.T) {
		other := storetest.Replica{}
		cp := pullSet(e, "rep1", "", 1000, other, schema.Customers, schema.Visits, schema.Customers)
		_, err := e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Checkpoint: cp, Collections: set})
		assert.NoError(t, err)
	})
	t.Run("every collection named is no restriction", func(t *testing.T) {
		resp, err := e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Collections: schema.Collections()})
		require.NoError(t, err)
		_, err = e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Checkpoint: resp.Checkpoint})
		assert.NoError(t, err)
	})

	bound := func(t *testing.T) string {
		resp, err := e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Collections: set})
		require.NoError(t, err)
		return resp.Checkpoint
	}
	unbound, err := e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{})
	require.NoError(t, err)
	bad := []struct {
		name       string
		checkpoint string
		set        []schema.Collection
		field      string
	}{
		{"another set", bound(t), []schema.Collection{schema.Visits}, "collections"},
		{"a set's checkpoint without one", bound(t), nil, "collections"},
		{"an unrestricted checkpoint with a set", unbound.Checkpoint, set, "collections"},
		{"an unknown collection", "", []schema.Collection{schema.Visits, "bogus"}, "collections[1]"},
		{"an empty name", "", []schema.Collection{""}, "collections[0]"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Engine.Pull(context.Background(), e.Users["rep1"], &schema.PullRequest{Checkpoint: tt.checkpoint, Collections: tt.set})
			var se *schema.Error
			require.ErrorAs(t, err, &se)
			assert.Equal(t, schema.CodeBadRequest, se.Code)
			assert.Equal(t, tt.field, se.Field)
		})
	}
}
