package scale_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// The shape of both stores: every territory has the same customers and
// reps, and every rep the same month, so that one rep's sync and one
// territory's report ask for the same amount of data in both; only the
// number of territories differs.
const (
	customersPerTerritory = 1000
	repsPerTerritory      = 5
	days                  = 30 // November 2026
	stopsPerDay           = 10
	visitsPerDay          = 8 // of the day's stops
	products              = 200
	regionTerritories     = 10 // the territories of the region's manager
	pushRecords           = 150
	incrementalChanges    = 20 // customer changes in the rep's territory between pulls
)

// BenchmarkScale seeds two embedded stores through the engine — the large
// one with FIELDSYNC_SCALE_CUSTOMERS customers (default 1,000,000: 1,000
// territories, 5,000 reps), the small one a hundred times smaller — then
// measures on each, alternating small and big FIELDSYNC_SCALE_REPEAT
// times (default 5): a rep's first sync, an incremental pull, a push of
// 150 visits, the month's coverage report of one territory and of a
// region of ten, and, once, a backup and its restore, checked table by
// table (FIELDSYNC_SCALE_BACKUP=off leaves these out). The big store is
// seeded once and kept in a cache (see seedStore); a seed that was
// stopped resumes where it was. FIELDSYNC_SCALE_READER_CACHE_KIB gives
// the stores' readers a larger page cache than SQLite's default, for
// experiments.
//
//	go test -run '^$' -bench Scale -benchtime 1x -timeout 0 ./bench/scale/
func BenchmarkScale(b *testing.B) {
	big := envInt("FIELDSYNC_SCALE_CUSTOMERS", 1_000_000)
	repeat := envInt("FIELDSYNC_SCALE_REPEAT", 5)
	territories := max(big/customersPerTerritory, 100)
	stores := []*store{
		seedStore(b, "small", territories/100, false),
		seedStore(b, "big", territories, true),
	}
	sameSeed(b, stores[0], stores[1])
	measures := []struct {
		name string
		run  func(s *store, b *testing.B) time.Duration
	}{
		{"first-sync", (*store).firstSync},
		{"incremental-pull", (*store).incrementalPull},
		{"push", (*store).push},
		{"coverage-territory", (*store).coverageTerritory},
		{"coverage-region", (*store).coverageRegion},
	}
	b.ResetTimer()
	for range b.N {
		for _, m := range measures {
			samples := make([][]time.Duration, len(stores))
			for range repeat {
				for i, s := range stores {
					samples[i] = append(samples[i], m.run(s, b))
				}
			}
			small, large := median(samples[0]), median(samples[1])
			b.ReportMetric(ms(small), m.name+"-small-ms")
			b.ReportMetric(ms(large), m.name+"-big-ms")
			b.ReportMetric(float64(large)/float64(small), m.name+"-big/small")
			b.Logf("%-20s small %9.1f ms  big %9.1f ms  big÷small %.2f", m.name, ms(small), ms(large), float64(large)/float64(small))
		}
		if os.Getenv("FIELDSYNC_SCALE_BACKUP") == "off" {
			continue
		}
		var took [2][2]time.Duration
		var size [2]int64
		for i, s := range stores {
			took[i][0], took[i][1], size[i] = s.backupRestore(b)
		}
		for j, name := range []string{"backup", "restore"} {
			b.ReportMetric(took[0][j].Seconds(), name+"-small-s")
			b.ReportMetric(took[1][j].Seconds(), name+"-big-s")
			b.Logf("%-20s small %9.1f s   big %9.1f s   big÷small %.1f", name, took[0][j].Seconds(), took[1][j].Seconds(),
				took[1][j].Seconds()/took[0][j].Seconds())
		}
		b.Logf("archive: small %.1f MB, big %.1f MB", float64(size[0])/1e6, float64(size[1])/1e6)
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// store is one seeded store and the callers the measures act as.
type store struct {
	name        string
	dir         string
	st          *sqlitestore.Store
	eng         *sync.Engine
	reports     *report.Reports
	territories int
	admin, rep  schema.Principal
	manager     schema.Principal
	records     int    // records seeded
	checkpoint  string // the rep's checkpoint for the incremental pull
	n           int    // mutations written after seeding
}

func territoryID(t int) string     { return fmt.Sprintf("t-%d", t) }
func customerID(t, c int) string   { return fmt.Sprintf("c-%d-%d", t, c) }
func repName(t, r int) string      { return fmt.Sprintf("rep-%d-%d", t, r) }
func customerLat(t, c int) float64 { return 40 + float64(t%100)/10 + float64(c)/100_000 }
func customerLng(t, c int) float64 { return 10 + float64(t/100)/10 + float64(c%100)/10_000 }

func customer(t, c int) map[string]any {
	return map[string]any{"code": fmt.Sprintf("C%04d%04d", t, c), "name": fmt.Sprintf("Outlet %d of %s", c, territoryID(t)),
		"territory_id": territoryID(t), "grade": string(rune('A' + c%3)), "address": fmt.Sprintf("%d Main Street", c),
		"lat": customerLat(t, c), "lng": customerLng(t, c), "credit_limit": 500000, "payment_terms_days": 30,
		"contacts": []any{map[string]any{"name": "Owner", "role": "owner", "phone": "+49 30 1234567"}}}
}

// month is a rep's November: a route plan a day and the visits of the
// first eight stops, each checked out after 20 minutes, an order on every
// fourth visit. The rep's customers are its share of the territory's.
func month(t, r int) (plans, visits []json.RawMessage) {
	share := customersPerTerritory / repsPerTerritory
	repID := "u-" + repName(t, r)
	for d := range days {
		date := time.Date(2026, 11, d+1, 0, 0, 0, 0, time.UTC)
		planID := fmt.Sprintf("rp-%d-%d-%d", t, r, d)
		stops := make([]any, 0, stopsPerDay)
		for k := range stopsPerDay {
			c := r*share + (d*stopsPerDay+k)%share
			stops = append(stops, map[string]any{"customer_id": customerID(t, c), "position": k, "status": "planned"})
			if k >= visitsPerDay {
				continue
			}
			in := date.Add(8*time.Hour + time.Duration(k)*45*time.Minute)
			vid := fmt.Sprintf("v-%d-%d-%d-%d", t, r, d, k)
			visits = append(visits, upsert(schema.Visits, vid, map[string]any{"customer_id": customerID(t, c), "route_plan_id": planID,
				"check_in":  map[string]any{"at": in, "lat": customerLat(t, c), "lng": customerLng(t, c), "accuracy": 8},
				"check_out": map[string]any{"at": in.Add(20 * time.Minute), "lat": customerLat(t, c), "lng": customerLng(t, c), "accuracy": 8}}))
			if k%4 == 0 {
				visits = append(visits, upsert(schema.Orders, "o-"+vid, map[string]any{"customer_id": customerID(t, c), "visit_id": vid,
					"status": "submitted", "lines": []any{map[string]any{"product_id": fmt.Sprintf("p-%d", k), "quantity": 2, "unit_price": 1000 + k}}}))
			}
		}
		plans = append(plans, upsert(schema.RoutePlans, planID, map[string]any{"rep_id": repID, "date": date.Format("2006-01-02"), "stops": stops}))
	}
	return plans, visits
}

// upsert is a new record's mutation, its id derived from the record's.
func upsert(c schema.Collection, id string, data any) json.RawMessage {
	raw, err := json.Marshal(map[string]any{"mutation_id": "m-" + string(c) + "-" + id, "collection": c, "id": id,
		"op": schema.MutationUpsert, "base_version": 0, "data": data})
	if err != nil {
		panic(err)
	}
	return raw
}

// ok pushes muts as p and requires every one applied.
func (s *store) ok(b *testing.B, p schema.Principal, muts []json.RawMessage) {
	b.Helper()
	if len(muts) == 0 {
		return
	}
	resp, err := s.eng.Push(context.Background(), p, &schema.PushRequest{DeviceID: p.DeviceID, Mutations: muts})
	require.NoError(b, err)
	for i, r := range resp.Results {
		if r.Status != schema.PushApplied {
			b.Fatalf("%s: mutation %d (%s) answered %+v", s.name, i, muts[i], r)
		}
	}
}

// pullAll pulls as the rep from checkpoint until nothing is left and
// returns the changes and the new checkpoint.
func (s *store) pullAll(b *testing.B, checkpoint string) (int, string) {
	b.Helper()
	got := 0
	for {
		resp, err := s.eng.Pull(context.Background(), s.rep, &schema.PullRequest{Checkpoint: checkpoint, Limit: sync.MaxPullLimit})
		require.NoError(b, err)
		got += len(resp.Changes)
		checkpoint = resp.Checkpoint
		if !resp.HasMore {
			return got, checkpoint
		}
	}
}

// firstSync is the rep's pull from nothing: its territory's customers,
// its month of plans, visits and orders, the catalog.
func (s *store) firstSync(b *testing.B) time.Duration {
	start := time.Now()
	got, checkpoint := s.pullAll(b, "")
	took := time.Since(start)
	least := customersPerTerritory + products + days*(1+visitsPerDay+visitsPerDay/4)
	if got < least {
		b.Fatalf("%s: first sync brought %d records, want at least %d", s.name, got, least)
	}
	if s.checkpoint == "" {
		s.checkpoint = checkpoint
	}
	return took
}

// incrementalPull is the rep's pull after 20 customers of its territory
// and one customer in each other territory changed.
func (s *store) incrementalPull(b *testing.B) time.Duration {
	s.n++
	var mine, others []json.RawMessage
	for k := range incrementalChanges {
		c := (s.n*incrementalChanges + k) % customersPerTerritory
		mine = append(mine, s.change(b, 0, c))
	}
	for t := 1; t < s.territories; t++ {
		others = append(others, s.change(b, t, s.n%customersPerTerritory))
		if len(others) == 500 {
			s.ok(b, s.admin, others)
			others = others[:0]
		}
	}
	s.ok(b, s.admin, others)
	s.ok(b, s.admin, mine)
	start := time.Now()
	got, checkpoint := s.pullAll(b, s.checkpoint)
	took := time.Since(start)
	if got < incrementalChanges {
		b.Fatalf("%s: incremental pull brought %d records, want at least %d", s.name, got, incrementalChanges)
	}
	s.checkpoint = checkpoint
	return took
}

// change is a mutation that renames customer c of territory t at its
// current version.
func (s *store) change(b *testing.B, t, c int) json.RawMessage {
	var version int64
	err := s.st.View(context.Background(), func(tx sync.RecordTx) error {
		r, err := tx.Record(context.Background(), schema.Customers, customerID(t, c))
		if err == nil {
			version = r.Version
		}
		return err
	})
	require.NoError(b, err)
	data := customer(t, c)
	data["name"] = fmt.Sprintf("Outlet %d of %s, renamed %d", c, territoryID(t), s.n)
	raw, err := json.Marshal(map[string]any{"mutation_id": fmt.Sprintf("m-rename-%d-%d-%d", s.n, t, c), "collection": schema.Customers,
		"id": customerID(t, c), "op": schema.MutationUpsert, "base_version": version, "data": data})
	require.NoError(b, err)
	return raw
}

// push is the rep back from three days offline: 150 visits and orders,
// at customers of its share, on the last day of the month.
func (s *store) push(b *testing.B) time.Duration {
	s.n++
	var muts []json.RawMessage
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for k := 0; len(muts) < pushRecords; k++ {
		c := k % (customersPerTerritory / repsPerTerritory)
		in := day.Add(time.Duration(s.n*pushRecords+k) * time.Second)
		vid := fmt.Sprintf("v-push-%d-%d", s.n, k)
		muts = append(muts, upsert(schema.Visits, vid, map[string]any{"customer_id": customerID(0, c),
			"check_in":  map[string]any{"at": in, "lat": customerLat(0, c), "lng": customerLng(0, c), "accuracy": 8},
			"check_out": map[string]any{"at": in.Add(time.Second), "lat": customerLat(0, c), "lng": customerLng(0, c), "accuracy": 8}}))
		if k%2 == 0 {
			muts = append(muts, upsert(schema.Orders, "o-"+vid, map[string]any{"customer_id": customerID(0, c), "visit_id": vid,
				"status": "submitted", "lines": []any{map[string]any{"product_id": "p-1", "quantity": 1, "unit_price": 1001}}}))
		}
	}
	start := time.Now()
	s.ok(b, s.rep, muts)
	return time.Since(start)
}

// coverageTerritory is the month's coverage report of the first
// territory, as the admin asks for it.
func (s *store) coverageTerritory(b *testing.B) time.Duration {
	start := time.Now()
	r, err := s.reports.Coverage(context.Background(), s.admin, "2026-11-01", "2026-11-30", territoryID(0), time.UTC)
	took := time.Since(start)
	require.NoError(b, err)
	if want := repsPerTerritory * days * stopsPerDay; r.Totals.PlannedStops != want {
		b.Fatalf("%s: territory planned stops %d, want %d", s.name, r.Totals.PlannedStops, want)
	}
	return took
}

// coverageRegion is the month's coverage report of the manager's ten
// territories.
func (s *store) coverageRegion(b *testing.B) time.Duration {
	start := time.Now()
	r, err := s.reports.Coverage(context.Background(), s.manager, "2026-11-01", "2026-11-30", "", time.UTC)
	took := time.Since(start)
	require.NoError(b, err)
	if want := min(regionTerritories, s.territories) * repsPerTerritory * days * stopsPerDay; r.Totals.PlannedStops != want {
		b.Fatalf("%s: region planned stops %d, want %d", s.name, r.Totals.PlannedStops, want)
	}
	return took
}

// backupRestore backs the store up and restores the archive into an
// empty folder, then checks that the restored store holds the same rows
// in every table as the store did at the backup — the only change being
// the feed counter, which a restore moves backup.RestoreFeedGap ahead.
func (s *store) backupRestore(b *testing.B) (backupTook, restoreTook time.Duration, archive int64) {
	ctx := context.Background()
	out := filepath.Join(b.TempDir(), s.name+".tgz")
	start := time.Now()
	m, err := backup.Backup(ctx, s.st, s.dir, out)
	backupTook = time.Since(start)
	require.NoError(b, err)
	fi, err := os.Stat(out)
	require.NoError(b, err)
	into := filepath.Join(b.TempDir(), s.name+"-restored")
	start = time.Now()
	require.NoError(b, backup.Restore(ctx, out, into))
	restoreTook = time.Since(start)
	require.NoError(b, os.Remove(out))
	watermark, err := s.st.Watermark(ctx)
	require.NoError(b, err)
	require.Equal(b, watermark, m.Watermark, "the store was written during its backup")
	start = time.Now()
	seed := maphash.MakeSeed()
	restoredPath := filepath.Join(into, backup.DatabaseName)
	var was map[string]tableSum
	var wasErr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		was, wasErr = tableSums(filepath.Join(s.dir, backup.DatabaseName), seed)
	}()
	now, err := tableSums(restoredPath, seed)
	<-read
	require.NoError(b, errors.Join(wasErr, err))
	restored, err := sqlitestore.Open(ctx, restoredPath)
	require.NoError(b, err)
	defer restored.Close()
	restoredMark, err := restored.Watermark(ctx)
	require.NoError(b, err)
	require.Equal(b, m.Watermark+backup.RestoreFeedGap, restoredMark, "the restored feed counter")
	var rows int64
	for t, sum := range was {
		rows += sum.Rows
		if t == "feed" { // the counter, checked above
			require.Equal(b, sum.Rows, now[t].Rows)
			continue
		}
		require.Equal(b, sum, now[t], "table %s differs after restore", t)
	}
	require.Len(b, now, len(was), "the restored store's tables")
	b.Logf("%s: the restored store holds the same %d rows in %d tables (compared in %s)", s.name, rows, len(was),
		time.Since(start).Round(time.Second))
	return backupTook, restoreTook, fi.Size()
}
