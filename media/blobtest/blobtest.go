// Package blobtest is the conformance suite for media.BlobStore: every
// adapter's tests run TestBlobStore against a real instance of its backend.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
)

// Body sizes: small goes in one request everywhere; large is above 16 MiB, so
// an S3 client splits it into parts, and a multiple of 8 MiB, so that a
// failure right at its end falls on a part boundary too.
const (
	smallSize = 70_000
	largeSize = 24 << 20
	boundary  = 16 << 20 // a part boundary for 8 and 16 MiB parts
)

// errReader is the error a failing test reader returns.
var errReader = errors.New("blobtest: reader failed")

// TestBlobStore runs the conformance suite for media.BlobStore as named
// subtests of t. newStore returns a new, empty store; it is called once for
// every subtest that needs a store, with that subtest's t, and should
// register the store's cleanup there.
func TestBlobStore(t *testing.T, newStore func(t *testing.T) media.BlobStore) {
	t.Run("round trip", func(t *testing.T) { testRoundTrip(t, newStore) })
	t.Run("put twice", func(t *testing.T) { testPutTwice(t, newStore(t)) })
	t.Run("missing key", func(t *testing.T) { testMissing(t, newStore(t)) })
	t.Run("delete then stat", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("delete missing", func(t *testing.T) {
		require.NoError(t, newStore(t).Delete(t.Context(), "photos/never/stored"))
	})
	t.Run("failed put leaves nothing", func(t *testing.T) { testFailedPut(t, newStore) })
	t.Run("concurrent puts of same key", func(t *testing.T) { testConcurrentPut(t, newStore(t)) })
	t.Run("list", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("list stops at first error", func(t *testing.T) { testListStops(t, newStore(t)) })
	t.Run("invalid keys", func(t *testing.T) { testInvalidKeys(t, newStore(t)) })
	t.Run("invalid content type", func(t *testing.T) { testInvalidContentType(t, newStore(t)) })
	t.Run("ping", func(t *testing.T) { require.NoError(t, newStore(t).Ping(t.Context())) })
}

func testRoundTrip(t *testing.T, newStore func(t *testing.T) media.BlobStore) {
	tests := []struct {
		name        string
		data        []byte
		size        int64 // -1: declare size unknown
		contentType string
		want        string // content type Stat should report
	}{
		{"known size", body(smallSize, 1), smallSize, "image/jpeg", "image/jpeg"},
		{"unknown size", body(smallSize, 2), -1, "image/png", "image/png"},
		{"empty", nil, 0, "image/jpeg", "image/jpeg"},
		{"empty unknown size", nil, -1, "image/jpeg", "image/jpeg"},
		{"large known size", body(largeSize, 3), largeSize, "image/heic", "image/heic"},
		{"large unknown size", body(largeSize, 4), -1, "image/heic", "image/heic"},
		{"default content type", body(100, 5), 100, "", media.DefaultContentType},
		{"content type with parameters", body(100, 6), 100, "text/plain; charset=utf-8", "text/plain; charset=utf-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			key := media.Key(digest(tc.data))
			start := time.Now()
			require.NoError(t, s.Put(t.Context(), key, bytes.NewReader(tc.data), tc.size, tc.contentType))
			info := assertObject(t, s, key, tc.data, tc.want)
			assert.WithinRange(t, info.ModTime, start.Add(-time.Minute), time.Now().Add(time.Minute),
				"ModTime should be about now")
		})
	}
}

func testPutTwice(t *testing.T, s media.BlobStore) {
	key := "photos/twice"
	first, second := body(smallSize, 10), body(smallSize/2, 11)

	putBytes(t, s, key, first, "image/jpeg")
	putBytes(t, s, key, first, "image/jpeg")
	assertObject(t, s, key, first, "image/jpeg")

	putBytes(t, s, key, second, "image/png")
	assertObject(t, s, key, second, "image/png")
	assert.Equal(t, []string{key}, listKeys(t, s, ""))
}

func testMissing(t *testing.T, s media.BlobStore) {
	putBytes(t, s, "photos/other", body(10, 1), "image/jpeg")
	assertAbsent(t, s, "photos/missing")
	assertAbsent(t, s, "photos/other/below") // below an existing object
	assertAbsent(t, s, "nothing/here/at/all")
}

func testDelete(t *testing.T, s media.BlobStore) {
	putBytes(t, s, "photos/a", body(100, 1), "image/jpeg")
	putBytes(t, s, "photos/b", body(100, 2), "image/jpeg")
	require.NoError(t, s.Delete(t.Context(), "photos/a"))
	assertAbsent(t, s, "photos/a")
	require.NoError(t, s.Delete(t.Context(), "photos/a"), "deleting twice")
	assertObject(t, s, "photos/b", body(100, 2), "image/jpeg")
	assert.Equal(t, []string{"photos/b"}, listKeys(t, s, ""))
}

// failedPut is a Put that must fail and store nothing.
type failedPut struct {
	name    string
	data    []byte
	reader  func(data []byte) io.Reader
	size    int64
	wantErr error // what the error must wrap
}

func testFailedPut(t *testing.T, newStore func(t *testing.T) media.BlobStore) {
	small, large := body(smallSize, 20), body(largeSize, 21)
	whole := func(data []byte) io.Reader { return bytes.NewReader(data) }
	tests := []failedPut{
		{"small, reader fails half way", small, failAfter(smallSize/2, errReader), smallSize, errReader},
		{"small, reader fails half way, size unknown", small, failAfter(smallSize/2, errReader), -1, errReader},
		{"small, reader fails at once", small, failAfter(0, errReader), smallSize, errReader},
		{"small, reader fails instead of EOF", small, failAfter(smallSize, errReader), smallSize, errReader},
		{"small, reader fails instead of EOF, size unknown", small, failAfter(smallSize, errReader), -1, errReader},
		{"small, last bytes come with an error", small, withLastBytes(failAfter(smallSize, errReader)), smallSize, errReader},
		{"small, reader shorter than size", small, failAfter(smallSize-1, io.EOF), smallSize, media.ErrSizeMismatch},
		{"small, reader longer than size", small, whole, smallSize - 1, media.ErrSizeMismatch},
		{"large, reader fails half way", large, failAfter(largeSize/2, errReader), largeSize, errReader},
		{"large, reader fails half way, size unknown", large, failAfter(largeSize/2, errReader), -1, errReader},
		// A client that hangs up mid-upload: net/http's body then fails
		// with io.ErrUnexpectedEOF, here right at a part boundary.
		{"large, body cut at part boundary", large, failAfter(boundary, io.ErrUnexpectedEOF), largeSize, io.ErrUnexpectedEOF},
		{"large, body cut at part boundary, size unknown", large, failAfter(boundary, io.ErrUnexpectedEOF), -1, io.ErrUnexpectedEOF},
		{"large, reader fails instead of EOF", large, failAfter(largeSize, errReader), largeSize, errReader},
		{"large, last bytes come with an error", large, withLastBytes(failAfter(largeSize, errReader)), largeSize, errReader},
		{"large, reader fails instead of EOF, size unknown", large, failAfter(largeSize, errReader), -1, errReader},
		{"large, reader shorter than size", large, failAfter(boundary, io.EOF), largeSize, media.ErrSizeMismatch},
		{"large, reader longer than size", large, whole, boundary, media.ErrSizeMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			old := body(1000, 22)
			putBytes(t, s, "photos/existing", old, "image/png")

			for _, key := range []string{"photos/existing", "photos/fresh"} {
				err := s.Put(t.Context(), key, tc.reader(tc.data), tc.size, "image/jpeg")
				require.Error(t, err, "Put %s should fail", key)
				assert.ErrorIs(t, err, tc.wantErr, "Put %s", key)
			}
			assertObject(t, s, "photos/existing", old, "image/png")
			assertAbsent(t, s, "photos/fresh")
			assert.Equal(t, []string{"photos/existing"}, listKeys(t, s, ""))
		})
	}

	t.Run("context cancelled half way", func(t *testing.T) {
		s := newStore(t)
		data := body(smallSize, 23)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		r := io.MultiReader(bytes.NewReader(data[:smallSize/2]), cancelReader(cancel), bytes.NewReader(data[smallSize/2:]))
		err := s.Put(ctx, "photos/cancelled", r, smallSize, "image/jpeg")
		require.Error(t, err)
		assert.ErrorIs(t, err, context.Canceled)
		assertAbsent(t, s, "photos/cancelled")
	})
}

func testConcurrentPut(t *testing.T, s media.BlobStore) {
	const writers = 4
	key, data := "photos/concurrent", body(smallSize, 30)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			errs[i] = s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), "image/jpeg")
		})
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "writer %d", i)
	}
	assertObject(t, s, key, data, "image/jpeg")
	assert.Equal(t, []string{key}, listKeys(t, s, ""))
}

func testList(t *testing.T, s media.BlobStore) {
	// Put in no particular order. Key order is byte order, in which
	// "-" < "." < "/" < "0": a file-system walk in name order gets
	// "photos/a.b" and "photos/a/b" the wrong way round.
	keys := []string{"photos/ab/cd/x", "photos/a0", "other/x", "photos/a/b", "photos/a.b", "photos/a-c", "photos/a/b2"}
	for i, key := range keys {
		putBytes(t, s, key, body(10+i, byte(i)), "image/jpeg")
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"other/x", "photos/a-c", "photos/a.b", "photos/a/b", "photos/a/b2", "photos/a0", "photos/ab/cd/x"}},
		{"photos/", []string{"photos/a-c", "photos/a.b", "photos/a/b", "photos/a/b2", "photos/a0", "photos/ab/cd/x"}},
		{"photos/a/", []string{"photos/a/b", "photos/a/b2"}},
		{"photos/a/b", []string{"photos/a/b", "photos/a/b2"}},
		{"photos/a/b2", []string{"photos/a/b2"}},
		{"photos/ab", []string{"photos/ab/cd/x"}},
		{"photos/ab/cd/x/", nil},
		{"none/", nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("prefix %q", tc.prefix), func(t *testing.T) {
			var got []string
			require.NoError(t, s.List(t.Context(), tc.prefix, func(info media.BlobInfo) error {
				got = append(got, info.Key)
				assert.Equal(t, int64(10+slices.Index(keys, info.Key)), info.Size, "size of %s", info.Key)
				assert.False(t, info.ModTime.IsZero(), "ModTime of %s", info.Key)
				return nil
			}))
			assert.Equal(t, tc.want, got)
		})
	}
}

func testListStops(t *testing.T, s media.BlobStore) {
	for _, key := range []string{"photos/1", "photos/2", "photos/3"} {
		putBytes(t, s, key, body(10, 1), "image/jpeg")
	}
	errStop := errors.New("blobtest: stop")
	var got []string
	err := s.List(t.Context(), "photos/", func(info media.BlobInfo) error {
		got = append(got, info.Key)
		if len(got) == 2 {
			return errStop
		}
		return nil
	})
	assert.ErrorIs(t, err, errStop)
	assert.Equal(t, []string{"photos/1", "photos/2"}, got)
}

func testInvalidKeys(t *testing.T, s media.BlobStore) {
	ctx := t.Context()
	for _, key := range []string{
		"../x", "/abs", "a//b", "A B", "", "a/", "a/../b", "a/./b", "..", ".tmp/x", "x/.hidden",
		"a\\b", "photos/ab\x00", "ünï", string(bytes.Repeat([]byte("a"), 1025)),
	} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			assert.ErrorIs(t, s.Put(ctx, key, bytes.NewReader([]byte("x")), 1, "image/jpeg"), media.ErrInvalidKey, "Put")
			_, err := s.Stat(ctx, key)
			assert.ErrorIs(t, err, media.ErrInvalidKey, "Stat")
			_, _, err = s.Open(ctx, key)
			assert.ErrorIs(t, err, media.ErrInvalidKey, "Open")
			assert.ErrorIs(t, s.Delete(ctx, key), media.ErrInvalidKey, "Delete")
		})
	}
	for _, prefix := range []string{"../", "/abs", "A", "a//"} {
		err := s.List(ctx, prefix, func(media.BlobInfo) error { return nil })
		assert.ErrorIs(t, err, media.ErrInvalidKey, "List %q", prefix)
	}
	assert.Empty(t, listKeys(t, s, ""), "nothing stored")
}

func testInvalidContentType(t *testing.T, s media.BlobStore) {
	for _, ct := range []string{"image/jpeg\r\nX-Injected: 1", "image/\x00", string(bytes.Repeat([]byte("a"), 201))} {
		err := s.Put(t.Context(), "photos/x", bytes.NewReader([]byte("x")), 1, ct)
		assert.ErrorIs(t, err, media.ErrInvalidContentType, "content type %q", ct)
	}
	assertAbsent(t, s, "photos/x")
}

// putBytes stores data under key, failing the test if it cannot.
func putBytes(t *testing.T, s media.BlobStore, key string, data []byte, contentType string) {
	t.Helper()
	require.NoError(t, s.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), contentType), "Put %s", key)
}

// assertObject checks that Stat and Open agree that key holds data with
// contentType, and returns Stat's info.
func assertObject(t *testing.T, s media.BlobStore, key string, data []byte, contentType string) media.BlobInfo {
	t.Helper()
	info, err := s.Stat(t.Context(), key)
	require.NoError(t, err, "Stat %s", key)
	assert.Equal(t, key, info.Key, "Stat key")
	assert.Equal(t, int64(len(data)), info.Size, "Stat size")
	assert.Equal(t, contentType, info.ContentType, "Stat content type")

	rc, openInfo, err := s.Open(t.Context(), key)
	require.NoError(t, err, "Open %s", key)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	require.NoError(t, err, "reading %s", key)
	assert.Equal(t, digest(data), digest(got), "bytes of %s (%d bytes, want %d)", key, len(got), len(data))
	assert.Equal(t, info.Key, openInfo.Key, "Open key")
	assert.Equal(t, info.Size, openInfo.Size, "Open size")
	assert.Equal(t, info.ContentType, openInfo.ContentType, "Open content type")
	assert.WithinDuration(t, info.ModTime, openInfo.ModTime, time.Second, "Open ModTime")
	return info
}

// assertAbsent checks that nothing is stored or listed under key.
func assertAbsent(t *testing.T, s media.BlobStore, key string) {
	t.Helper()
	_, err := s.Stat(t.Context(), key)
	assert.ErrorIs(t, err, media.ErrNotExist, "Stat %s", key)
	rc, _, err := s.Open(t.Context(), key)
	if assert.ErrorIs(t, err, media.ErrNotExist, "Open %s", key) {
		assert.Nil(t, rc, "Open %s returned a reader with its error", key)
	} else if rc != nil {
		rc.Close()
	}
	assert.Empty(t, listKeys(t, s, key), "List %s", key)
}

// listKeys returns the keys List reports under prefix.
func listKeys(t *testing.T, s media.BlobStore, prefix string) []string {
	t.Helper()
	var keys []string
	require.NoError(t, s.List(t.Context(), prefix, func(info media.BlobInfo) error {
		keys = append(keys, info.Key)
		return nil
	}), "List %q", prefix)
	return keys
}

// body returns n pseudo-random bytes, the same for the same n and seed.
func body(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

// digest returns the hex SHA-256 of data.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// failAfter returns a reader constructor: the reader yields the first n bytes
// of data, then fails with err (io.EOF: ends early).
func failAfter(n int, err error) func(data []byte) io.Reader {
	return func(data []byte) io.Reader {
		return io.MultiReader(bytes.NewReader(data[:n]), errorReader{err})
	}
}

// withLastBytes returns a reader constructor like r, whose reader returns
// its last bytes and its error from the same Read.
func withLastBytes(r func(data []byte) io.Reader) func(data []byte) io.Reader {
	return func(data []byte) io.Reader { return iotest.DataErrReader(r(data)) }
}

// errorReader fails every Read with err.
type errorReader struct{ err error }

func (r errorReader) Read([]byte) (int, error) { return 0, r.err }

// cancelReader is an empty reader that calls cancel when read.
type cancelReader context.CancelFunc

func (c cancelReader) Read([]byte) (int, error) {
	c()
	return 0, io.EOF
}
