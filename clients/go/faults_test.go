package fieldsync_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
)

func TestNetworkFaults(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	const push, pull = "/v1/sync/push", "/v1/sync/pull"
	tests := []struct {
		name   string
		inject func(path string, n int) fault
		// the first sync's outcome
		wantStatus  int // of the *ResponseError; 0 for success
		wantFail    bool
		wantPushes  int
		wantRetries int
	}{
		{name: "answer lost after the server applied the push", inject: on(push, loseAnswer, 1, 2), wantPushes: 3, wantRetries: 2},
		{name: "connection fails before sending", inject: on(push, refuse, 1), wantPushes: 2, wantRetries: 1},
		{name: "pull fails before sending", inject: on(pull, refuse, 1), wantPushes: 1, wantRetries: 1},
		{name: "503 is retried", inject: on(push, answer503, 1, 2, 3), wantPushes: 4, wantRetries: 3},
		{name: "400 is not retried", inject: on(push, answer400), wantFail: true, wantStatus: http.StatusBadRequest, wantPushes: 1},
		{name: "retries are bounded", inject: on(push, answer503), wantFail: true, wantStatus: http.StatusServiceUnavailable, wantPushes: 4, wantRetries: 3},
		{name: "lost answers until the retries run out", inject: on(push, loseAnswer), wantFail: true, wantPushes: 4, wantRetries: 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &faultyTransport{}
			cfg := tm.config(t, "rep1", fmt.Sprintf("phone-%d", i))
			faultyClient(faults)(&cfg)
			c := openClient(t, cfg)
			var visits []string
			for j := range 3 {
				id := fmt.Sprintf("v-fault-%d-%d", i, j)
				visits = append(visits, id)
				require.NoError(t, c.Put(ctx, schema.Visits, id, visit("c-1", "faulty network")))
			}
			faults.set(tt.inject)
			rep, err := c.Sync(ctx)
			assert.Equal(t, tt.wantPushes, faults.count(push), "push requests")
			assert.Equal(t, tt.wantRetries, rep.Retries)
			if tt.wantFail {
				require.Error(t, err)
				var re *fieldsync.ResponseError
				if tt.wantStatus != 0 {
					require.True(t, errors.As(err, &re), "%v", err)
					assert.Equal(t, tt.wantStatus, re.Status)
				}
				n, perr := c.Pending(ctx)
				require.NoError(t, perr)
				assert.Equal(t, 3, n, "the changes stay queued")
				require.NoError(t, c.Close())
				c = openClient(t, cfg) // and survive a restart with their mutation ids
				faults.set(nil)
				rep, err = c.Sync(ctx)
			}
			require.NoError(t, err)
			assert.Equal(t, 3, rep.Applied, "%+v", rep)
			assert.Zero(t, rep.Conflicts, "a replayed push gets the first answer again")

			all := tm.serverRecords(t)
			for _, id := range visits {
				v, ok := all["visits/"+id]
				if assert.True(t, ok, "%s on the server", id) {
					assert.Equal(t, int64(1), v.Version, "%s written once", id)
				}
			}
			n, err := c.Pending(ctx)
			require.NoError(t, err)
			assert.Zero(t, n)
		})
	}
}

func TestPushTooLargeIsSplit(t *testing.T) {
	t.Parallel()
	tm := newTeam(t, func(e *sync.Config, _ *server.Config) { e.MaxMutations = 3 })
	ctx := context.Background()
	faults := &faultyTransport{}
	c := tm.open(t, "rep1", "phone-1", faultyClient(faults), func(c *fieldsync.Config) { c.BatchSize = 10 })
	for j := range 7 {
		require.NoError(t, c.Put(ctx, schema.Visits, fmt.Sprintf("v-big-%d", j), visit("c-1", "many")))
	}
	rep, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 7, rep.Applied)
	assert.Zero(t, rep.Retries, "413 is not retried unchanged")
	assert.Equal(t, 4, faults.count("/v1/sync/push"), "7 refused, then 3, 3 and 1")
}
