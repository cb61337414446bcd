package sync_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// The benchmarks below set the engine beside two baselines doing the same
// writes and reads directly, in the same run:
//   - store: the SQLite store adapter itself, given the records, tokens,
//     refs, history and answers the engine would write, or paging through
//     the feed the engine would read;
//   - sqlite: plain SQLite, one (id, version, data) table in a file opened
//     with the same settings, one row per record.
//
// Run them together so that the ratios come from one machine at one time:
//
//	go test -run '^$' -bench 'Push500|Pull10k' -benchtime 20x -count 3 ./sync/

const benchBatch = 500

func benchCustomer(i int) map[string]any {
	return map[string]any{"code": fmt.Sprintf("C%07d", i), "name": fmt.Sprintf("Outlet %d, Main Street", i), "territory_id": "t-1",
		"address": "12 Main Street, Springfield", "grade": "B", "lat": 52.52 + float64(i%100)/1000, "lng": 13.40, "credit_limit": 250000,
		"payment_terms_days": 30, "contacts": []any{map[string]any{"name": "Ana Owner", "role": "owner", "phone": "+49 30 1234567"}},
		"tags": []any{"kiosk", "north"}}
}

func openRaw(b *testing.B) *sql.DB {
	b.Helper()
	dsn := "file:" + filepath.Join(b.TempDir(), "raw.db") +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	require.NoError(b, err)
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { db.Close() })
	_, err = db.Exec("CREATE TABLE records (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL) WITHOUT ROWID")
	require.NoError(b, err)
	return db
}

func benchEngine(b *testing.B) (*sync.Engine, *sqlitestore.Store, schema.Principal) {
	b.Helper()
	store, err := sqlitestore.Open(context.Background(), filepath.Join(b.TempDir(), "fieldsync.db"))
	require.NoError(b, err)
	b.Cleanup(func() { store.Close() })
	eng, err := sync.New(sync.Config{Store: store, Secret: storetest.Secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	admin := schema.Principal{UserID: "u-admin", Role: schema.RoleAdmin}
	resp, err := eng.Push(context.Background(), admin, &schema.PushRequest{Mutations: []json.RawMessage{
		withID(storetest.Up(schema.Territories, "t-1", 0, territory("North")), -1).Raw()}})
	require.NoError(b, err)
	require.Equal(b, schema.PushApplied, resp.Results[0].Status)
	return eng, store, admin
}

// pushBatch builds the raw mutations of batch n: 500 new customers.
func pushBatch(n int) []json.RawMessage {
	out := make([]json.RawMessage, benchBatch)
	for i := range out {
		k := n*benchBatch + i
		out[i] = withID(storetest.Up(schema.Customers, fmt.Sprintf("c-%d", k), 0, benchCustomer(k)), k).Raw()
	}
	return out
}

func BenchmarkPush500(b *testing.B) {
	ctx := context.Background()
	b.Run("engine", func(b *testing.B) {
		eng, _, admin := benchEngine(b)
		batches := make([][]json.RawMessage, b.N)
		for i := range batches {
			batches[i] = pushBatch(i)
		}
		b.ResetTimer()
		for i := range b.N {
			resp, err := eng.Push(ctx, admin, &schema.PushRequest{Mutations: batches[i]})
			if err != nil || resp.Results[benchBatch-1].Status != schema.PushApplied {
				b.Fatalf("push: %v %+v", err, resp.Results[benchBatch-1])
			}
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("store", func(b *testing.B) {
		_, store, _ := benchEngine(b)
		batches := make([][]*sync.Record, b.N)
		answers := make([][]*sync.Answer, b.N)
		for i := range batches {
			for j := range benchBatch {
				k := i*benchBatch + j
				data, _ := json.Marshal(benchCustomer(k))
				id, mid := fmt.Sprintf("c-%d", k), fmt.Sprintf("bulk-%d", k)
				batches[i] = append(batches[i], &sync.Record{Collection: schema.Customers, ID: id, Version: 1,
					UpdatedAt: time.Now(), UpdatedBy: "u-admin", Data: data,
					Tokens: []string{"customers|all", "customers|terr:t-1"}, Refs: []string{},
					History: []sync.Revision{{Version: 1, MutationID: mid, UserID: "u-admin", Data: data}},
					Facts:   []sync.Fact{{Kind: sync.FactCustomer, Customer: id, Territory: "t-1", Label: "Outlet", Grade: "B", At: sync.Epoch}}})
				answers[i] = append(answers[i], &sync.Answer{UserID: "u-admin", MutationID: mid,
					Body: json.RawMessage(`{"mutation_id":"` + mid + `","status":"applied","version":1}`), At: time.Now()})
			}
		}
		b.ResetTimer()
		for i := range b.N {
			err := store.Update(ctx, func(tx sync.RecordTx) error {
				for j, r := range batches[i] {
					if got, err := tx.Answers(ctx, "u-admin", []string{answers[i][j].MutationID}); err != nil || len(got) != 0 {
						return fmt.Errorf("answer: %v %v", got, err)
					}
					if _, err := tx.Record(ctx, r.Collection, r.ID); err != sync.ErrNotFound {
						return fmt.Errorf("record: %v", err)
					}
					if err := tx.Put(ctx, r, 0); err != nil {
						return err
					}
					if err := tx.SaveAnswer(ctx, answers[i][j]); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("sqlite", func(b *testing.B) {
		db := openRaw(b)
		rows := make([][]byte, b.N*benchBatch)
		for k := range rows {
			rows[k], _ = json.Marshal(benchCustomer(k))
		}
		b.ResetTimer()
		for i := range b.N {
			tx, err := db.Begin()
			require.NoError(b, err)
			for j := range benchBatch {
				k := i*benchBatch + j
				if _, err := tx.Exec("INSERT INTO records (id, version, data) VALUES (?, 1, ?)", fmt.Sprintf("c-%d", k), string(rows[k])); err != nil {
					b.Fatal(err)
				}
			}
			require.NoError(b, tx.Commit())
		}
		b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
	})
}

const pullRecords = 10_000

func BenchmarkPull10k(b *testing.B) {
	ctx := context.Background()
	b.Run("engine", func(b *testing.B) {
		eng, _, admin := benchEngine(b)
		for n := range pullRecords / benchBatch {
			_, err := eng.Push(ctx, admin, &schema.PushRequest{Mutations: pushBatch(n)})
			require.NoError(b, err)
		}
		b.ResetTimer()
		for range b.N {
			got, checkpoint := 0, ""
			for {
				resp, err := eng.Pull(ctx, admin, &schema.PullRequest{Checkpoint: checkpoint, Limit: sync.MaxPullLimit})
				if err != nil {
					b.Fatal(err)
				}
				got += len(resp.Changes)
				checkpoint = resp.Checkpoint
				if !resp.HasMore {
					break
				}
			}
			if got < pullRecords {
				b.Fatalf("pulled %d", got)
			}
		}
		b.ReportMetric(float64(b.N*pullRecords)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("store", func(b *testing.B) {
		eng, store, admin := benchEngine(b)
		for n := range pullRecords / benchBatch {
			_, err := eng.Push(ctx, admin, &schema.PushRequest{Mutations: pushBatch(n)})
			require.NoError(b, err)
		}
		tokens := schema.ReadTokens(admin)
		b.ResetTimer()
		for range b.N {
			got := 0
			for after := int64(0); ; {
				wm, err := store.Watermark(ctx)
				if err != nil {
					b.Fatal(err)
				}
				chs, err := store.Changes(ctx, tokens, after, wm, sync.MaxPullLimit, 0)
				if err != nil {
					b.Fatal(err)
				}
				got += len(chs)
				if len(chs) < sync.MaxPullLimit {
					break
				}
				after = chs[len(chs)-1].Seq
			}
			if got < pullRecords {
				b.Fatalf("read %d", got)
			}
		}
		b.ReportMetric(float64(b.N*pullRecords)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("sqlite", func(b *testing.B) {
		db := openRaw(b)
		tx, err := db.Begin()
		require.NoError(b, err)
		for k := range pullRecords {
			data, _ := json.Marshal(benchCustomer(k))
			_, err := tx.Exec("INSERT INTO records (id, version, data) VALUES (?, 1, ?)", fmt.Sprintf("c-%d", k), string(data))
			require.NoError(b, err)
		}
		require.NoError(b, tx.Commit())
		type row struct {
			ID      string
			Version int64
			Data    json.RawMessage
		}
		b.ResetTimer()
		for range b.N {
			var out []row
			for after := ""; ; {
				rows, err := db.Query("SELECT id, version, data FROM records WHERE id > ? ORDER BY id LIMIT ?", after, sync.MaxPullLimit)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					var r row
					var data string
					if err := rows.Scan(&r.ID, &r.Version, &data); err != nil {
						b.Fatal(err)
					}
					r.Data = json.RawMessage(data)
					out = append(out, r)
					after = r.ID
					n++
				}
				rows.Close()
				if n < sync.MaxPullLimit {
					break
				}
			}
			if len(out) != pullRecords {
				b.Fatalf("read %d", len(out))
			}
		}
		b.ReportMetric(float64(b.N*pullRecords)/b.Elapsed().Seconds(), "records/s")
	})
}

// serialStore runs one unit of work at a time, so that each has a write
// transaction of its own: the store as it was before it grouped them.
type serialStore struct {
	sync.Store
	mu gosync.Mutex
}

func (s *serialStore) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store.Update(ctx, fn)
}

// BenchmarkConcurrentSmallPushes pushes one new closed visit a push from 50
// goroutines at once, as many phones syncing do: "grouped" on the store as
// it is, which runs the pushes that wait for a write transaction together
// in the next one; "serial" with each push in a transaction of its own,
// the baseline. ns/op is per push.
//
//	go test -run '^$' -bench ConcurrentSmallPushes -benchtime 3000x -count 3 ./sync/
func BenchmarkConcurrentSmallPushes(b *testing.B) {
	for _, mode := range []string{"grouped", "serial"} {
		b.Run(mode, func(b *testing.B) {
			e := newEnv(b)
			seed(e)
			// The engine as a server runs it (the bed's decides every
			// push ahead of the write lock).
			var store sync.Store = e.Store
			if mode == "serial" {
				store = &serialStore{Store: e.Store}
			}
			var err error
			e.Engine, err = sync.New(sync.Config{Store: store, Secret: storetest.Secret, Now: func() time.Time { return e.Now },
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			require.NoError(b, err)
			var n atomic.Int64
			b.SetParallelism(25)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					in := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
					v := visit("c-1", 52.52, 13.405)
					v["check_in"] = map[string]any{"at": in, "lat": 52.52, "lng": 13.405, "accuracy": 8}
					v["check_out"] = map[string]any{"at": in.Add(time.Second / 2), "lat": 52.52, "lng": 13.405, "accuracy": 8}
					m := storetest.Up(schema.Visits, fmt.Sprintf("v-%d", i), 0, v)
					m.ID = fmt.Sprintf("m-v-%d", i)
					resp, err := e.Engine.Push(context.Background(), e.Users["rep1"], &schema.PushRequest{DeviceID: "dev-rep1", Mutations: []json.RawMessage{m.Raw()}})
					if err != nil || resp.Results[0].Status != schema.PushApplied {
						b.Errorf("push %d: %v %+v", i, err, resp)
						return
					}
				}
			})
		})
	}
}
