package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/sync"
)

// sizer is what the store-size command asks of a store.
type sizer interface {
	Sizes(ctx context.Context) ([]sync.TableSize, error)
}

func sizeOf(t *testing.T, s sizer, name string) sync.TableSize {
	t.Helper()
	sizes, err := s.Sizes(context.Background())
	require.NoError(t, err)
	for _, ts := range sizes {
		if ts.Name == name {
			return ts
		}
	}
	require.Failf(t, "no size", "Sizes has no entry %q: %+v", name, sizes)
	return sync.TableSize{}
}

func testSizes(t *testing.T, st Store) {
	s, ok := st.(sizer)
	require.True(t, ok, "%T has no Sizes method", st)
	before := sizeOf(t, s, "records")
	assert.Equal(t, sync.SizeTable, before.Kind)
	assert.Equal(t, int64(0), before.Rows, "a new store has no records")

	const n = 300
	body := strings.Repeat("x", 900)
	for i := range n {
		put(t, st, rec(fmt.Sprintf("c-%03d", i), 1, []string{"customers|all"}, fmt.Sprintf(`{"name":%q}`, body)), 0)
	}

	after := sizeOf(t, s, "records")
	assert.Equal(t, int64(n), after.Rows, "rows of records")
	assert.Greater(t, after.Bytes, before.Bytes+n*900, "records hold at least the data written")
	sizes, err := s.Sizes(context.Background())
	require.NoError(t, err)
	var indexes int
	for _, ts := range sizes {
		assert.Contains(t, []string{sync.SizeTable, sync.SizeIndex, sync.SizeFree}, ts.Kind, ts.Name)
		assert.GreaterOrEqual(t, ts.Bytes, int64(0), ts.Name)
		if ts.Kind == sync.SizeIndex && ts.Table == "records" {
			indexes++
			assert.Equal(t, int64(n), ts.Rows, "an index has the rows of its table: %s", ts.Name)
		}
	}
	assert.Positive(t, indexes, "the records are indexed: %+v", sizes)
}
