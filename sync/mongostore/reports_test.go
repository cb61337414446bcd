package mongostore

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// visitFact is a visit fact of customer c-1 in territory at day d.
func visitFact(territory string, d int) sync.Fact {
	return sync.Fact{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Territory: territory, Visit: "v-1",
		At: time.Date(2026, 11, d, 9, 0, 0, 0, time.UTC), Flag: 1}
}

func withFacts(r *sync.Record, facts ...sync.Fact) *sync.Record {
	r.Facts = facts
	return r
}

// allVisits is every visit fact of November 2026 in t1 and t2.
func allVisits(t *testing.T, s *Store) []sync.Fact {
	t.Helper()
	got, err := s.Facts(context.Background(), sync.FactVisit, []string{"t1", "t2"},
		time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	return got
}

func factEntries(t *testing.T, s *Store) int64 {
	t.Helper()
	n, err := s.facts.CountDocuments(context.Background(), bson.M{})
	require.NoError(t, err)
	return n
}

func TestFactsRoundTrip(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		facts []sync.Fact
	}{
		{"nil", nil},
		{"empty", []sync.Fact{}},
		{"some", []sync.Fact{visitFact("t1", 2), {Kind: sync.FactCustomer, Customer: "c-1", At: sync.Epoch, Flag: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			put(t, s, withFacts(record("c-"+tc.name, 1, "t1"), tc.facts...), 0)
			var got *sync.Record
			require.NoError(t, s.View(ctx, func(tx sync.RecordTx) (err error) {
				got, err = tx.Record(ctx, schema.Customers, "c-"+tc.name)
				return err
			}))
			assert.Equal(t, tc.facts, got.Facts)
		})
	}
}

func TestStaleWriteLeavesNoFactEntries(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	a := withFacts(record("c-a", 1, "t1"), visitFact("t1", 2))
	put(t, s, a, 0)
	seq, err := s.takeSeq(ctx)
	require.NoError(t, err)
	// Another writer gets version 2 in first.
	put(t, s, withFacts(record("c-a", 2, "t1"), visitFact("t1", 3)), 1)
	err = s.writeAt(ctx, withFacts(record("c-a", 2, "t2"), visitFact("t2", 4)),
		prior{version: 1, seq: a.Seq, tokens: a.Tokens, facts: newFactDocs(a.Facts)}, seq)
	assert.ErrorIs(t, err, sync.ErrStale)
	assert.Equal(t, []sync.Fact{visitFact("t1", 3)}, allVisits(t, s))
	assert.Equal(t, int64(1), factEntries(t, s), "only the winner's entry is left")
}

func TestLeftoverEntriesAreNotReported(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	put(t, s, withFacts(record("c-a", 1, "t1"), visitFact("t1", 2)), 0)
	// A writer indexes later facts for c-a and dies before writing the
	// record; another indexes facts of a record it never writes.
	require.NoError(t, s.indexFacts(ctx, newRecordDoc(withFacts(record("c-a", 2, "t2"), visitFact("t2", 9)), 0), 99))
	require.NoError(t, s.indexFacts(ctx, newRecordDoc(withFacts(record("c-b", 1, "t1"), visitFact("t1", 8)), 0), 98))

	assert.Equal(t, []sync.Fact{visitFact("t1", 2)}, allVisits(t, s))
	latest, err := s.LatestFact(ctx, sync.FactVisit, "c-1")
	require.NoError(t, err)
	assert.Equal(t, visitFact("t1", 2), *latest, "entries of facts no record holds are passed over")
}

func TestUnchangedFactsKeepTheirEntries(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	a := withFacts(record("c-a", 1, "t1"), visitFact("t1", 2))
	put(t, s, a, 0)
	put(t, s, withFacts(record("c-a", 2, "t1", "t2"), visitFact("t1", 2)), 1)
	s.unindexFacts(ctx, recordKey(schema.Customers, "c-a"), a.Seq) // the first write's clean-up, late
	assert.Equal(t, []sync.Fact{visitFact("t1", 2)}, allVisits(t, s))
	assert.Equal(t, int64(1), factEntries(t, s))

	put(t, s, withFacts(record("c-a", 3, "t1"), visitFact("t2", 5)), 2)
	assert.Equal(t, []sync.Fact{visitFact("t2", 5)}, allVisits(t, s))
	assert.Equal(t, int64(1), factEntries(t, s), "changed facts replace the entries")
	put(t, s, withFacts(record("c-a", 4, "t1")), 3)
	assert.Empty(t, allVisits(t, s))
	assert.Zero(t, factEntries(t, s))
	_, err := s.LatestFact(ctx, sync.FactVisit, "c-1")
	assert.ErrorIs(t, err, sync.ErrNotFound)
}

func TestRestampedWriteKeepsItsFacts(t *testing.T) {
	s, clock := leaseStore(t)
	ctx := context.Background()
	a := withFacts(record("c-a", 1, "t1"), visitFact("t1", 2))
	put(t, s, a, 0)
	seq, _ := abandonedSeq(t, s, clock)
	require.NoError(t, s.writeAt(ctx, withFacts(record("c-a", 2, "t1"), visitFact("t2", 3)),
		prior{version: 1, seq: a.Seq, tokens: a.Tokens, facts: newFactDocs(a.Facts)}, seq))
	restamped, err := s.finish(ctx, seq)
	require.NoError(t, err)
	require.Greater(t, restamped, seq)
	assert.Equal(t, []sync.Fact{visitFact("t2", 3)}, allVisits(t, s))
}

func TestOnlyMatchingFactsOfARecordAreReported(t *testing.T) {
	s := MustOpen(t)
	ctx := context.Background()
	order := sync.Fact{Kind: sync.FactOrder, Customer: "c-1", Territory: "t1", At: visitFact("t1", 2).At, Flag: 1}
	put(t, s, withFacts(record("rp-1", 1, "t1"), visitFact("t1", 2), visitFact("t2", 3), order), 0)

	got, err := s.Facts(ctx, sync.FactVisit, []string{"t1"}, visitFact("", 1).At, visitFact("", 9).At)
	require.NoError(t, err)
	assert.Equal(t, []sync.Fact{visitFact("t1", 2)}, got, "by territory")
	got, err = s.Facts(ctx, sync.FactVisit, nil, visitFact("", 3).At, visitFact("", 9).At)
	require.NoError(t, err)
	assert.Equal(t, []sync.Fact{visitFact("t2", 3)}, got, "by time")
	got, err = s.Facts(ctx, sync.FactOrder, nil, visitFact("", 1).At, visitFact("", 9).At)
	require.NoError(t, err)
	assert.Equal(t, []sync.Fact{order}, got, "by kind")
	latest, err := s.LatestFact(ctx, sync.FactVisit, "c-1")
	require.NoError(t, err)
	assert.Equal(t, visitFact("t2", 3), *latest)
}
