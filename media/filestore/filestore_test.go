package filestore

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/blobtest"
)

// newStore opens a Store in a fresh temp dir and checks, when the test ends,
// that no temporary file was left behind.
func newStore(t *testing.T) media.BlobStore {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "blobs")
	s, err := Open(dir)
	require.NoError(t, err)
	t.Cleanup(func() {
		left, err := os.ReadDir(filepath.Join(dir, tmpDirName))
		assert.NoError(t, err)
		assert.Empty(t, left, "temporary files left in %s", tmpDirName)
	})
	return s
}

func TestBlobStore(t *testing.T) {
	blobtest.TestBlobStore(t, newStore)
}

func TestInvalidKeyDoesNotEscape(t *testing.T) {
	parent := t.TempDir()
	s, err := Open(filepath.Join(parent, "blobs"))
	require.NoError(t, err)
	for _, key := range []string{"../escape", "a/../../escape", "/escape"} {
		err := s.Put(t.Context(), key, bytes.NewReader([]byte("x")), 1, "")
		assert.ErrorIs(t, err, media.ErrInvalidKey, "Put %q", key)
	}
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "blobs", entries[0].Name())
	_, err = os.Stat("/escape")
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestObjectFileLayout(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	require.NoError(t, err)
	key := media.Key("ab" + string(bytes.Repeat([]byte("0"), 62)))
	require.NoError(t, s.Put(t.Context(), key, bytes.NewReader([]byte("jpeg bytes")), 10, "image/jpeg"))

	raw, err := os.ReadFile(filepath.Join(dir, "photos", "ab", "00", "ab"+string(bytes.Repeat([]byte("0"), 62))))
	require.NoError(t, err)
	require.Len(t, raw, headerSize+10)
	assert.Equal(t, "fieldsync-blob 1\nimage/jpeg\n", string(bytes.TrimRight(raw[:headerSize], " \n"))+"\n")
	assert.Equal(t, "jpeg bytes", string(raw[headerSize:]))
}
