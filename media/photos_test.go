package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
)

func TestSweepOrphans(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blobs, err := filestore.Open(dir)
	require.NoError(t, err)
	p := media.NewPhotos(blobs, 1<<20)
	put := func(body string, age time.Duration) string {
		b := append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, make([]byte, 100)...)
		b = append(b, body...)
		h := sha256.Sum256(b)
		sum := hex.EncodeToString(h[:])
		created, err := p.Put(ctx, sum, "image/jpeg", int64(len(b)), bytes.NewReader(b))
		require.NoError(t, err)
		require.True(t, created)
		old := time.Now().Add(-age)
		require.NoError(t, os.Chtimes(filepath.Join(dir, media.Key(sum)), old, old))
		return sum
	}
	exists := func(sum string) bool {
		_, ok, err := p.Exists(ctx, sum)
		require.NoError(t, err)
		return ok
	}
	oldOrphan := put("old orphan", 8*24*time.Hour)
	oldKept := put("old, named by a record", 30*24*time.Hour)
	young := put("young orphan", time.Hour)
	referenced := func(_ context.Context, sum string) (bool, error) { return sum == oldKept, nil }

	n, err := p.SweepOrphans(ctx, 7*24*time.Hour, referenced)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.False(t, exists(oldOrphan), "an orphan past the grace period goes")
	assert.True(t, exists(oldKept), "bytes a record names stay")
	assert.True(t, exists(young), "an orphan within the grace period stays")

	failing := func(context.Context, string) (bool, error) { return false, errors.New("store down") }
	_, err = p.SweepOrphans(ctx, time.Minute, failing)
	assert.Error(t, err)
	assert.True(t, exists(young), "nothing goes when the records cannot be asked")
}
