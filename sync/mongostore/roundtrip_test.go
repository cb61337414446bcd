package mongostore

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/event"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// commandCounter counts the commands a client sends, by name, while on:
// a number that does not depend on the server's speed.
type commandCounter struct {
	mu     gosync.Mutex
	on     bool
	byName map[string]int
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.on {
			c.byName[e.CommandName]++
		}
	}}
}

// count runs fn and returns the commands it sent, in all and by name.
func (c *commandCounter) count(fn func()) (int, map[string]int) {
	c.mu.Lock()
	c.on, c.byName = true, map[string]int{}
	c.mu.Unlock()
	fn()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	total := 0
	for _, n := range c.byName {
		total += n
	}
	return total, c.byName
}

// String lists the counts by name, in name order.
func (c *commandCounter) String() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(c.byName)) {
		parts = append(parts, fmt.Sprintf("%s=%d", name, c.byName[name]))
	}
	return strings.Join(parts, " ")
}

// countedStore is a store on a fresh database of the embedded FerretDB
// whose client's commands counter counts, and an engine on it.
func countedStore(tb testing.TB) (*Store, *sync.Engine, *commandCounter) {
	tb.Helper()
	counter := &commandCounter{}
	s := mustOpenMonitored(tb, counter.monitor())
	eng, err := sync.New(sync.Config{Store: s, Secret: storetest.Secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(tb, err)
	return s, eng, counter
}

func mutationOf(tb testing.TB, id string, c schema.Collection, rid string, base int64, data any) json.RawMessage {
	tb.Helper()
	raw, err := json.Marshal(map[string]any{"mutation_id": id, "collection": c, "id": rid, "op": "upsert", "base_version": base, "data": data})
	require.NoError(tb, err)
	return raw
}

func roundTripCustomer(i int, name string) map[string]any {
	return map[string]any{"code": fmt.Sprintf("C%07d", i), "name": name, "territory_id": "t-1", "grade": "B",
		"lat": 52.52, "lng": 13.40, "credit_limit": 250000}
}

// roundTripScenario is the pushes and the pull whose commands
// BenchmarkRoundTrips and TestRoundTrips count: 500 new customers, 500
// updates of them, 500 visits by a rep, then the rep's first pull page.
type roundTripScenario struct {
	name string
	// records is how many records the step writes or reads.
	records int
	run     func(tb testing.TB, eng *sync.Engine)
}

// roundTripBatch is how many mutations each push carries and how many
// records the pull page holds.
var roundTripBatch = flag.Int("roundtrips.batch", 500, "mutations per push and records per pull page in BenchmarkRoundTrips")

var (
	rtAdmin = schema.Principal{UserID: "u-admin", Role: schema.RoleAdmin}
	rtRep   = schema.Principal{UserID: "u-rep", Role: schema.RoleRep, Territories: []string{"t-1"}}
)

func push(tb testing.TB, eng *sync.Engine, p schema.Principal, mutations []json.RawMessage) {
	tb.Helper()
	resp, err := eng.Push(context.Background(), p, &schema.PushRequest{DeviceID: "d-1", Mutations: mutations})
	require.NoError(tb, err)
	for _, r := range resp.Results {
		require.Contains(tb, []schema.PushStatus{schema.PushApplied, schema.PushMerged}, r.Status, "%+v", r.Error)
	}
}

func roundTripScenarios() []roundTripScenario {
	batch := func(prefix string, fn func(i int) (schema.Collection, string, int64, any)) func(tb testing.TB, eng *sync.Engine) []json.RawMessage {
		return func(tb testing.TB, eng *sync.Engine) []json.RawMessage {
			out := make([]json.RawMessage, *roundTripBatch)
			for i := range out {
				c, id, base, data := fn(i)
				out[i] = mutationOf(tb, fmt.Sprintf("%s-%d", prefix, i), c, id, base, data)
			}
			return out
		}
	}
	creates := batch("create", func(i int) (schema.Collection, string, int64, any) {
		return schema.Customers, fmt.Sprintf("c-%d", i), 0, roundTripCustomer(i, fmt.Sprintf("Outlet %d", i))
	})
	updates := batch("update", func(i int) (schema.Collection, string, int64, any) {
		return schema.Customers, fmt.Sprintf("c-%d", i), 1, roundTripCustomer(i, fmt.Sprintf("Outlet %d, renamed", i))
	})
	visits := batch("visit", func(i int) (schema.Collection, string, int64, any) {
		return schema.Visits, fmt.Sprintf("v-%d", i), 0, map[string]any{"customer_id": fmt.Sprintf("c-%d", i),
			"check_in":  map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.52, "lng": 13.40, "accuracy": 8},
			"check_out": map[string]any{"at": "2026-11-23T09:10:00Z", "lat": 52.52, "lng": 13.40, "accuracy": 8}}
	})
	return []roundTripScenario{
		{"push of new customers", *roundTripBatch, func(tb testing.TB, eng *sync.Engine) { push(tb, eng, rtAdmin, creates(tb, eng)) }},
		{"push of customer updates", *roundTripBatch, func(tb testing.TB, eng *sync.Engine) { push(tb, eng, rtAdmin, updates(tb, eng)) }},
		{"push of visits", *roundTripBatch, func(tb testing.TB, eng *sync.Engine) { push(tb, eng, rtRep, visits(tb, eng)) }},
		{"pull of one page", *roundTripBatch, func(tb testing.TB, eng *sync.Engine) {
			resp, err := eng.Pull(context.Background(), rtRep, &schema.PullRequest{Limit: *roundTripBatch})
			require.NoError(tb, err)
			require.Len(tb, resp.Changes, *roundTripBatch)
		}},
	}
}

// runRoundTrips runs the scenario on a fresh store, calling step with the
// commands each step sent.
func runRoundTrips(tb testing.TB, step func(sc roundTripScenario, total int, c *commandCounter)) {
	s, eng, counter := countedStore(tb)
	ctx := context.Background()
	require.NoError(tb, s.CreateUser(ctx, &schema.User{ID: rtRep.UserID, Username: "rep", PasswordHash: "x", Role: schema.RoleRep, Territories: rtRep.Territories, Active: true}))
	push(tb, eng, rtAdmin, []json.RawMessage{mutationOf(tb, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})})
	for _, sc := range roundTripScenarios() {
		total, _ := counter.count(func() { sc.run(tb, eng) })
		step(sc, total, counter)
	}
}

// BenchmarkRoundTrips counts the commands the store sends to MongoDB per
// record pushed and per pull page (commands/record; not a speed):
//
//	go test -run '^$' -bench RoundTrips -benchtime 1x ./sync/mongostore/
//
// -roundtrips.batch sets the batch size (500).
func BenchmarkRoundTrips(b *testing.B) {
	for range b.N {
		runRoundTrips(b, func(sc roundTripScenario, total int, c *commandCounter) {
			b.Logf("%s: %d commands, %.2f per record (%s)", sc.name, total, float64(total)/float64(sc.records), c)
		})
	}
}

// A push of 500 mutations costs at most 2 commands per record, and a pull
// page a handful of commands, whatever the server's speed.
func TestRoundTrips(t *testing.T) {
	runRoundTrips(t, func(sc roundTripScenario, total int, c *commandCounter) {
		budget := 2 * sc.records
		if strings.HasPrefix(sc.name, "pull") {
			budget = 8
		}
		assert.LessOrEqual(t, total, budget, "%s: %d commands for %d records (%s)", sc.name, total, sc.records, c)
	})
}

// A push whose unit of work loses a race on one record keeps the writes
// that landed and decides the rest afresh: here a concurrent change of
// another field of c-2 lands between the push's reads and its writes, and
// the push's change of c-2 is merged with it. Each record ends up once in
// the feed, and the answers replay.
func TestPushThatLosesARaceRunsAgain(t *testing.T) {
	s, eng, _ := countedStore(t)
	ctx := context.Background()
	push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})})
	push(t, eng, rtAdmin, []json.RawMessage{
		mutationOf(t, "c-1", schema.Customers, "c-1", 0, roundTripCustomer(1, "One")),
		mutationOf(t, "c-2", schema.Customers, "c-2", 0, roundTripCustomer(2, "Two")),
	})
	var raced atomic.Bool
	s.stall = func() { // after the push took its seqs, before it writes
		if raced.CompareAndSwap(false, true) {
			other := roundTripCustomer(2, "Two")
			other["grade"] = "A"
			push(t, eng, rtAdmin, []json.RawMessage{mutationOf(t, "other", schema.Customers, "c-2", 1, other)})
		}
	}
	req := &schema.PushRequest{DeviceID: "d-1", Mutations: []json.RawMessage{
		mutationOf(t, "m-1", schema.Customers, "c-1", 1, roundTripCustomer(1, "One, renamed")),
		mutationOf(t, "m-2", schema.Customers, "c-2", 1, roundTripCustomer(2, "Two, renamed")),
	}}
	resp, err := eng.Push(ctx, rtAdmin, req)
	require.NoError(t, err)
	s.stall = nil
	assert.Equal(t, schema.PushApplied, resp.Results[0].Status)
	assert.Equal(t, int64(2), resp.Results[0].Version)
	assert.Equal(t, schema.PushMerged, resp.Results[1].Status, "decided again against the concurrent write")
	assert.Equal(t, int64(3), resp.Results[1].Version)

	var c2 struct{ Name, Grade string }
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		r, err := tx.Record(ctx, schema.Customers, "c-2")
		if err != nil {
			return err
		}
		return json.Unmarshal(r.Data, &c2)
	}))
	assert.Equal(t, "Two, renamed", c2.Name)
	assert.Equal(t, "A", c2.Grade)

	again, err := eng.Push(ctx, rtAdmin, req)
	require.NoError(t, err)
	assert.Equal(t, resp.Results, again.Results, "the stored answers replay")

	wm, err := s.Watermark(ctx)
	require.NoError(t, err)
	chs, err := s.Changes(ctx, []string{"customers|all"}, 0, wm, 100, 0)
	require.NoError(t, err)
	var ids []string
	for _, ch := range chs {
		ids = append(ids, fmt.Sprintf("%s@%d", ch.Record.ID, ch.Record.Version))
	}
	assert.Equal(t, []string{"c-1@2", "c-2@3"}, ids)
}
