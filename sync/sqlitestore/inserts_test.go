package sqlitestore

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// TestCreatedRecordsStoredOnce writes new visits in one unit of work and
// each again there (the check_out_missing mark the next check-in of a push
// gives the visit before it): each is stored once, in its last state, with
// no row of the records, facts or refs tables changed after its insert.
func TestCreatedRecordsStoredOnce(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "fieldsync.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	_, err = s.w.ExecContext(ctx, `CREATE TABLE rewrites (tbl TEXT);
		CREATE TRIGGER records_rewritten AFTER UPDATE ON records BEGIN INSERT INTO rewrites VALUES ('records'); END;
		CREATE TRIGGER facts_dropped AFTER DELETE ON facts BEGIN INSERT INTO rewrites VALUES ('facts'); END;
		CREATE TRIGGER refs_dropped AFTER DELETE ON record_refs BEGIN INSERT INTO rewrites VALUES ('record_refs'); END;`)
	require.NoError(t, err)

	checkIn := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	visit := func(i int, version int64, marked bool) *sync.Record {
		data, refs, facts := fmt.Sprintf(`{"n":%d}`, i), []string{"customer:c-1", "open:u-1"}, []sync.Fact{
			{Kind: sync.FactVisit, Rep: "u-1", Customer: "c-1", Visit: fmt.Sprintf("v-%d", i), At: checkIn.Add(time.Duration(i) * time.Hour)}}
		if marked {
			data, refs, facts[0].Flag = fmt.Sprintf(`{"n":%d,"check_out_missing":true}`, i), refs[:1], 1
		}
		return &sync.Record{Collection: schema.Visits, ID: fmt.Sprintf("v-%d", i), Version: version, UpdatedAt: checkIn, UpdatedBy: "u-1",
			Data: json.RawMessage(data), Tokens: []string{"visits|own:u-1"}, Refs: refs, Facts: facts,
			History: []sync.Revision{{Version: version, MutationID: fmt.Sprintf("m-%d-%d", i, version), UserID: "u-1"}}}
	}
	require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
		for i := range 3 {
			if err := tx.Put(ctx, visit(i, 1, false), 0); err != nil {
				return err
			}
			if i > 0 {
				if err := tx.Put(ctx, visit(i-1, 2, true), 1); err != nil {
					return err
				}
			}
		}
		return nil
	}))

	var rewrites []string
	rows, err := s.r.QueryContext(ctx, "SELECT tbl FROM rewrites")
	require.NoError(t, err)
	for rows.Next() {
		var tbl string
		require.NoError(t, rows.Scan(&tbl))
		rewrites = append(rewrites, tbl)
	}
	require.NoError(t, rows.Err())
	assert.Empty(t, rewrites, "rows changed after their insert")

	for i, want := range []struct {
		version int64
		data    string
		flag    int
		refs    string
	}{{2, `{"n":0,"check_out_missing":true}`, 1, "customer:c-1"}, {2, `{"n":1,"check_out_missing":true}`, 1, "customer:c-1"},
		{1, `{"n":2}`, 0, "customer:c-1,open:u-1"}} {
		var (
			version    int64
			data, refs string
			flag       int
		)
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT r.version, r.data, f.flag,
			(SELECT group_concat(ref, ',') FROM (SELECT ref FROM record_refs WHERE coll = 'visits' AND id = r.id ORDER BY ref))
			FROM records r JOIN facts f ON f.rec = r.rec WHERE r.coll = 'visits' AND r.id = ?`, fmt.Sprintf("v-%d", i)).
			Scan(&version, &data, &flag, &refs))
		assert.Equal(t, want.version, version, "v-%d", i)
		assert.JSONEq(t, want.data, data, "v-%d", i)
		assert.Equal(t, want.flag, flag, "v-%d", i)
		assert.Equal(t, want.refs, refs, "v-%d", i)
	}
}
