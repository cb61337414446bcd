package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// moveKillVisits is how many visits the customer moved under kill -9
// has; the binary writes its moves moveKillBatch re-stamps at a time.
const (
	moveKillVisits = 120
	moveKillBatch  = 5
)

// The process writing a territory move on MongoDB is killed with SIGKILL
// half way through the move; a restarted process finishes it once its
// lease has run out. Throughout, the new territory's manager pulls either
// nothing of the move or all of it; at the end every visit carries the new
// territory at its old version, the old territory's manager got one
// removal of each, and the push sent again is answered from the record's
// history without writing anything.
func TestMoveSurvivesKill9OnMongoDB(t *testing.T) {
	ctx := context.Background()
	database := freshMongoDatabase("fieldsync_movekill")
	uri := sharedMongoURI(t) + database
	dir := t.TempDir()
	args := []string{"--mongo-move-batch", fmt.Sprint(moveKillBatch)}
	env := []string{"FIELDSYNC_MONGO_URI=" + uri, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1"}

	p := startBinaryWith(t, dir, args, env...)
	api := servertest.Connect(t, "http://"+p.addr)
	admin := client{api: api, token: signIn(t, api, "admin", "admin-password-1")}
	for _, u := range []struct{ name, role, territory string }{
		{"field", "rep", "t-1"}, {"mgr1", "manager", "t-1"}, {"mgr2", "manager", "t-2"},
	} {
		require.Equal(t, http.StatusCreated, admin.post(t, "/v1/admin/users", map[string]any{
			"username": u.name, "password": u.name + "-password", "role": u.role, "territories": []string{u.territory}}, nil))
	}
	customer := func(territory string) map[string]any {
		return map[string]any{"code": "C1", "name": "Shop", "territory_id": territory, "grade": "B", "lat": 52.5, "lng": 13.4}
	}
	for _, r := range admin.push(t,
		mutation("t-1", "territories", "t-1", 0, map[string]any{"name": "North", "region": "EU"}),
		mutation("t-2", "territories", "t-2", 0, map[string]any{"name": "South", "region": "EU"}),
		mutation("c-move", "customers", "c-move", 0, customer("t-1"))) {
		require.Equal(t, schema.PushApplied, r.Status)
	}
	field := client{api: api, token: signIn(t, api, "field", "field-password")}
	var visits []map[string]any
	for i := range moveKillVisits {
		in := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		visits = append(visits, mutation(fmt.Sprint("visit-", i), "visits", fmt.Sprintf("v-%03d", i), 0, map[string]any{
			"customer_id": "c-move",
			"check_in":    map[string]any{"at": in.Format(time.RFC3339), "lat": 52.5, "lng": 13.4},
			"check_out":   map[string]any{"at": in.Add(20 * time.Minute).Format(time.RFC3339), "lat": 52.5, "lng": 13.4},
		}))
	}
	for _, r := range field.push(t, visits...) {
		require.Equal(t, schema.PushApplied, r.Status)
	}
	mgr1 := client{api: api, token: signIn(t, api, "mgr1", "mgr1-password")}
	mgr2 := client{api: api, token: signIn(t, api, "mgr2", "mgr2-password")}
	old := pullAll(t, mgr1, "")
	require.Len(t, old.records, moveKillVisits+1, "t-1's manager holds the customer and its visits")
	fresh := pullAll(t, mgr2, "")
	require.Empty(t, fresh.records, "t-2's manager holds nothing of the customer")

	store, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	require.NoError(t, err)
	defer store.Disconnect(ctx)
	db := store.Database(database)

	// The move; its answer never comes: the process dies under it.
	move, err := json.Marshal(map[string]any{"device_id": "d-admin", "mutations": []any{mutation("move", "customers", "c-move", 1, customer("t-2"))}})
	require.NoError(t, err)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+p.addr+"/v1/sync/push", bytes.NewReader(move))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+admin.token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	require.Eventually(t, func() bool {
		n, err := db.Collection("seqs").CountDocuments(ctx, bson.M{"move": true, "ready": true, "next": bson.M{"$gt": 0}})
		return err == nil && n > 0
	}, 2*time.Minute, time.Millisecond, "the move starts applying its plan")
	require.NoError(t, p.cmd.Process.Kill())
	p.wait(t)
	moved := func() int64 {
		n, err := db.Collection("records").CountDocuments(ctx, bson.M{"coll": "visits", "tokens": "visits|terr:t-2"})
		require.NoError(t, err)
		return n
	}
	half := moved()
	require.Less(t, half, int64(moveKillVisits), "the process died before the move was done")
	t.Logf("killed with %d of %d visits re-stamped", half, moveKillVisits)

	// A restarted process takes the move over once its lease has run out;
	// meanwhile, and after, t-2's manager sees all of it or nothing.
	p = startBinaryWith(t, dir, args, env...)
	api = servertest.Connect(t, "http://"+p.addr)
	admin.api, mgr1.api, mgr2.api = api, api, api
	for deadline := time.Now().Add(2 * time.Minute); len(fresh.records) == 0; time.Sleep(300 * time.Millisecond) {
		require.Truef(t, time.Now().Before(deadline), "the move is not finished within 2 minutes")
		page := pullAll(t, mgr2, fresh.checkpoint)
		fresh.checkpoint = page.checkpoint
		for k, e := range page.records {
			fresh.records[k] = e
		}
		got := len(fresh.records)
		require.Truef(t, got == 0 || got == moveKillVisits+1, "t-2's manager holds %d records of the move: a half-applied move shows", got)
	}

	assert.Equal(t, int64(moveKillVisits), moved(), "every visit re-stamped")
	for k, e := range fresh.records {
		assert.Falsef(t, e.Deleted, "%s", k)
		if strings.HasPrefix(k, "visits/") {
			assert.Equalf(t, int64(1), e.Version, "%s re-stamped at its version", k)
		} else {
			assert.Equal(t, int64(2), e.Version, "the customer written once")
		}
	}
	after := pullAll(t, mgr1, old.checkpoint)
	assert.Len(t, after.records, moveKillVisits+1, "t-1's manager loses the customer and each visit")
	assert.Equal(t, after.pulled, len(after.records), "each once")
	for k, e := range after.records {
		assert.Truef(t, e.Deleted, "%s leaves t-1's manager", k)
	}
	again := pullAll(t, mgr2, "")
	assert.Len(t, again.records, moveKillVisits+1, "from the beginning, t-2's manager gets the customer and each visit")
	assert.Equal(t, again.pulled, len(again.records), "each once")

	// The admin's client sends the unanswered push again.
	var out schema.PushResponse
	require.Equal(t, http.StatusOK, admin.post(t, "/v1/sync/push", json.RawMessage(move), &out))
	require.Len(t, out.Results, 1)
	assert.Equal(t, schema.PushApplied, out.Results[0].Status)
	assert.Equal(t, int64(2), out.Results[0].Version, "answered from the record's history")
	assert.Empty(t, pullAll(t, mgr2, again.checkpoint).records, "and nothing written again")
	items, err := db.Collection("move_items").CountDocuments(ctx, bson.M{})
	require.NoError(t, err)
	assert.Zero(t, items, "the plan is gone")
}

// pulled is what a pull from a checkpoint to the end returned of the
// moved customer and its visits: the latest envelope of each record by
// "collection/id", how many envelopes came, and the checkpoint to go on
// from.
type pulled struct {
	records    map[string]*schema.Envelope
	pulled     int
	checkpoint string
}

func pullAll(t *testing.T, c client, checkpoint string) pulled {
	t.Helper()
	out := pulled{records: map[string]*schema.Envelope{}, checkpoint: checkpoint}
	for {
		var page schema.PullResponse
		require.Equal(t, http.StatusOK, c.post(t, "/v1/sync/pull", map[string]any{"checkpoint": out.checkpoint, "limit": 1000}, &page))
		for _, e := range page.Changes {
			if e.Collection != schema.Customers && e.Collection != schema.Visits {
				continue
			}
			out.records[string(e.Collection)+"/"+e.ID] = e
			out.pulled++
		}
		out.checkpoint = page.Checkpoint
		if !page.HasMore {
			return out
		}
	}
}
