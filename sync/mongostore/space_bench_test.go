package mongostore

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/fieldsync/fieldsync/schema"
)

var spaceCustomers = flag.Int("space.customers", 2000, "customers BenchmarkBytesPerRecord pushes (a tenth of them updated, one visit per two)")

// BenchmarkBytesPerRecord pushes customers through the engine in pushes
// of 500 (then an update of every tenth, and a rep's visit to every other
// one), then reports what the store takes per record, by collection and
// index, as collStats counts it (see Sizes), and how long the pushes took:
//
//	go test -run '^$' -bench BytesPerRecord -benchtime 1x ./sync/mongostore/ -args -space.customers 10000
func BenchmarkBytesPerRecord(b *testing.B) {
	for range b.N {
		s, eng, _ := countedStore(b)
		ctx := context.Background()
		require.NoError(b, s.CreateUser(ctx, &schema.User{ID: rtRep.UserID, Username: "rep", PasswordHash: "x", Role: schema.RoleRep, Territories: rtRep.Territories, Active: true}))
		push(b, eng, rtAdmin, []json.RawMessage{mutationOf(b, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})})
		n := *spaceCustomers
		var creates, updates, visits []json.RawMessage
		for i := range n {
			creates = append(creates, mutationOf(b, fmt.Sprintf("create-%d", i), schema.Customers, fmt.Sprintf("c-%d", i), 0, roundTripCustomer(i, fmt.Sprintf("Outlet %d", i))))
			if i%10 == 0 {
				updates = append(updates, mutationOf(b, fmt.Sprintf("update-%d", i), schema.Customers, fmt.Sprintf("c-%d", i), 1, roundTripCustomer(i, fmt.Sprintf("Outlet %d, renamed", i))))
			}
			if i%2 == 0 {
				visits = append(visits, mutationOf(b, fmt.Sprintf("visit-%d", i), schema.Visits, fmt.Sprintf("v-%d", i), 0, map[string]any{"customer_id": fmt.Sprintf("c-%d", i),
					"check_in":  map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.52, "lng": 13.40, "accuracy": 8},
					"check_out": map[string]any{"at": "2026-11-23T09:10:00Z", "lat": 52.52, "lng": 13.40, "accuracy": 8}}))
			}
		}
		start := time.Now()
		for _, step := range []struct {
			p    schema.Principal
			muts []json.RawMessage
		}{{rtAdmin, creates}, {rtAdmin, updates}, {rtRep, visits}} {
			for i := 0; i < len(step.muts); i += 500 {
				push(b, eng, step.p, step.muts[i:min(i+500, len(step.muts))])
			}
		}
		elapsed := time.Since(start)
		sizes, err := s.Sizes(ctx)
		require.NoError(b, err)
		var records, total int64
		for _, sz := range sizes {
			if sz.Name == "records" {
				records = sz.Rows
			}
			total += sz.Bytes
		}
		for _, sz := range sizes {
			if sz.Bytes > 4096 {
				b.Logf("%-32s %10d bytes %8.1f B/record", sz.Name, sz.Bytes, float64(sz.Bytes)/float64(records))
			}
		}
		b.Logf("total %d bytes, %d records, %.1f B/record; pushes took %s", total, records, float64(total)/float64(records), elapsed.Round(time.Millisecond))
		// What MongoDB's collStats calls size: the documents' BSON, before
		// the storage engine compresses it.
		var bsonTotal int
		for _, c := range []*mongo.Collection{s.records, s.audit, s.answers, s.facts, s.gone} {
			cur, err := c.Find(ctx, bson.M{})
			require.NoError(b, err)
			n := 0
			for cur.Next(ctx) {
				n += len(cur.Current)
			}
			require.NoError(b, cur.Err())
			bsonTotal += n
			b.Logf("BSON of %-22s %10d bytes %8.1f B/record", c.Name(), n, float64(n)/float64(records))
		}
		b.Logf("BSON of those collections %d bytes, %.1f B/record", bsonTotal, float64(bsonTotal)/float64(records))
		b.ReportMetric(float64(bsonTotal)/float64(records), "BSON-B/record")
		b.ReportMetric(float64(total)/float64(records), "B/record")
		b.ReportMetric(float64(elapsed.Milliseconds()), "push-ms")
	}
}

// BenchmarkPushPull times the steps BenchmarkRoundTrips counts (500 new
// customers, 500 updates of them, 500 visits, a pull page of 500), on a
// fresh database of the embedded FerretDB each round:
//
//	go test -run '^$' -bench PushPull -benchtime 3x ./sync/mongostore/
func BenchmarkPushPull(b *testing.B) {
	units := []string{"create-ms", "update-ms", "visit-ms", "pull-ms"}
	spent := make([]time.Duration, len(units))
	for range b.N {
		s, eng, _ := countedStore(b)
		ctx := context.Background()
		require.NoError(b, s.CreateUser(ctx, &schema.User{ID: rtRep.UserID, Username: "rep", PasswordHash: "x", Role: schema.RoleRep, Territories: rtRep.Territories, Active: true}))
		push(b, eng, rtAdmin, []json.RawMessage{mutationOf(b, "t-1", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})})
		for i, sc := range roundTripScenarios() {
			start := time.Now()
			sc.run(b, eng)
			spent[i] += time.Since(start)
		}
	}
	for i, unit := range units {
		b.ReportMetric(float64(spent[i].Milliseconds())/float64(b.N), unit)
	}
}
