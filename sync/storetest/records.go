package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

func testRecords(t *testing.T, newStore func(t *testing.T) Store) {
	t.Run("PutAndRead", func(t *testing.T) { testPutAndRead(t, newStore(t)) })
	t.Run("Refs", func(t *testing.T) { testRefs(t, newStore(t)) })
	t.Run("ChangesAndGoneTokens", func(t *testing.T) { testChanges(t, newStore(t)) })
	t.Run("FeedTokens", func(t *testing.T) { testFeed(t, newStore(t)) })
	t.Run("ChangesStopAtBytes", func(t *testing.T) { testChangesStopAtBytes(t, newStore(t)) })
	t.Run("Answers", func(t *testing.T) { testAnswers(t, newStore(t)) })
	t.Run("PhotoProofs", func(t *testing.T) { testPhotoProofs(t, newStore(t)) })
	t.Run("ConcurrentWritersNeverSkip", func(t *testing.T) { testNeverSkip(t, newStore(t)) })
	t.Run("OneWinnerPerVersion", func(t *testing.T) { testOneWinner(t, newStore(t)) })
	t.Run("WritesSeenInTheirUnit", func(t *testing.T) { testWritesSeenInTheirUnit(t, newStore(t)) })
}

func rec(id string, version int64, tokens []string, data string) *sync.Record {
	return &sync.Record{
		Collection: schema.Customers, ID: id, Version: version, UpdatedAt: at, UpdatedBy: "u-1",
		Data: json.RawMessage(data), Tokens: tokens, Refs: []string{},
		History: []sync.Revision{{Version: version, MutationID: fmt.Sprintf("m-%s-%d", id, version), UserID: "u-1", Data: json.RawMessage(data)}},
	}
}

func put(t *testing.T, s Store, r *sync.Record, prev int64) {
	t.Helper()
	require.NoError(t, s.Update(context.Background(), func(tx sync.RecordTx) error { return tx.Put(context.Background(), r, prev) }))
}

func read(t *testing.T, s Store, c schema.Collection, id string) (*sync.Record, error) {
	t.Helper()
	var r *sync.Record
	err := s.View(context.Background(), func(tx sync.RecordTx) error {
		var err error
		r, err = tx.Record(context.Background(), c, id)
		return err
	})
	return r, err
}

func testPutAndRead(t *testing.T, s Store) {
	ctx := context.Background()
	_, err := read(t, s, schema.Customers, "c-1")
	assert.ErrorIs(t, err, sync.ErrNotFound)

	r1 := rec("c-1", 1, []string{"customers|all", "customers|terr:t-1"}, `{"name":"Ana's"}`)
	put(t, s, r1, 0)
	assert.Positive(t, r1.Seq, "a seq is assigned")
	got, err := read(t, s, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.Equal(t, r1, got)

	err = s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, rec("c-1", 1, nil, `{}`), 0) })
	assert.ErrorIs(t, err, sync.ErrStale, "creating what exists")

	r2 := rec("c-1", 2, []string{"customers|all"}, `{"name":"Ana's Shop"}`)
	r2.History = append(r1.History, r2.History...)
	put(t, s, r2, 1)
	assert.Greater(t, r2.Seq, r1.Seq, "seqs grow")
	err = s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, rec("c-1", 3, nil, `{}`), 1) })
	assert.ErrorIs(t, err, sync.ErrStale, "a stale prev")

	del := rec("c-1", 3, []string{"customers|all"}, `null`)
	del.Data, del.Deleted = nil, true
	put(t, s, del, 2)
	got, err = read(t, s, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.True(t, got.Deleted)
	assert.Nil(t, got.Data)
	assert.Equal(t, int64(3), got.Version)
	assert.Len(t, got.History, 1)

	_, err = read(t, s, schema.Visits, "c-1")
	assert.ErrorIs(t, err, sync.ErrNotFound, "ids are per collection")

	r4 := rec("c-4", 1, []string{"customers|all"}, `{"name":"Bo's"}`)
	put(t, s, r4, 0)
	for _, unit := range []struct {
		name string
		run  func(context.Context, func(sync.RecordTx) error) error
	}{{"view", s.View}, {"update", s.Update}} {
		require.NoError(t, unit.run(ctx, func(tx sync.RecordTx) error {
			got, err := tx.Records(ctx, schema.Customers, []string{"c-1", "c-none", "c-4"})
			require.NoError(t, err)
			require.Len(t, got, 2, "%s: the records ever written, tombstones included", unit.name)
			assert.True(t, got["c-1"].Deleted, unit.name)
			assert.Equal(t, r4, got["c-4"], unit.name)
			again, err := tx.Records(ctx, schema.Customers, []string{"c-none", "c-4"})
			require.NoError(t, err)
			assert.Len(t, again, 1, "%s: asked again, the same", unit.name)
			other, err := tx.Records(ctx, schema.Visits, []string{"c-1", "c-4"})
			require.NoError(t, err)
			assert.Empty(t, other, "%s: ids are per collection", unit.name)
			none, err := tx.Records(ctx, schema.Customers, nil)
			require.NoError(t, err)
			assert.Empty(t, none, unit.name)
			return nil
		}))
	}
}

func testRefs(t *testing.T, s Store) {
	ctx := context.Background()
	for i := range 5 {
		r := rec(fmt.Sprintf("v-%d", i), 1, []string{"visits|all"}, `{}`)
		r.Collection = schema.Visits
		r.Refs = []string{"customer:c-1", fmt.Sprintf("n:%d", i%2)}
		put(t, s, r, 0)
	}
	byRef := func(ref, after string, limit int) []string {
		var ids []string
		require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
			rs, err := tx.RecordsByRef(ctx, schema.Visits, ref, after, limit)
			for _, r := range rs {
				ids = append(ids, r.ID)
			}
			return err
		}))
		return ids
	}
	assert.Equal(t, []string{"v-0", "v-1", "v-2", "v-3", "v-4"}, byRef("customer:c-1", "", 10))
	assert.Equal(t, []string{"v-0", "v-2", "v-4"}, byRef("n:0", "", 10))
	assert.Equal(t, []string{"v-2", "v-3"}, byRef("customer:c-1", "v-1", 2), "paged by id")
	assert.Empty(t, byRef("customer:c-9", "", 10))

	r := rec("v-0", 2, []string{"visits|all"}, `{}`)
	r.Collection, r.Refs = schema.Visits, []string{"customer:c-2"}
	put(t, s, r, 1)
	assert.Equal(t, []string{"v-1", "v-2", "v-3", "v-4"}, byRef("customer:c-1", "", 10), "a dropped ref no longer finds it")
	assert.Equal(t, []string{"v-0"}, byRef("customer:c-2", "", 10))
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		rs, err := tx.RecordsByRef(ctx, schema.Customers, "customer:c-1", "", 10)
		assert.Empty(t, rs, "refs are per collection")
		return err
	}))
}

func changes(t *testing.T, s Store, tokens []string, after int64, limit int) []sync.Change {
	t.Helper()
	wm, err := s.Watermark(context.Background())
	require.NoError(t, err)
	chs, err := s.Changes(context.Background(), tokens, after, wm, limit, 0)
	require.NoError(t, err)
	return chs
}

// testChangesStopAtBytes pages through a feed of records of different
// sizes, some of them gone, with a byte bound: every page is the start of
// what is left, ends with the change that reaches the bound (or the
// limit, or the end), and the pages together are the whole feed.
func testChangesStopAtBytes(t *testing.T, s Store) {
	ctx := context.Background()
	t1, t2 := "customers|terr:t-1", "customers|terr:t-2"
	var recs []*sync.Record
	for i := range 16 {
		tokens := [][]string{{t1}, {t1, t2}, {t2}, {t1}}[i%4]
		r := rec(fmt.Sprintf("c-%02d", i), 1, tokens, fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 500*(i%5+1))))
		put(t, s, r, 0)
		recs = append(recs, r)
	}
	for _, i := range []int{0, 5} { // leave t-1: gone for its holders
		moved := rec(recs[i].ID, 2, []string{t2}, `{"moved":true}`)
		put(t, s, moved, 1)
	}
	wm, err := s.Watermark(ctx)
	require.NoError(t, err)
	all, err := s.Changes(ctx, []string{t1}, 0, wm, 1000, 0)
	require.NoError(t, err)
	require.NotEmpty(t, all)
	require.True(t, slices.ContainsFunc(all, func(ch sync.Change) bool { return ch.Gone }), "the feed has gone entries")

	for _, maxBytes := range []int{1, 1200, 3000, 7000, 1 << 20} {
		t.Run(fmt.Sprint(maxBytes), func(t *testing.T) {
			const limit = 5
			var got []sync.Change
			after := int64(0)
			for len(got) < len(all) {
				page, err := s.Changes(ctx, []string{t1}, after, wm, limit, maxBytes)
				require.NoError(t, err)
				require.NotEmpty(t, page, "a page while changes are left")
				rest := all[len(got):]
				want, size := 0, 0
				for want < len(rest) && want < limit && size < maxBytes {
					size += len(rest[want].Record.Data)
					want++
				}
				require.Equalf(t, summary(rest[:want]), summary(page), "page after seq %d", after)
				got = append(got, page...)
				after = page[len(page)-1].Seq
			}
			assert.Equal(t, summary(all), summary(got), "the pages make the whole feed")
			chs, err := s.Changes(ctx, []string{t1}, after, wm, limit, maxBytes)
			require.NoError(t, err)
			assert.Empty(t, chs, "nothing after the end")
		})
	}
}

type seen struct {
	ID   string
	V    int64
	Gone bool
}

func summary(chs []sync.Change) []seen {
	var out []seen
	for _, ch := range chs {
		out = append(out, seen{ch.Record.ID, ch.Record.Version, ch.Gone})
	}
	return out
}

func testChanges(t *testing.T, s Store) {
	t1, t2 := "customers|terr:t-1", "customers|terr:t-2"
	a := rec("c-a", 1, []string{t1}, `{"n":1}`)
	b := rec("c-b", 1, []string{t2}, `{"n":2}`)
	c := rec("c-c", 1, []string{t1, t2}, `{"n":3}`)
	put(t, s, a, 0)
	put(t, s, b, 0)
	put(t, s, c, 0)

	assert.Equal(t, []seen{{"c-a", 1, false}, {"c-c", 1, false}}, summary(changes(t, s, []string{t1}, 0, 10)))
	assert.Equal(t, []seen{{"c-a", 1, false}, {"c-b", 1, false}, {"c-c", 1, false}}, summary(changes(t, s, []string{t1, t2}, 0, 10)),
		"a record with two of the tokens comes once")
	assert.Equal(t, []seen{{"c-a", 1, false}}, summary(changes(t, s, []string{t1, t2}, 0, 1)), "limit")
	assert.Equal(t, []seen{{"c-c", 1, false}}, summary(changes(t, s, []string{t1}, a.Seq, 10)), "after")
	assert.Empty(t, changes(t, s, []string{"customers|terr:t-9"}, 0, 10))
	assert.Empty(t, changes(t, s, nil, 0, 10))
	chs, err := s.Changes(context.Background(), []string{t1}, 0, a.Seq, 10, 0)
	require.NoError(t, err)
	assert.Equal(t, []seen{{"c-a", 1, false}}, summary(chs), "upto")

	// c-a moves from t-1 to t-2: t-1 sees it gone, t-2 sees it arrive.
	before := c.Seq
	a2 := rec("c-a", 2, []string{t2}, `{"n":1,"moved":true}`)
	put(t, s, a2, 1)
	assert.Equal(t, []seen{{"c-a", 2, true}}, summary(changes(t, s, []string{t1}, before, 10)))
	assert.Equal(t, []seen{{"c-a", 2, false}}, summary(changes(t, s, []string{t2}, before, 10)))
	assert.Equal(t, []seen{{"c-a", 2, false}}, summary(changes(t, s, []string{t1, t2}, before, 10)),
		"held through one token and lost through another: held")

	// Another write to c-a leaves the loss at the seq it happened.
	a3 := rec("c-a", 3, []string{t2}, `{"n":1,"moved":"again"}`)
	put(t, s, a3, 2)
	assert.Empty(t, changes(t, s, []string{t1}, a2.Seq, 10), "an old loss is not repeated")
	assert.Equal(t, []seen{{"c-a", 3, true}}, summary(changes(t, s, []string{t1}, before, 10)),
		"the loss is still there, showing the current record")

	// Back to t-1: held again.
	a4 := rec("c-a", 4, []string{t1}, `{"n":1}`)
	put(t, s, a4, 3)
	assert.Equal(t, []seen{{"c-a", 4, false}}, summary(changes(t, s, []string{t1}, before, 10)))
	assert.Equal(t, []seen{{"c-a", 4, true}}, summary(changes(t, s, []string{t2}, a3.Seq, 10)))

	// Deletes keep their tokens: holders see the tombstone.
	del := rec("c-b", 2, []string{t2}, `null`)
	del.Data, del.Deleted = nil, true
	put(t, s, del, 1)
	chs = changes(t, s, []string{t2}, a4.Seq, 10)
	require.Len(t, chs, 1)
	assert.True(t, chs[0].Record.Deleted)
	assert.False(t, chs[0].Gone)

	wm, err := s.Watermark(context.Background())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, wm, del.Seq, "the watermark covers every committed write")
}

// feed reads the feed after after up to the watermark, limit entries at
// a time, and returns every entry and how many reads it took.
func feed(t *testing.T, s Store, after int64, limit int) ([]sync.FeedEntry, int) {
	t.Helper()
	ctx := context.Background()
	wm, err := s.Watermark(ctx)
	require.NoError(t, err)
	var all []sync.FeedEntry
	reads := 0
	for after < wm {
		entries, through, err := s.Feed(ctx, after, wm, limit)
		require.NoError(t, err)
		require.Greater(t, through, after, "a read makes progress")
		require.LessOrEqual(t, len(entries), limit)
		for _, e := range entries {
			require.Greater(t, e.Seq, after)
			require.LessOrEqual(t, e.Seq, through)
		}
		all = append(all, entries...)
		after = through
		reads++
	}
	return all, reads
}

func entry(seq int64, tokens ...string) sync.FeedEntry {
	return sync.FeedEntry{Seq: seq, Tokens: tokens}
}

func testFeed(t *testing.T, s Store) {
	t1, t2, all := "customers|terr:t-1", "customers|terr:t-2", "customers|all"
	a := rec("c-a", 1, []string{all, t1}, `{"n":1}`)
	b := rec("c-b", 1, []string{all, t2}, `{"n":2}`)
	c := rec("c-c", 1, []string{all, t1, t2}, `{"n":3}`)
	put(t, s, a, 0)
	put(t, s, b, 0)
	put(t, s, c, 0)

	got, _ := feed(t, s, 0, 10)
	assert.Equal(t, []sync.FeedEntry{entry(a.Seq, all, t1), entry(b.Seq, all, t2), entry(c.Seq, all, t1, t2)}, got)
	paged, reads := feed(t, s, 0, 1)
	assert.Equal(t, got, paged, "read a page at a time")
	assert.Equal(t, 3, reads)
	got, _ = feed(t, s, a.Seq, 10)
	assert.Equal(t, []sync.FeedEntry{entry(b.Seq, all, t2), entry(c.Seq, all, t1, t2)}, got, "after")
	entries, through, err := s.Feed(context.Background(), 0, a.Seq, 10)
	require.NoError(t, err)
	assert.Equal(t, []sync.FeedEntry{entry(a.Seq, all, t1)}, entries, "upto")
	assert.Equal(t, a.Seq, through)

	// c-a moves from t-1 to t-2: its entry names the token it lost too.
	a2 := rec("c-a", 2, []string{all, t2}, `{"n":1,"moved":true}`)
	put(t, s, a2, 1)
	got, _ = feed(t, s, c.Seq, 10)
	assert.Equal(t, []sync.FeedEntry{entry(a2.Seq, all, t1, t2)}, got)

	// Another write to c-a: the loss stays where it happened.
	a3 := rec("c-a", 3, []string{all, t2}, `{"n":1,"moved":"again"}`)
	put(t, s, a3, 2)
	got, _ = feed(t, s, c.Seq, 10)
	assert.Equal(t, []sync.FeedEntry{entry(a2.Seq, t1), entry(a3.Seq, all, t2)}, got)
	got, _ = feed(t, s, a2.Seq, 10)
	assert.Equal(t, []sync.FeedEntry{entry(a3.Seq, all, t2)}, got)

	// A deleted record keeps its tokens: their holders hear of it.
	del := rec("c-b", 2, []string{all, t2}, `null`)
	del.Data, del.Deleted = nil, true
	put(t, s, del, 1)
	got, _ = feed(t, s, a3.Seq, 10)
	assert.Equal(t, []sync.FeedEntry{entry(del.Seq, all, t2)}, got)

	got, _ = feed(t, s, del.Seq, 10)
	assert.Empty(t, got, "nothing after the last write")

	whole, _ := feed(t, s, 0, 100)
	for limit := 1; limit <= 3; limit++ {
		paged, _ := feed(t, s, 0, limit)
		assert.Equal(t, whole, paged, "pages of %d", limit)
	}
}

func testAnswers(t *testing.T, s Store) {
	ctx := context.Background()
	a := &sync.Answer{UserID: "u-1", MutationID: "m-1", Body: json.RawMessage(`{"status":"applied","version":1}`), At: at}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.SaveAnswer(ctx, a) }))
	second := *a
	second.Body = json.RawMessage(`{"status":"conflict"}`)
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.SaveAnswer(ctx, &second) }), "saving again is not an error")
	old := &sync.Answer{UserID: "u-1", MutationID: "m-0", Body: json.RawMessage(`{}`), At: at.Add(-40 * 24 * time.Hour)}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.SaveAnswer(ctx, old) }))

	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		got, err := tx.Answers(ctx, "u-1", []string{"m-1", "m-0", "m-none"})
		require.NoError(t, err)
		require.Len(t, got, 2, "the answers there are, and no others")
		assert.JSONEq(t, string(a.Body), string(got["m-1"].Body), "the first answer stays")
		assert.Equal(t, "m-0", got["m-0"].MutationID)
		other, err := tx.Answers(ctx, "u-2", []string{"m-1"})
		require.NoError(t, err)
		assert.Empty(t, other, "answers are per user")
		none, err := tx.Answers(ctx, "u-1", nil)
		require.NoError(t, err)
		assert.Empty(t, none)
		return nil
	}))
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		fresh := &sync.Answer{UserID: "u-1", MutationID: "m-2", Body: json.RawMessage(`{"status":"applied","version":2}`), At: at}
		require.NoError(t, tx.SaveAnswer(ctx, fresh))
		require.NoError(t, tx.SaveAnswer(ctx, &sync.Answer{UserID: "u-1", MutationID: "m-2", Body: json.RawMessage(`{}`), At: at}))
		got, err := tx.Answers(ctx, "u-1", []string{"m-2"})
		require.NoError(t, err)
		require.Contains(t, got, "m-2", "an answer saved in the unit of work is read back in it")
		assert.JSONEq(t, string(fresh.Body), string(got["m-2"].Body), "the first answer stays")
		return nil
	}))

	n, err := s.SweepAnswers(ctx, at.Add(-30*24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		got, err := tx.Answers(ctx, "u-1", []string{"m-0", "m-1", "m-2"})
		require.NoError(t, err)
		assert.NotContains(t, got, "m-0", "swept")
		assert.Contains(t, got, "m-1", "kept")
		assert.Contains(t, got, "m-2", "kept")
		return nil
	}))
}

func testPhotoProofs(t *testing.T, s Store) {
	ctx := context.Background()
	taken, lat, lng := at.Add(-time.Hour), 52.5, 13.4
	hash := strings.Repeat("ab", 32)
	p := &sync.PhotoProof{UserID: "u-1", SHA256: hash, Size: 1234, TakenAt: &taken, Lat: &lat, Lng: &lng, At: at}
	bare := &sync.PhotoProof{UserID: "u-2", SHA256: hash, Size: 1234, At: at}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		_, err := tx.PhotoProof(ctx, "u-1", hash)
		require.ErrorIs(t, err, sync.ErrNotFound, "none yet")
		return errors.Join(tx.SaveProof(ctx, p), tx.SaveProof(ctx, bare))
	}))
	again := *p
	again.Size, again.At = 99, at.Add(time.Hour)
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.SaveProof(ctx, &again) }), "saving again is not an error")

	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		got, err := tx.PhotoProof(ctx, "u-1", hash)
		require.NoError(t, err)
		assert.Equal(t, p, got, "every field comes back; the first proof stays")
		got, err = tx.PhotoProof(ctx, "u-2", hash)
		require.NoError(t, err)
		assert.Equal(t, bare, got, "no EXIF facts")
		_, err = tx.PhotoProof(ctx, "u-3", hash)
		assert.ErrorIs(t, err, sync.ErrNotFound, "proofs are per user")
		_, err = tx.PhotoProof(ctx, "u-1", strings.Repeat("cd", 32))
		assert.ErrorIs(t, err, sync.ErrNotFound, "and per hash")
		return nil
	}))
}

// testNeverSkip is the change-feed invariant: readers that page through
// Changes up to the watermark, while writers keep writing, end with
// exactly the final version of every record.
func testNeverSkip(t *testing.T, s Store) {
	ctx := context.Background()
	const (
		writers = 4
		records = 12
		updates = 15
		readers = 3
	)
	tokens := []string{"customers|all"}
	var wg, rg gosync.WaitGroup
	var done atomic.Bool
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for v := int64(1); v <= updates; v++ {
				for i := range records {
					r := rec(fmt.Sprintf("w%d-r%d", w, i), v, tokens, fmt.Sprintf(`{"v":%d}`, v))
					assert.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, v-1) }))
				}
			}
		}()
	}
	replicas := make([]map[string]int64, readers)
	for i := range readers {
		replicas[i] = map[string]int64{}
		rg.Add(1)
		go func() {
			defer rg.Done()
			var checkpoint int64
			for last := false; !last; {
				last = done.Load() // one more full pass after the writers stop
				for {
					wm, err := s.Watermark(ctx)
					if !assert.NoError(t, err) {
						return
					}
					chs, err := s.Changes(ctx, tokens, checkpoint, wm, 7, 0)
					if !assert.NoError(t, err) {
						return
					}
					for _, ch := range chs {
						if ch.Record.Version > replicas[i][ch.Record.ID] {
							replicas[i][ch.Record.ID] = ch.Record.Version
						}
					}
					if len(chs) < 7 {
						checkpoint = wm
						break
					}
					checkpoint = chs[len(chs)-1].Seq
				}
			}
		}()
	}
	wg.Wait()
	done.Store(true)
	rg.Wait()
	for i, replica := range replicas {
		assert.Lenf(t, replica, writers*records, "reader %d saw every record", i)
		for id, v := range replica {
			assert.Equalf(t, int64(updates), v, "reader %d has the final version of %s", i, id)
		}
	}
}

// testOneWinner: of many concurrent writes from the same version, exactly
// one lands.
func testOneWinner(t *testing.T, s Store) {
	ctx := context.Background()
	put(t, s, rec("c-1", 1, []string{"customers|all"}, `{}`), 0)
	var wins atomic.Int32
	var wg gosync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rec("c-1", 2, []string{"customers|all"}, fmt.Sprintf(`{"writer":%d}`, i))
			err := s.Update(ctx, func(tx sync.RecordTx) error { return tx.Put(ctx, r, 1) })
			if err == nil {
				wins.Add(1)
			} else {
				assert.ErrorIs(t, err, sync.ErrStale)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load())
	got, err := read(t, s, schema.Customers, "c-1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), got.Version)
	assert.True(t, slices.Contains(got.Tokens, "customers|all"))
}

// testWritesSeenInTheirUnit writes records in one unit of work and writes
// some of them again there, as a push does (a visit, then its
// check_out_missing mark), and asks after each write what the engine asks
// within a push: every read of the unit sees the unit's own writes, the
// latest of them only, and the store keeps the last.
func testWritesSeenInTheirUnit(t *testing.T, s Store) {
	ctx := context.Background()
	day := func(d int) time.Time { return time.Date(2026, 11, d, 9, 0, 0, 0, time.UTC) }
	visit := func(id string, version int64, d int, refs ...string) *sync.Record {
		r := rec(id, version, []string{"visits|all"}, fmt.Sprintf(`{"v":%d}`, version))
		r.Collection, r.Refs = schema.Visits, refs
		r.Facts = []sync.Fact{{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Visit: id, At: day(d), Flag: 1}}
		return r
	}
	stored := visit("v-0", 1, 1, "open:u-1")
	put(t, s, stored, 0)

	type stopFinder interface {
		HasStop(ctx context.Context, rep, customer string, at time.Time) (bool, error)
	}
	type creditReader interface {
		OpenOrders(ctx context.Context, customerID string) (map[string]int64, error)
	}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		later := func(after time.Time, except string) bool {
			t.Helper()
			got, err := tx.RepFactAfter(ctx, sync.FactVisit, "u-1", after, except)
			require.NoError(t, err)
			return got
		}
		open := func() []string {
			t.Helper()
			rs, err := tx.RecordsByRef(ctx, schema.Visits, "open:u-1", "", 10)
			require.NoError(t, err)
			var ids []string
			for _, r := range rs {
				ids = append(ids, fmt.Sprintf("%s@%d", r.ID, r.Version))
			}
			return ids
		}
		assert.False(t, later(day(1), ""), "nothing after day 1 yet")
		for d := 2; d <= 4; d++ {
			require.NoError(t, tx.Put(ctx, visit(fmt.Sprintf("v-%d", d), 1, d, "open:u-1"), 0))
		}
		assert.True(t, later(day(3), ""), "v-4, written in this unit")
		assert.False(t, later(day(3), "v-4"), "v-4 left out")
		assert.True(t, later(day(2), "v-4"), "v-3 is later than day 2")
		assert.False(t, later(day(4), ""), "strictly later")

		// v-4 moves back to day 1 and v-3 loses its open ref: their new
		// state is what counts.
		require.NoError(t, tx.Put(ctx, visit("v-4", 2, 1, "open:u-1"), 1))
		require.NoError(t, tx.Put(ctx, visit("v-3", 2, 3), 1))
		assert.True(t, later(day(2), ""), "v-3")
		assert.False(t, later(day(3), ""), "v-4 moved back: its old fact no longer counts")
		assert.False(t, later(day(2), "v-3"), "nor when v-3 is left out")
		r, err := tx.Record(ctx, schema.Visits, "v-4")
		require.NoError(t, err)
		assert.Equal(t, int64(2), r.Version)
		assert.Equal(t, []string{"v-0@1", "v-2@1", "v-4@2"}, open(), "by ref: the unit's writes, as last written")
		// Written again once its refs were read back.
		require.NoError(t, tx.Put(ctx, visit("v-2", 2, 2), 1))
		assert.Equal(t, []string{"v-0@1", "v-4@2"}, open())
		assert.True(t, later(day(1), "v-3"), "v-2")

		if sf, ok := tx.(stopFinder); ok {
			plan := rec("p-1", 1, []string{"route_plans|all"}, `{}`)
			plan.Collection = schema.RoutePlans
			plan.Facts = []sync.Fact{{Kind: sync.FactStop, Rep: "u-1", Customer: "c-2", At: day(5)}}
			require.NoError(t, tx.Put(ctx, plan, 0))
			has, err := sf.HasStop(ctx, "u-1", "c-2", day(5))
			require.NoError(t, err)
			assert.True(t, has, "a stop of a plan written in this unit")
			has, err = sf.HasStop(ctx, "u-1", "c-2", day(6))
			require.NoError(t, err)
			assert.False(t, has, "on another day")
		}
		if cr, ok := tx.(creditReader); ok {
			order := rec("o-1", 1, []string{"orders|all"}, `{}`)
			order.Collection = schema.Orders
			order.Facts = []sync.Fact{{Kind: sync.FactOpenOrder, Rep: "u-1", Customer: "c-1", At: sync.Epoch, Amount: 500}}
			require.NoError(t, tx.Put(ctx, order, 0))
			got, err := cr.OpenOrders(ctx, "c-1")
			require.NoError(t, err)
			assert.Equal(t, map[string]int64{"o-1": 500}, got, "an order written in this unit")
			order = rec("o-1", 2, []string{"orders|all"}, `{}`)
			order.Collection = schema.Orders
			require.NoError(t, tx.Put(ctx, order, 1))
			got, err = cr.OpenOrders(ctx, "c-1")
			require.NoError(t, err)
			assert.Empty(t, got, "no longer open")
		}
		return nil
	}))

	for id, want := range map[string]int64{"v-0": 1, "v-2": 2, "v-3": 2, "v-4": 2} {
		r, err := read(t, s, schema.Visits, id)
		require.NoError(t, err)
		assert.Equal(t, want, r.Version, id)
		assert.JSONEq(t, fmt.Sprintf(`{"v":%d}`, want), string(r.Data), id)
	}
	var open []string
	require.NoError(t, s.View(ctx, func(tx sync.RecordTx) error {
		rs, err := tx.RecordsByRef(ctx, schema.Visits, "open:u-1", "", 10)
		for _, r := range rs {
			open = append(open, r.ID)
		}
		return err
	}))
	assert.Equal(t, []string{"v-0", "v-4"}, open, "refs as last written")
	got := factsOf(t, s, sync.FactVisit, nil, day(1), day(6))
	assert.ElementsMatch(t, []sync.Fact{
		{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Visit: "v-0", At: day(1), Flag: 1},
		{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Visit: "v-2", At: day(2), Flag: 1},
		{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Visit: "v-3", At: day(3), Flag: 1},
		{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Visit: "v-4", At: day(1), Flag: 1},
	}, got, "facts as last written, once each")
	chs := changes(t, s, []string{"visits|all"}, 0, 100)
	seen := map[string]int{}
	for _, ch := range chs {
		seen[ch.Record.ID]++
	}
	assert.Equal(t, map[string]int{"v-0": 1, "v-2": 1, "v-3": 1, "v-4": 1}, seen, "one feed entry a record")
}
