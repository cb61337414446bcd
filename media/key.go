package media

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fieldsync/fieldsync/schema"
)

// ErrInvalidKey is returned (wrapped) by every BlobStore method given a key
// or prefix that ValidateKey or ValidatePrefix refuses.
var ErrInvalidKey = errors.New("media: invalid blob key")

// ErrInvalidContentType is returned (wrapped) by Put given a content type
// that ValidateContentType refuses.
var ErrInvalidContentType = errors.New("media: invalid content type")

// Limits on keys and content types, so that every adapter can hold them
// (S3 keys are at most 1024 bytes, file names at most 255).
const (
	maxKeyLen         = 1024
	maxSegmentLen     = 255
	maxContentTypeLen = 200
)

// Key returns the object key for a photo's SHA-256 hex digest:
// "photos/ab/cd/<sha256>". If sha256hex is not 64 lower-case hex digits, Key
// returns "", which every BlobStore refuses as an invalid key.
func Key(sha256hex string) string {
	if !schema.ValidSHA256(sha256hex) {
		return ""
	}
	return "photos/" + sha256hex[0:2] + "/" + sha256hex[2:4] + "/" + sha256hex
}

// ValidateKey reports whether key may name an object: slash-separated
// segments of [a-z0-9._-], none empty and none starting with "." (so no "."
// or ".." and no name an adapter keeps for itself), with no ".." anywhere,
// at most 1024 bytes in all and 255 a segment. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("%w: %q: length must be 1 to %d bytes", ErrInvalidKey, key, maxKeyLen)
	}
	if strings.Contains(key, "..") {
		return fmt.Errorf("%w: %q: contains \"..\"", ErrInvalidKey, key)
	}
	for _, c := range []byte(key) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '/' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: only a-z, 0-9 and /._- are allowed", ErrInvalidKey, key)
		}
	}
	for _, seg := range strings.Split(key, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("%w: %q: empty segment", ErrInvalidKey, key)
		case seg[0] == '.':
			return fmt.Errorf("%w: %q: segment starts with \".\"", ErrInvalidKey, key)
		case len(seg) > maxSegmentLen:
			return fmt.Errorf("%w: %q: segment longer than %d bytes", ErrInvalidKey, key, maxSegmentLen)
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix may be passed to List: empty, or a
// valid key, or a valid key followed by "/". The error wraps ErrInvalidKey.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateKey(strings.TrimSuffix(prefix, "/"))
}

// ValidateContentType reports whether contentType may be stored: at most 200
// bytes of printable ASCII. Empty is allowed and means DefaultContentType.
// The error wraps ErrInvalidContentType.
func ValidateContentType(contentType string) error {
	if len(contentType) > maxContentTypeLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidContentType, maxContentTypeLen)
	}
	for _, c := range []byte(contentType) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: %q: only printable ASCII is allowed", ErrInvalidContentType, contentType)
		}
	}
	return nil
}
