package sqlitestore

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/sync/report"
)

// seedCoverageFacts writes the report facts of a month (November 2026)
// for territories t-0 … t-(n-1), each with 5 reps who plan 10 stops and
// make 8 visits a day, an order on every fourth visit: 3,000 facts a
// territory, written straight into the facts table (the records they
// belong to play no part in the count).
func seedCoverageFacts(b *testing.B, s *Store, territories int) {
	b.Helper()
	_, err := s.w.Exec(`
		WITH RECURSIVE
		t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i + 1 < ?1),
		r(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM r WHERE j < 4),
		d(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM d WHERE k < 29),
		c(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM c WHERE m < 9),
		calls AS (SELECT i, j, k, m, 'v-' || i || '-' || j || '-' || k || '-' || m AS visit,
			?2 + k * 86400000000000 AS day, ?2 + k * 86400000000000 + (8 + m) * 3600000000000 AS at
			FROM t, r, d, c)
		INSERT INTO facts (rec, n, kind, rep, customer, territory, visit, label, grade, day, at, flag)
		SELECT row_number() OVER (), 0, kind, rep, customer, territory, visit, '', '', day, at, flag FROM (
			SELECT 'stop' AS kind, 'r-' || i || '-' || j AS rep, 'c-' || i || '-' || (j * 10 + m) AS customer, 't-' || i AS territory,
				'' AS visit, date(day / 1000000000, 'unixepoch') AS day, day AS at, 0 AS flag FROM calls
			UNION ALL
			SELECT 'visit', 'r-' || i || '-' || j, 'c-' || i || '-' || (j * 10 + m), 't-' || i, visit, '', at, 1 FROM calls WHERE m < 8
			UNION ALL
			SELECT 'order', 'r-' || i || '-' || j, 'c-' || i || '-' || (j * 10 + m), 't-' || i, visit, '', at, 1 FROM calls WHERE m < 8 AND m % 4 = 0)`,
		territories, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	require.NoError(b, err)
}

// BenchmarkTerritoryCoverage times the month's coverage report of one
// territory (t-0) in a store of 2 territories and in one of 200, with the
// territory index of the layout before this one, (kind, territory, at),
// with which SQLite reads the month of every territory through
// facts_by_time, and with today's, which covers the count:
//
//	go test -run '^$' -bench TerritoryCoverage -benchtime 20x ./sync/sqlitestore/
func BenchmarkTerritoryCoverage(b *testing.B) {
	ctx := context.Background()
	indexes := []struct{ name, columns string }{
		{"narrow index", "kind, territory, at"},
		{"covering index", "kind, territory, at, rep, customer, day, visit, flag"},
	}
	var days []report.Day
	for d := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC); d.Month() == time.November; d = d.AddDate(0, 0, 1) {
		days = append(days, report.Day{Date: d.Format("2006-01-02"), Start: d, End: d.AddDate(0, 0, 1)})
	}
	offset := 0
	q := report.CoverageQuery{Territories: []string{"t-0"}, Days: days, Offset: &offset}
	for _, territories := range []int{2, 200} {
		s, err := Open(ctx, filepath.Join(b.TempDir(), "fieldsync.db"))
		require.NoError(b, err)
		seedCoverageFacts(b, s, territories)
		for _, ix := range indexes {
			b.Run(fmt.Sprintf("%d territories, %s", territories, ix.name), func(b *testing.B) {
				_, err := s.w.Exec("DROP INDEX facts_by_territory; CREATE INDEX facts_by_territory ON facts(" + ix.columns + ")")
				require.NoError(b, err)
				b.ResetTimer()
				for range b.N {
					reps, err := s.CoverageCounts(ctx, q)
					require.NoError(b, err)
					require.Len(b, reps, 5)
					require.Equal(b, 300, reps[0].Planned)
				}
			})
		}
		require.NoError(b, s.Close())
	}
}
