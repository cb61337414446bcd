package media

import (
	"context"
	"errors"
	"io"
	"time"
)

// BlobStore keeps photo bytes under keys. Implementations must be safe for
// concurrent use.
//
// Keys must pass ValidateKey; every method refuses any other key with an error
// that wraps ErrInvalidKey, so a key can never name anything outside the store.
type BlobStore interface {
	// Put stores size bytes read from r under key. If reading r fails
	// (returns any error other than io.EOF) or returns fewer/more than size
	// bytes, Put returns an error and NOTHING is stored or left visible under
	// key, not even a partial object; an existing object under key is left
	// unchanged. Concurrent Puts of the same key with the same bytes both
	// succeed. size may be -1 for unknown.
	//
	// The error wraps the reader's error, ErrSizeMismatch for a wrong
	// length, ErrInvalidKey, or ErrInvalidContentType. contentType must
	// pass ValidateContentType; an empty one is stored as
	// DefaultContentType.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Stat returns the object's info, or ErrNotExist.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// Open returns a reader of the object's bytes, or ErrNotExist.
	// The caller closes the reader.
	Open(ctx context.Context, key string) (io.ReadCloser, BlobInfo, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List calls fn for every object whose key starts with prefix, in key
	// order, stopping at fn's first error, which it returns as is. The
	// BlobInfo it passes has Key, Size and ModTime; ContentType is left
	// empty, as object listings do not carry it (use Stat). prefix must be
	// empty or pass ValidatePrefix.
	List(ctx context.Context, prefix string, fn func(BlobInfo) error) error
	// Ping reports whether the store answers (for readiness checks).
	Ping(ctx context.Context) error
}

// BlobInfo describes a stored object.
type BlobInfo struct {
	// Key is the object's key.
	Key string
	// Size is the object's length in bytes.
	Size int64
	// ContentType is the media type given to Put (DefaultContentType if
	// Put was given none).
	ContentType string
	// ModTime is when the object was last stored.
	ModTime time.Time
}

// ErrNotExist is returned (wrapped) by Stat and Open when no object is stored
// under the key.
var ErrNotExist = errors.New("media: blob does not exist")

// DefaultContentType is what a BlobStore records for a Put without a content
// type.
const DefaultContentType = "application/octet-stream"
