package scale_test

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	gosync "sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"modernc.org/sqlite"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// seedShape names what seedInto writes. Change it whenever the seed
// changes, so that no cached store of the old seed is used.
const seedShape = "v1"

// seedingSuffix ends the name of a folder a store is being seeded in:
// the connection hook gives that store's writer a bulk load's page cache.
const seedingSuffix = ".seeding"

// seedCacheKiB is the writer's page cache while seeding (SQLite's
// cache_size in KiB). The default, 2 MiB, holds a sliver of the indexes of
// a store of millions of records, and every insert into them then reads
// its pages from the file again; with a large cache they stay in memory.
// Only how much SQLite keeps in memory changes: the statements and what
// they write are the engine's.
const seedCacheKiB = 1_500_000

// seedGCPercent is the garbage collector's target while seeding in bulk.
const seedGCPercent = 400

func TestMain(m *testing.M) {
	readerCache := envInt("FIELDSYNC_SCALE_READER_CACHE_KIB", 0)
	sqlite.RegisterConnectionHook(func(conn sqlite.ExecQuerierContext, dsn string) error {
		path, pragmas, _ := strings.Cut(dsn, "?")
		kib := 0
		switch writer := strings.Contains(pragmas, "temp_store"); {
		case writer && strings.HasSuffix(filepath.Dir(path), seedingSuffix):
			kib = seedCacheKiB
		case !writer && strings.HasSuffix(path, backup.DatabaseName):
			kib = readerCache // an experiment: the stores' readers with a larger cache
		}
		if kib == 0 {
			return nil
		}
		_, err := conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA cache_size = -%d", kib), nil)
		return err
	})
	os.Exit(m.Run())
}

// seedStore returns an open store of the benchmark's shape with the given
// number of territories, in a folder of its own. The big store is kept
// in the seed cache (FIELDSYNC_SCALE_CACHE, default
// ~/.cache/fieldsync/scale; "off" to seed every time), keyed by the
// seed's shape, the store's schema version and the territories: a later
// run copies the cached file instead of seeding it again (see cachedSeed),
// a larger store starts from the largest smaller one cached, and sameSeed
// checks it against the small store, which is always seeded afresh.
func seedStore(b *testing.B, name string, territories int, cacheable bool) *store {
	b.Helper()
	ctx := context.Background()
	dir := filepath.Join(b.TempDir(), name)
	cache := seedCache(b)
	if !cacheable || cache == "" {
		seedInto(b, name, dir, territories)
	} else {
		cached := cachedSeed(b, cache, territories)
		if cached == "" {
			version := sqlitestore.Layout()
			cached = filepath.Join(cache, seedKey(version, territories))
			if _, err := os.Stat(cached + seedingSuffix); err != nil {
				if smaller := smallerSeed(b, cache, version, territories); smaller != "" {
					// The seed of fewer territories is the first part of
					// this one: the same users, products and territories.
					// Copied aside, then renamed: a copy cut short is
					// never taken for a seed to resume.
					growing := cached + ".growing"
					require.NoError(b, os.RemoveAll(growing))
					require.NoError(b, os.MkdirAll(growing, 0o700))
					copyFile(b, filepath.Join(smaller, backup.DatabaseName), filepath.Join(growing, backup.DatabaseName))
					require.NoError(b, os.Rename(growing, cached+seedingSuffix))
					b.Logf("%s: growing the seeded store in %s", name, smaller)
				}
			}
			seedInto(b, name, cached, territories)
		} else {
			b.Logf("%s: using the seeded store in %s", name, cached)
		}
		start := time.Now()
		require.NoError(b, os.MkdirAll(dir, 0o700))
		copyFile(b, filepath.Join(cached, backup.DatabaseName), filepath.Join(dir, backup.DatabaseName))
		b.Logf("%s: copied the seeded store in %s", name, time.Since(start).Round(time.Second))
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, backup.DatabaseName))
	require.NoError(b, err)
	b.Cleanup(func() { st.Close() })
	eng, err := sync.New(sync.Config{Store: st, Secret: storetest.Secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	s := &store{name: name, dir: dir, st: st, eng: eng, territories: territories, records: records(territories)}
	s.reports = report.New(st, nil)
	s.admin = s.caller(b, "admin")
	s.manager = s.caller(b, "manager")
	s.rep = s.caller(b, repName(0, 0))
	return s
}

// seedKey names the cached store of territories at a schema version.
func seedKey(version, territories int) string {
	return fmt.Sprintf("%s-schema%d-t%d", seedShape, version, territories)
}

// smallerSeed returns the folder of the largest cached store of fewer
// territories, but at least a region's, at the schema version, or "" if
// there is none.
func smallerSeed(b *testing.B, cache string, version, territories int) string {
	b.Helper()
	found, most := "", 0
	// A seed of fewer territories than a region's has a smaller region.
	for t := regionTerritories; t < territories; t++ {
		dir := filepath.Join(cache, seedKey(version, t))
		if _, err := os.Stat(filepath.Join(dir, backup.DatabaseName)); err == nil && t > most {
			found, most = dir, t
		}
	}
	return found
}

// cachedSeed returns the folder of the cached store of territories with
// the newest schema version not above the store's own, or "" if there is
// none. A store seeded at an older version is brought up to date when it
// is opened, by the same migration a server runs on its file.
func cachedSeed(b *testing.B, cache string, territories int) string {
	b.Helper()
	current := sqlitestore.Layout()
	for v := current; v > 0; v-- {
		dir := filepath.Join(cache, seedKey(v, territories))
		if _, err := os.Stat(filepath.Join(dir, backup.DatabaseName)); err == nil {
			if v < current {
				b.Logf("the cached store %s is migrated from schema %d to %d when opened", dir, v, current)
			}
			return dir
		}
	}
	return ""
}

// records is how many records seedInto writes for territories.
func records(territories int) int {
	return products + territories*(1+customersPerTerritory+repsPerTerritory*days*(1+visitsPerDay+visitsPerDay/4))
}

// seedCache returns the seed cache's folder, or "" when it is off.
func seedCache(b *testing.B) string {
	switch v := os.Getenv("FIELDSYNC_SCALE_CACHE"); v {
	case "off":
		return ""
	case "":
		base, err := os.UserCacheDir()
		require.NoError(b, err)
		return filepath.Join(base, "fieldsync", "scale")
	default:
		return v
	}
}

func copyFile(b *testing.B, src, dst string) {
	b.Helper()
	in, err := os.Open(src)
	require.NoError(b, err)
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	require.NoError(b, err)
	_, err = io.Copy(out, in)
	require.NoError(b, errors.Join(err, out.Close()))
}

// seedInto seeds a store in dir through the engine's push and closes it:
// territories×1,000 customers, 5 reps per territory with a month of route
// plans (10 stops a day) and visits (8 a day, checked out, an order on
// every fourth), 200 products, and the users: an admin, the reps and a
// manager over the first ten territories. Territories are seeded by
// FIELDSYNC_SCALE_SEED_WORKERS goroutines at once (default 2), each
// territory's pushes in order, so that the engine's group commit shares
// write transactions among them; the store is what any interleaving of
// these pushes by a server leaves. The store is written in dir+".seeding"
// and renamed to dir once closed.
func seedInto(b *testing.B, name, dir string, territories int) {
	b.Helper()
	seedWith(b, name, dir, territories, envInt("FIELDSYNC_SCALE_SEED_WORKERS", 2), true)
}

// seedWith is seedInto with the number of workers given, and without the
// bulk load's page cache and garbage collector target unless bulk.
func seedWith(b *testing.B, name, dir string, territories, workers int, bulk bool) seedRate {
	b.Helper()
	ctx := context.Background()
	work := dir + seedingSuffix
	if !bulk {
		work = dir + ".plain"
	} else {
		// The seed allocates at a high rate and keeps little: collecting
		// less often gives its time to the writer.
		defer debug.SetGCPercent(debug.SetGCPercent(seedGCPercent))
	}
	if _, err := os.Stat(work); err == nil {
		b.Logf("%s: resuming the seed left in %s", name, work)
	}
	require.NoError(b, os.MkdirAll(work, 0o700))
	st, err := sqlitestore.Open(ctx, filepath.Join(work, backup.DatabaseName))
	require.NoError(b, err)
	eng, err := sync.New(sync.Config{Store: st, Secret: storetest.Secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	sd := &seeder{st: st, eng: eng}
	admin, err := sd.user("admin", schema.RoleAdmin)
	require.NoError(b, err)
	region := make([]string, 0, regionTerritories)
	for t := range min(regionTerritories, territories) {
		region = append(region, territoryID(t))
	}
	_, err = sd.user("manager", schema.RoleManager, region...)
	require.NoError(b, err)
	start, cpu := time.Now(), cpuTime(b)
	var muts []json.RawMessage
	for p := range products {
		muts = append(muts, upsert(schema.Products, fmt.Sprintf("p-%d", p), map[string]any{"sku": fmt.Sprintf("SKU%05d", p),
			"name": fmt.Sprintf("Product %d", p), "unit": "case", "price": 1000 + p, "active": true}))
	}
	require.NoError(b, sd.push(admin, muts))
	workers = min(workers, territories)
	next := make(chan int)
	errs := make(chan error, workers)
	var done gosync.WaitGroup
	var mu gosync.Mutex
	seeded, skipped := 0, 0
	for range workers {
		done.Go(func() {
			for t := range next {
				had, err := sd.seeded(t)
				if err == nil && !had {
					err = sd.territory(admin, t)
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				seeded++
				if had {
					skipped++
				}
				if seeded%50 == 0 {
					took := time.Since(start)
					fmt.Fprintf(os.Stderr, "%s: %d of %d territories seeded (%d by an earlier run) in %s (%.0f records/s)\n", name, seeded,
						territories, skipped, took.Round(time.Second), float64(records(seeded)-records(skipped))/took.Seconds())
				}
				mu.Unlock()
			}
		})
	}
	func() {
		defer close(next)
		for t := range territories {
			select {
			case next <- t:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	done.Wait()
	close(errs)
	require.NoError(b, <-errs)
	took, used := time.Since(start), cpuTime(b)-cpu
	require.NoError(b, st.Close())
	require.NoError(b, os.RemoveAll(dir))
	require.NoError(b, os.Rename(work, dir))
	if skipped > 0 {
		b.Logf("%s: %d of %d territories were seeded by an earlier run", name, skipped, territories)
	}
	n := records(territories)
	if skipped > 0 {
		n -= records(skipped) // the products were seeded with them
	}
	rate, cpuPer := float64(n)/took.Seconds(), used.Seconds()*1000/float64(n)
	b.Logf("%s: seeded %d territories, %d reps, %d records through the engine in %s (%.0f records/s, %.2f CPU-ms a record, %d workers, bulk %v)",
		name, territories, territories*repsPerTerritory, n, took.Round(time.Second), rate, cpuPer, workers, bulk)
	return seedRate{rate, cpuPer}
}

// seedRate is how fast a seed went: records a second of the clock, and
// the process's CPU time a record, which depends less on what else the
// machine runs.
type seedRate struct{ perSecond, cpuMs float64 }

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSeed measures how fast seedInto fills a store of
// FIELDSYNC_SCALE_SEED_TERRITORIES territories (default 20): one push at
// a time with SQLite's default page cache, as the benchmark first
// seeded, against FIELDSYNC_SCALE_SEED_WORKERS workers with the bulk
// load's cache, alternating FIELDSYNC_SCALE_REPEAT times (default 1).
//
//	go test -run '^$' -bench Seed -benchtime 1x -timeout 0 ./bench/scale/
func BenchmarkSeed(b *testing.B) {
	territories := envInt("FIELDSYNC_SCALE_SEED_TERRITORIES", 20)
	workers := envInt("FIELDSYNC_SCALE_SEED_WORKERS", 2)
	repeat := envInt("FIELDSYNC_SCALE_REPEAT", 1)
	for range b.N {
		var rate, cpu [2][]float64 // plain, bulk
		for i := range repeat {
			dir := b.TempDir()
			for j, r := range []seedRate{
				seedWith(b, "plain", filepath.Join(dir, fmt.Sprint("plain", i)), territories, 1, false),
				seedWith(b, "bulk", filepath.Join(dir, fmt.Sprint("bulk", i)), territories, workers, true),
			} {
				rate[j] = append(rate[j], r.perSecond)
				cpu[j] = append(cpu[j], r.cpuMs)
			}
			require.NoError(b, os.RemoveAll(dir))
		}
		mid := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
		b.ReportMetric(mid(rate[0]), "plain-records/s")
		b.ReportMetric(mid(rate[1]), "bulk-records/s")
		b.ReportMetric(mid(cpu[0]), "plain-cpu-ms/record")
		b.ReportMetric(mid(cpu[1]), "bulk-cpu-ms/record")
	}
}

// seeder pushes the seed through the engine.
type seeder struct {
	st  *sqlitestore.Store
	eng *sync.Engine
}

// territory seeds territory t: the territory, its customers in pushes of
// 500, its reps and each rep's month.
func (sd *seeder) territory(admin schema.Principal, t int) error {
	tid := territoryID(t)
	if err := sd.push(admin, []json.RawMessage{upsert(schema.Territories, tid, map[string]any{"name": "Territory " + tid,
		"region": fmt.Sprintf("R%d", t/regionTerritories)})}); err != nil {
		return err
	}
	muts := make([]json.RawMessage, 0, 500)
	for c := range customersPerTerritory {
		muts = append(muts, upsert(schema.Customers, customerID(t, c), customer(t, c)))
		if len(muts) == 500 || c == customersPerTerritory-1 {
			if err := sd.push(admin, muts); err != nil {
				return err
			}
			muts = muts[:0]
		}
	}
	for r := range repsPerTerritory {
		rep, err := sd.user(repName(t, r), schema.RoleRep, tid)
		if err != nil {
			return err
		}
		plans, visits := month(t, r)
		if err := sd.push(admin, plans); err != nil {
			return err
		}
		if err := sd.push(rep, visits); err != nil {
			return err
		}
	}
	return nil
}

// seeded reports whether an earlier run seeded territory t whole: its
// last push, the last rep's visits, is one transaction, and it is the
// territory's last, so its last record is there only if all are.
// Territories it did not finish are seeded again: the engine answers the
// mutations it had applied as before (their ids are the same) and writes
// the rest, as it would for a client that retries.
func (sd *seeder) seeded(t int) (bool, error) {
	_, visits := month(t, repsPerTerritory-1)
	var last struct {
		Collection schema.Collection `json:"collection"`
		ID         string            `json:"id"`
	}
	if err := json.Unmarshal(visits[len(visits)-1], &last); err != nil {
		return false, err
	}
	ctx := context.Background()
	found := false
	err := sd.st.View(ctx, func(tx sync.RecordTx) error {
		_, err := tx.Record(ctx, last.Collection, last.ID)
		found = err == nil
		if errors.Is(err, sync.ErrNotFound) {
			return nil
		}
		return err
	})
	return found, err
}

// user creates a user in the store, or finds the one an earlier run
// created, and returns it as a caller.
func (sd *seeder) user(name string, role schema.Role, territories ...string) (schema.Principal, error) {
	ctx := context.Background()
	now := time.Now()
	u := &schema.User{ID: "u-" + name, Username: name, PasswordHash: "x", Role: role, Territories: append([]string{}, territories...),
		Active: true, CreatedAt: now, UpdatedAt: now}
	err := sd.st.CreateUser(ctx, u)
	if errors.Is(err, sync.ErrExists) {
		u, err = sd.st.UserByName(ctx, name)
	}
	if err != nil {
		return schema.Principal{}, err
	}
	return principal(u), nil
}

func principal(u *schema.User) schema.Principal {
	return u.Principal("dev-"+u.Username, "l-"+u.Username)
}

// push pushes muts as p and fails unless every one is applied.
func (sd *seeder) push(p schema.Principal, muts []json.RawMessage) error {
	resp, err := sd.eng.Push(context.Background(), p, &schema.PushRequest{DeviceID: p.DeviceID, Mutations: muts})
	if err != nil {
		return err
	}
	for i, r := range resp.Results {
		if r.Status != schema.PushApplied {
			return fmt.Errorf("mutation %d (%s) answered %+v", i, muts[i], r)
		}
	}
	return nil
}

// caller returns the seeded user name as a caller.
func (s *store) caller(b *testing.B, name string) schema.Principal {
	b.Helper()
	u, err := s.st.User(context.Background(), "u-"+name)
	require.NoError(b, err)
	return principal(u)
}

// sameSeed fails unless the rep of t-0 finds the same records — versions,
// data but for the server's clock, who wrote them, read tokens,
// references — and the same coverage
// of t-0 in both stores: a cached big store must hold what the engine
// writes now, as the small store, seeded afresh, does.
func sameSeed(b *testing.B, small, big *store) {
	b.Helper()
	ctx := context.Background()
	cover := func(s *store) string {
		r, err := s.reports.Coverage(ctx, s.admin, "2026-11-01", "2026-11-30", territoryID(0), time.UTC)
		require.NoError(b, err)
		raw, err := json.Marshal(r)
		require.NoError(b, err)
		return withoutServerTimes(b, raw) // the reps' last push and pull
	}
	require.Equal(b, cover(small), cover(big), "t-0's coverage differs between the stores")
	// Then the records, as the rep pulls them (which the coverage reports).
	var ids []*schema.Envelope
	checkpoint := ""
	for {
		resp, err := small.eng.Pull(ctx, small.rep, &schema.PullRequest{Checkpoint: checkpoint, Limit: sync.MaxPullLimit})
		require.NoError(b, err)
		ids = append(ids, resp.Changes...)
		checkpoint = resp.Checkpoint
		if !resp.HasMore {
			break
		}
	}
	type kept struct {
		Version      int64
		Deleted      bool
		UpdatedBy    string
		Data         string
		Tokens, Refs []string
	}
	read := func(s *store) []kept {
		out := make([]kept, 0, len(ids))
		require.NoError(b, s.st.View(ctx, func(tx sync.RecordTx) error {
			for _, e := range ids {
				r, err := tx.Record(ctx, e.Collection, e.ID)
				if err != nil {
					return fmt.Errorf("%s %s %s: %w", s.name, e.Collection, e.ID, err)
				}
				out = append(out, kept{r.Version, r.Deleted, r.UpdatedBy, withoutServerTimes(b, r.Data), r.Tokens, r.Refs})
			}
			return nil
		}))
		return out
	}
	require.Equal(b, read(small), read(big), "the rep's records differ between the stores")
	b.Logf("the big store's %d records of the rep and t-0's coverage are the small store's", len(ids))
}

// withoutServerTimes is a record's data with the times the server stamps
// from its clock (an order's submitted_at) replaced by a mark: every time
// of the seed is in its month, so a later one is the server's.
func withoutServerTimes(b *testing.B, data json.RawMessage) string {
	b.Helper()
	if len(data) == 0 {
		return ""
	}
	monthEnd := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var v any
	require.NoError(b, json.Unmarshal(data, &v))
	var walk func(v any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e)
			}
		case []any:
			for i, e := range v {
				v[i] = walk(e)
			}
		case string:
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil && !t.Before(monthEnd) {
				return "(server time)"
			}
		}
		return v
	}
	out, err := json.Marshal(walk(v))
	require.NoError(b, err)
	return string(out)
}

// tableSum is a table's row count and a checksum of its rows that does
// not depend on their order: the sum and the exclusive or of the rows'
// hashes.
type tableSum struct {
	Rows     int64
	Sum, Xor uint64
}

// tableSums reads every row of every table of the database file at path
// and hashes it with seed.
func tableSums(path string, seed maphash.Seed) (map[string]tableSum, error) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table'")
	if err != nil {
		return nil, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, err
		}
		tables = append(tables, t)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	sums := make(map[string]tableSum, len(tables))
	var h maphash.Hash
	h.SetSeed(seed)
	for _, t := range tables {
		ts, err := tableSumOf(ctx, db, t, &h)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		sums[t] = ts
	}
	return sums, nil
}

// tableSumOf hashes every row of table t with h.
func tableSumOf(ctx context.Context, db *sql.DB, t string, h *maphash.Hash) (tableSum, error) {
	var ts tableSum
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %q", t))
	if err != nil {
		return ts, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return ts, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var buf [9]byte
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return ts, err
		}
		h.Reset()
		for _, v := range vals {
			switch v := v.(type) {
			case nil:
				h.WriteByte(0)
			case int64:
				buf[0] = 1
				binary.LittleEndian.PutUint64(buf[1:], uint64(v))
				h.Write(buf[:])
			case float64:
				buf[0] = 2
				binary.LittleEndian.PutUint64(buf[1:], math.Float64bits(v))
				h.Write(buf[:])
			case string:
				buf[0] = 3
				binary.LittleEndian.PutUint64(buf[1:], uint64(len(v)))
				h.Write(buf[:])
				h.WriteString(v)
			case []byte:
				buf[0] = 4
				binary.LittleEndian.PutUint64(buf[1:], uint64(len(v)))
				h.Write(buf[:])
				h.Write(v)
			default:
				return ts, fmt.Errorf("a value of type %T", v)
			}
		}
		d := h.Sum64()
		ts.Sum += d
		ts.Xor ^= d
		ts.Rows++
	}
	return ts, errors.Join(rows.Err(), rows.Close())
}
