package sqlitestore

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// WrittenSince finds the records of a collection written after a seq,
// re-stamps included, through the feed rows' seq index and the records'
// key, never by reading the whole collection.
func TestWrittenSince(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	put := func(c schema.Collection, id string, prev int64, tokens ...string) {
		t.Helper()
		require.NoError(t, s.Update(ctx, func(tx sync.RecordTx) error {
			return tx.Put(ctx, &sync.Record{Collection: c, ID: id, Version: max(prev, 1), UpdatedAt: time.Unix(0, 1).UTC(), UpdatedBy: "u-1",
				Data: json.RawMessage(`{}`), Tokens: append([]string{string(c) + "|all"}, tokens...)}, prev)
		}))
	}
	put(schema.Orders, "o-1", 0)
	put(schema.Orders, "o-2", 0)
	var seq int64
	require.NoError(t, s.View(ctx, func(u sync.RecordTx) error {
		var err error
		seq, err = u.(*tx).FeedSeq(ctx)
		return err
	}))
	put(schema.Orders, "o-3", 0)
	put(schema.Visits, "v-1", 0)
	put(schema.Orders, "o-1", 1, "orders|terr:t-2") // a re-stamp: same version, new seq
	var ids []string
	require.NoError(t, s.View(ctx, func(u sync.RecordTx) error {
		since, err := u.(*tx).WrittenSince(ctx, schema.Orders, seq)
		for _, r := range since {
			ids = append(ids, r.ID)
		}
		return err
	}))
	assert.Equal(t, []string{"o-3", "o-1"}, ids, "in seq order, the visit left out")

	all := queryPlan(t, s, writtenSinceQuery, seq, string(schema.Orders))
	assert.Contains(t, all, "USING COVERING INDEX record_tokens_seq (seq>?)", all)
	assert.Contains(t, all, "SEARCH r USING INTEGER PRIMARY KEY (rowid=?)", all)
}
