package seed_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

func small(url string) seed.Config {
	return seed.Config{URL: url, Admin: servertest.AdminName, Password: servertest.AdminPassword,
		Territories: 2, RepsPerTerritory: 2, Customers: 50, Products: 10, PriceLists: 3, Days: 3, Seed: 7}
}

func TestSeedScopesAndIdempotence(t *testing.T) {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.Options{})
	url := srv.URL
	var out bytes.Buffer
	sum, err := seed.Run(ctx, &out, small(url))
	require.NoError(t, err, out.String())
	assert.Equal(t, 4, sum.Reps)
	assert.Equal(t, 6, sum.UsersCreated, "4 reps and a manager per region")
	assert.Equal(t, 12, sum.RoutePlans)
	assert.Equal(t, sum.Mutations, sum.Applied, out.String())
	assert.Contains(t, out.String(), "rep1-password")

	api := srv.Client()
	admin := api.Login(t, servertest.AdminName, servertest.AdminPassword, "test").Access
	all, checkpoint := pullAll(t, api, admin, "")
	assert.Equal(t, 2+50+10+3+12, all, "every record on the server")

	// rep1 works t-01 and sees its territory and its own plans only.
	rep := openRep(t, url, "rep1")
	_, err = rep.Sync(ctx)
	require.NoError(t, err)
	customers, err := rep.List(ctx, schema.Customers)
	require.NoError(t, err)
	assert.Len(t, customers, 25)
	for _, r := range customers {
		var c schema.Customer
		require.NoError(t, r.Decode(&c))
		assert.Equal(t, "t-01", c.TerritoryID, r.ID)
	}
	territories, err := rep.List(ctx, schema.Territories)
	require.NoError(t, err)
	require.Len(t, territories, 1)
	assert.Equal(t, "t-01", territories[0].ID)
	plans, err := rep.List(ctx, schema.RoutePlans)
	require.NoError(t, err)
	assert.Len(t, plans, 3)
	for _, r := range plans {
		assert.True(t, strings.HasPrefix(r.ID, "rp-rep1-"), r.ID)
		var p schema.RoutePlan
		require.NoError(t, r.Decode(&p))
		assert.GreaterOrEqual(t, len(p.Stops), 8)
		assert.LessOrEqual(t, len(p.Stops), 20)
	}
	lists, err := rep.List(ctx, schema.PriceLists)
	require.NoError(t, err)
	for _, r := range lists {
		var pl schema.PriceList
		require.NoError(t, r.Decode(&pl))
		for _, id := range pl.CustomerIDs {
			assert.Contains(t, idsOf(customers), id, "price list %s", r.ID)
		}
	}

	// A second run answers the same and writes nothing.
	out.Reset()
	again, err := seed.Run(ctx, &out, small(url))
	require.NoError(t, err, out.String())
	assert.Equal(t, 0, again.UsersCreated)
	assert.Equal(t, sum.Mutations, again.AlreadyThere, "every answer is a replay")
	assert.Zero(t, again.Applied, "nothing new was written")
	assert.Contains(t, out.String(), fmt.Sprintf(": 0 applied, %d already there, 0 conflicts", sum.Mutations))
	n, _ := pullAll(t, api, admin, checkpoint)
	assert.Zero(t, n, "changes after the second run")
}

func idsOf(rs []fieldsync.Record) []string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.ID)
	}
	return ids
}

func openRep(t *testing.T, url, name string) *fieldsync.Client {
	t.Helper()
	c, err := fieldsync.Open(context.Background(), fieldsync.Config{BaseURL: url, Username: name, Password: name + "-password",
		DeviceID: "phone-" + name, StorePath: filepath.Join(t.TempDir(), "fieldsync.db")})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// pullAll pulls from checkpoint until the server has no more and returns
// how many changes came and the last checkpoint.
func pullAll(t *testing.T, api *servertest.Client, token, checkpoint string) (int, string) {
	t.Helper()
	n := 0
	for {
		page := api.Pull(t, token, schema.PullRequest{Checkpoint: checkpoint, Limit: 1000})
		n += len(page.Changes)
		checkpoint = page.Checkpoint
		if !page.HasMore {
			return n, checkpoint
		}
	}
}
