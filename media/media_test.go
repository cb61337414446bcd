package media_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"

	"github.com/fieldsync/fieldsync/media"
)

func TestKey(t *testing.T) {
	hexDigest := "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	tests := []struct {
		name, in, want string
	}{
		{"digest", hexDigest, "photos/e3/b0/" + hexDigest},
		{"upper case", strings.ToUpper(hexDigest), ""},
		{"too short", hexDigest[:63], ""},
		{"not hex", "../" + hexDigest[3:], ""},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := media.Key(tc.in)
			assert.Equal(t, tc.want, got)
			if got != "" {
				assert.NoError(t, media.ValidateKey(got))
			}
		})
	}
}

func TestValidateKey(t *testing.T) {
	valid := []string{"photos/ab/cd/x", "a", "a.b/c-d_e", "photos/a.", strings.Repeat("a", 255)}
	invalid := []string{
		"", "../x", "/abs", "a//b", "A B", "a/", "a/../b", "a/./b", ".", "..", ".tmp/x", "x/.hidden",
		"a..b", "a\\b", "a\x00", "ünï", "Photos/x", strings.Repeat("a", 256), strings.Repeat("a/", 512) + "a",
	}
	for _, key := range valid {
		assert.NoError(t, media.ValidateKey(key), "%q", key)
	}
	for _, key := range invalid {
		assert.ErrorIs(t, media.ValidateKey(key), media.ErrInvalidKey, "%q", key)
	}
	for _, prefix := range []string{"", "photos/", "photos/a", "photos/ab/"} {
		assert.NoError(t, media.ValidatePrefix(prefix), "prefix %q", prefix)
	}
	for _, prefix := range []string{"/", "//", "../", "photos//", "A"} {
		assert.ErrorIs(t, media.ValidatePrefix(prefix), media.ErrInvalidKey, "prefix %q", prefix)
	}
}

func TestValidateContentType(t *testing.T) {
	for _, ct := range []string{"", "image/jpeg", "text/plain; charset=utf-8", strings.Repeat("a", 200)} {
		assert.NoError(t, media.ValidateContentType(ct), "%q", ct)
	}
	for _, ct := range []string{"image/jpeg\r\nX: y", "a\x00", "ïmage/jpeg", strings.Repeat("a", 201)} {
		assert.ErrorIs(t, media.ValidateContentType(ct), media.ErrInvalidContentType, "%q", ct)
	}
}

func TestExactSizeReadsWholeBody(t *testing.T) {
	data := []byte("0123456789abcdef")
	for _, size := range []int64{16, -1} {
		assert.NoError(t, iotest.TestReader(media.ExactSize(bytes.NewReader(data), size), data), "size %d", size)
		assert.NoError(t, iotest.TestReader(media.ExactSize(iotest.OneByteReader(bytes.NewReader(data)), size), data), "size %d, one byte reads", size)
		assert.NoError(t, iotest.TestReader(media.ExactSize(iotest.DataErrReader(bytes.NewReader(data)), size), data), "size %d, data with EOF", size)
	}
	assert.NoError(t, iotest.TestReader(media.ExactSize(bytes.NewReader(nil), 0), nil), "empty")
}

func TestExactSizeFailures(t *testing.T) {
	data := []byte("0123456789abcdef")
	errBody := errors.New("body failed")
	failAt := func(n int, err error) io.Reader {
		return io.MultiReader(bytes.NewReader(data[:n]), iotest.ErrReader(err))
	}
	tests := []struct {
		name    string
		r       io.Reader
		size    int64
		wantErr error
	}{
		{"short", bytes.NewReader(data[:15]), 16, media.ErrSizeMismatch},
		{"long", bytes.NewReader(data), 15, media.ErrSizeMismatch},
		{"empty but declared", bytes.NewReader(nil), 1, media.ErrSizeMismatch},
		{"fails half way", failAt(8, errBody), 16, errBody},
		{"fails half way, size unknown", failAt(8, errBody), -1, errBody},
		{"fails instead of EOF", failAt(16, errBody), 16, errBody},
		{"fails instead of EOF, size unknown", failAt(16, errBody), -1, errBody},
		{"unexpected EOF", failAt(8, io.ErrUnexpectedEOF), 16, io.ErrUnexpectedEOF},
		{"unexpected EOF, size unknown", failAt(8, io.ErrUnexpectedEOF), -1, io.ErrUnexpectedEOF},
		{"data with error", iotest.DataErrReader(failAt(16, errBody)), 16, errBody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := media.ExactSize(tc.r, tc.size)
			_, err := io.ReadAll(r)
			assert.ErrorIs(t, err, tc.wantErr)
			assert.NotErrorIs(t, err, io.EOF, "must not look like the end of the body")
			assert.False(t, err == io.ErrUnexpectedEOF, "must not be the bare io.ErrUnexpectedEOF")
			_, again := r.Read(make([]byte, 1))
			assert.Equal(t, err, again, "errors are sticky")
		})
	}
}

// A consumer that knows the size stops reading after size bytes, as an HTTP
// client with a Content-Length does. It must not get the whole body when the
// body fails or goes on after it.
func TestExactSizeHoldsLastByteBack(t *testing.T) {
	data := []byte("0123456789abcdef")
	for name, r := range map[string]io.Reader{
		"fails instead of EOF": io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errors.New("body failed"))),
		"longer":               io.MultiReader(bytes.NewReader(data), strings.NewReader("x")),
	} {
		t.Run(name, func(t *testing.T) {
			buf := make([]byte, len(data))
			n, err := io.ReadFull(media.ExactSize(r, int64(len(data))), buf)
			assert.Error(t, err)
			assert.Less(t, n, len(data))
		})
	}
}
