package sync_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// BenchmarkMonthOfVisits runs a month of a team's visits through the
// engine on the SQLite store: each day 1,000 visits are pushed and, in a
// second push, their notes are changed, and the sweeper runs once a day; after
// the month the clock moves past the answers' retention and the sweeper
// runs again. It reports the database file (write-ahead log checkpointed)
// against its live data, the size of a compacting copy (VACUUM INTO):
//
//	go test -run '^$' -bench MonthOfVisits -benchtime 1x ./sync/
func BenchmarkMonthOfVisits(b *testing.B) {
	const (
		days   = 30
		perDay = 1000
	)
	ctx := context.Background()
	for range b.N {
		dir := b.TempDir()
		path := filepath.Join(dir, "fieldsync.db")
		store, err := sqlitestore.Open(ctx, path)
		require.NoError(b, err)
		now := time.Date(2026, 1, 1, 7, 0, 0, 0, time.UTC)
		eng, err := sync.New(sync.Config{Store: store, Secret: storetest.Secret, Now: func() time.Time { return now },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(b, err)
		rep := &schema.User{ID: "u-rep", Username: "rep", PasswordHash: "x", Role: schema.RoleRep, Territories: []string{"t-1"}, Active: true}
		require.NoError(b, store.CreateUser(ctx, rep))
		admin := schema.Principal{UserID: "u-admin", Role: schema.RoleAdmin}
		setup := []json.RawMessage{withID(storetest.Up(schema.Territories, "t-1", 0, territory("North")), -1).Raw()}
		for i := range 50 {
			setup = append(setup, withID(storetest.Up(schema.Customers, fmt.Sprintf("c-%d", i), 0, benchCustomer(i)), -2-i).Raw())
		}
		push(b, eng, admin, setup)
		principal := rep.Principal("phone", "login")

		for day := range days {
			in := make([]json.RawMessage, 0, perDay)
			out := make([]json.RawMessage, 0, perDay)
			for i := range perDay {
				k := day*perDay + i
				id, customer := fmt.Sprintf("v-%d", k), fmt.Sprintf("c-%d", k%50)
				checkIn := now.Add(time.Duration(i) * 30 * time.Second)
				v := map[string]any{"customer_id": customer, "notes": "Shelf checked",
					"check_in":  map[string]any{"at": checkIn.Format(time.RFC3339), "lat": 52.52, "lng": 13.40, "accuracy": 8},
					"check_out": map[string]any{"at": checkIn.Add(20 * time.Minute).Format(time.RFC3339), "lat": 52.52, "lng": 13.40}}
				in = append(in, withID(storetest.Up(schema.Visits, id, 0, v), 2*k).Raw())
				v["notes"] = "Shelf checked, restock asked for next week"
				out = append(out, withID(storetest.Up(schema.Visits, id, 1, v), 2*k+1).Raw())
			}
			now = now.Add(9 * time.Hour)
			push(b, eng, principal, in)
			push(b, eng, principal, out)
			now = now.Add(15 * time.Hour)
			_, err := eng.SweepAnswers(ctx)
			require.NoError(b, err)
		}
		beforeSweep := liveAndFile(b, store, path)
		now = now.AddDate(0, 0, 31)
		swept, err := eng.SweepAnswers(ctx)
		require.NoError(b, err)
		require.GreaterOrEqual(b, swept, 2*days*perDay)
		after := liveAndFile(b, store, path)
		require.NoError(b, store.Close())
		fi, err := os.Stat(path)
		require.NoError(b, err)
		after[1] = fi.Size()
		b.ReportMetric(float64(beforeSweep[1])/1e6, "MB-file-month")
		b.ReportMetric(float64(after[0])/1e6, "MB-live-swept")
		b.ReportMetric(float64(after[1])/1e6, "MB-file-swept")
		b.ReportMetric(float64(after[1])/float64(after[0]), "file/live")
	}
}

// liveAndFile returns the size of a compacting copy of the store and of
// its file with the write-ahead log checkpointed.
func liveAndFile(b *testing.B, store *sqlitestore.Store, path string) [2]int64 {
	b.Helper()
	ctx := context.Background()
	copyPath := filepath.Join(b.TempDir(), "copy.db")
	_, err := store.Snapshot(ctx, copyPath)
	require.NoError(b, err)
	live, err := os.Stat(copyPath)
	require.NoError(b, err)
	require.NoError(b, os.Remove(copyPath))
	// Another connection checkpoints the log into the file, as SQLite
	// does on its own every 1,000 pages.
	db, err := sql.Open("sqlite", "file:"+path)
	require.NoError(b, err)
	_, err = db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	require.NoError(b, errors.Join(err, db.Close()))
	file, err := os.Stat(path)
	require.NoError(b, err)
	return [2]int64{live.Size(), file.Size()}
}

func push(b *testing.B, eng *sync.Engine, p schema.Principal, muts []json.RawMessage) {
	b.Helper()
	for len(muts) > 0 {
		batch := muts[:min(len(muts), benchBatch)]
		muts = muts[len(batch):]
		resp, err := eng.Push(context.Background(), p, &schema.PushRequest{Mutations: batch})
		require.NoError(b, err)
		for i, r := range resp.Results {
			require.Equalf(b, schema.PushApplied, r.Status, "mutation %d: %+v", i, r)
		}
	}
}
