package media

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Errors of Photos.Put.
var (
	// ErrBadHash: the name is not a SHA-256 hex digest.
	ErrBadHash = errors.New("media: not a lowercase SHA-256 hex digest")
	// ErrTooLarge: the body is over the size limit.
	ErrTooLarge = errors.New("media: photo over the size limit")
	// ErrHashMismatch: the bytes do not hash to their name.
	ErrHashMismatch = errors.New("media: bytes do not match their SHA-256")
	// ErrNotPhoto: the bytes are not of the declared photo type.
	ErrNotPhoto = errors.New("media: bytes are not of the declared content type")
)

// Photos keeps photo bytes in a BlobStore, addressed by their SHA-256, so
// that retries and duplicates cost nothing. It is safe for concurrent use.
type Photos struct {
	blobs   BlobStore
	maxSize int64
	now     func() time.Time
	// redirect, when not 0, is how long presigned URLs live when the blob
	// store can make them.
	redirect time.Duration
}

// Presigner is a blob store that can hand out short-lived URLs for reading
// an object without credentials.
type Presigner interface {
	PresignedGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error)
}

// WithRedirects makes PresignedURL hand out URLs that live for expiry,
// when the blob store can make them; 0 turns them off.
func (p *Photos) WithRedirects(expiry time.Duration) *Photos {
	p.redirect = expiry
	return p
}

// PresignedURL returns a short-lived URL to read a photo's bytes straight
// from the blob store, or ok false when redirects are off or the store
// cannot make one.
func (p *Photos) PresignedURL(ctx context.Context, sum string) (u string, ok bool, err error) {
	ps, can := p.blobs.(Presigner)
	if p.redirect <= 0 || !can || !schema.ValidSHA256(sum) {
		return "", false, nil
	}
	signed, err := ps.PresignedGet(ctx, Key(sum), p.redirect)
	if err != nil {
		return "", false, fmt.Errorf("media.Photos.PresignedURL: %w", err)
	}
	return signed.String(), true, nil
}

// NewPhotos keeps photos in blobs, refusing any larger than maxSize bytes.
func NewPhotos(blobs BlobStore, maxSize int64) *Photos {
	return &Photos{blobs: blobs, maxSize: maxSize, now: time.Now}
}

// MaxSize is the largest photo accepted, in bytes.
func (p *Photos) MaxSize() int64 { return p.maxSize }

// Ping reports whether the blob store answers.
func (p *Photos) Ping(ctx context.Context) error { return p.blobs.Ping(ctx) }

// Put streams a photo from r into the store under its hash. size is the
// number of bytes, or -1 when unknown. The bytes are hashed and their
// leading bytes checked against contentType as they pass; they are kept
// only when both hold, and otherwise nothing is left behind. created is
// false when the photo was stored already; r is then still read and
// checked the same way, so that a nil error always means the caller sent
// the bytes themselves, not only their hash.
func (p *Photos) Put(ctx context.Context, sum, contentType string, size int64, r io.Reader) (created bool, err error) {
	const op = "media.Photos.Put"
	switch {
	case !schema.ValidSHA256(sum):
		return false, ErrBadHash
	case size > p.maxSize:
		return false, ErrTooLarge
	}
	key := Key(sum)
	v := &verifier{r: r, h: sha256.New(), want: sum, max: p.maxSize, contentType: contentType}
	if _, err := p.blobs.Stat(ctx, key); err == nil {
		if _, err := io.Copy(io.Discard, v); err != nil {
			return false, err
		}
		return false, nil
	} else if !errors.Is(err, ErrNotExist) {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	if err := p.blobs.Put(ctx, key, v, size, contentType); err != nil {
		for _, known := range []error{ErrTooLarge, ErrHashMismatch, ErrNotPhoto} {
			if errors.Is(err, known) {
				return false, known
			}
		}
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return true, nil
}

// verifier passes a photo's bytes through, failing the read that would end
// them when they are too many, not of their content type, or do not hash
// to their name, so that the blob store keeps nothing.
type verifier struct {
	r           io.Reader
	h           hash.Hash
	want        string
	n, max      int64
	head        []byte
	contentType string
	sniffed     bool
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.max {
		return n, ErrTooLarge
	}
	if !v.sniffed {
		v.head = append(v.head, p[:min(n, SniffLen-len(v.head))]...)
		if len(v.head) >= SniffLen || err != nil {
			v.sniffed = true
			if SniffContentType(v.head) != v.contentType {
				return n, ErrNotPhoto
			}
		}
	}
	if errors.Is(err, io.EOF) && hex.EncodeToString(v.h.Sum(nil)) != v.want {
		return n, ErrHashMismatch
	}
	return n, err
}

// Exists reports whether a photo's bytes are stored.
func (p *Photos) Exists(ctx context.Context, sum string) (BlobInfo, bool, error) {
	if !schema.ValidSHA256(sum) {
		return BlobInfo{}, false, nil
	}
	info, err := p.blobs.Stat(ctx, Key(sum))
	if errors.Is(err, ErrNotExist) {
		return BlobInfo{}, false, nil
	}
	if err != nil {
		return BlobInfo{}, false, fmt.Errorf("media.Photos.Exists: %w", err)
	}
	return info, true, nil
}

// Open returns a reader of a photo's bytes, or ErrNotExist.
func (p *Photos) Open(ctx context.Context, sum string) (io.ReadCloser, BlobInfo, error) {
	if !schema.ValidSHA256(sum) {
		return nil, BlobInfo{}, ErrNotExist
	}
	return p.blobs.Open(ctx, Key(sum))
}

// PhotoFacts tells whether a photo's bytes are stored and, when they are,
// what their own metadata says of when and where it was taken. It serves
// the sync engine as its sync.PhotoChecker.
func (p *Photos) PhotoFacts(ctx context.Context, sum string) (schema.PhotoFacts, error) {
	rc, info, err := p.Open(ctx, sum)
	if errors.Is(err, ErrNotExist) {
		return schema.PhotoFacts{}, nil
	}
	if err != nil {
		return schema.PhotoFacts{}, fmt.Errorf("media.Photos.PhotoFacts: %w", err)
	}
	defer rc.Close()
	meta, err := ReadPhotoMeta(rc)
	if err != nil {
		return schema.PhotoFacts{Stored: true, Size: info.Size}, nil // a broken EXIF block says nothing
	}
	return schema.PhotoFacts{Stored: true, Size: info.Size, TakenAt: meta.TakenAt, Lat: meta.Lat, Lng: meta.Lng}, nil
}

// SweepOrphans deletes photos stored longer than grace ago that no record
// refers to, as referenced tells, and returns how many went.
func (p *Photos) SweepOrphans(ctx context.Context, grace time.Duration, referenced func(ctx context.Context, sum string) (bool, error)) (int, error) {
	cutoff := p.now().Add(-grace)
	var old []string
	err := p.blobs.List(ctx, "photos/", func(info BlobInfo) error {
		if info.ModTime.Before(cutoff) {
			old = append(old, info.Key)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("media.Photos.SweepOrphans: %w", err)
	}
	removed := 0
	for _, key := range old {
		sum := key[strings.LastIndexByte(key, '/')+1:]
		if !schema.ValidSHA256(sum) {
			continue
		}
		ref, err := referenced(ctx, sum)
		if err != nil {
			return removed, fmt.Errorf("media.Photos.SweepOrphans: %w", err)
		}
		if ref {
			continue
		}
		if err := p.blobs.Delete(ctx, key); err != nil {
			return removed, fmt.Errorf("media.Photos.SweepOrphans: %w", err)
		}
		removed++
	}
	return removed, nil
}

// TempSweeper is a blob store that a process dying mid-Put can leave with
// temporary files, and that can remove them.
type TempSweeper interface {
	// SweepTemp removes the temporary files of Puts that will never
	// finish and returns how many went.
	SweepTemp(ctx context.Context) (int, error)
}

// RunSweeper sweeps orphaned photos, and the temporary files of uploads
// cut off by a crash when the blob store keeps any, every interval until
// ctx ends. Running it on several instances at once is harmless.
func (p *Photos) RunSweeper(ctx context.Context, interval, grace time.Duration, referenced func(ctx context.Context, sum string) (bool, error), log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if ts, ok := p.blobs.(TempSweeper); ok {
			n, err := ts.SweepTemp(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Error("sweeping temporary files", slog.Any("err", err))
			case n > 0:
				log.Info("swept temporary files of cut-off uploads", slog.Int("removed", n))
			}
		}
		n, err := p.SweepOrphans(ctx, grace, referenced)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("sweeping orphaned photos", slog.Any("err", err))
		case n > 0:
			log.Info("swept orphaned photos", slog.Int("removed", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
