// Package miniostore is a media.BlobStore in a bucket of MinIO (or any
// S3-compatible server), through github.com/minio/minio-go/v7.
//
// Put streams: a body up to PartSize goes in one PUT request read straight
// from the caller's reader; a larger or unsized body goes as a multipart
// upload, one PartSize buffer at a time. Either way a body that fails, or
// does not match its declared size, leaves nothing behind: the single PUT
// request is cut off before the server has all the bytes it was promised,
// and minio-go aborts a failed multipart upload, which discards its parts.
// The body is wrapped by media.ExactSize, which turns short, long and
// failing bodies into errors that minio-go cannot mistake for the end of the
// body (see Put).
package miniostore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/schema"
)

// PartSize is the multipart part size, and so the most one Put buffers: a
// body of known size up to PartSize is streamed in a single request with no
// buffer at all.
const PartSize = 8 << 20

// Config says where the bucket is and how to sign in.
type Config struct {
	// Endpoint is the server's host:port, without scheme.
	Endpoint string
	// AccessKey and SecretKey are the credentials. They never appear in
	// errors.
	AccessKey string
	SecretKey string
	// Bucket holds the objects; New creates it if it is missing.
	Bucket string
	// Secure selects HTTPS. The default is plain HTTP.
	Secure bool
}

// Store is a media.BlobStore in one bucket. It is safe for concurrent use.
type Store struct {
	client  *minio.Client
	bucket  string
	secrets []string // credentials to scrub from error messages
}

var _ media.BlobStore = (*Store)(nil)

// New connects to the server in cfg and creates the bucket if it is missing.
func New(ctx context.Context, cfg Config) (*Store, error) {
	s := &Store{bucket: cfg.Bucket, secrets: []string{cfg.SecretKey, cfg.AccessKey}}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
	})
	if err != nil {
		return nil, s.fail("miniostore.New", "", err)
	}
	s.client = client
	exists, err := client.BucketExists(ctx, cfg.Bucket)
	if err == nil && !exists {
		err = client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{})
		if code := minio.ToErrorResponse(err).Code; code == "BucketAlreadyOwnedByYou" {
			err = nil // created by a concurrent New
		}
	}
	if err != nil {
		return nil, s.fail("miniostore.New", cfg.Bucket, err)
	}
	return s, nil
}

// Put stores the object; see media.BlobStore.
//
// The body goes through media.ExactSize because minio-go on its own would
// store a truncated object in some cases: its multipart loop reads parts
// with a read-until-full helper that drops an error returned together with
// the bytes that fill a part, and takes a bare io.ErrUnexpectedEOF at a part
// boundary (what net/http's request body returns when a client hangs up)
// for the end of the body. ExactSize never returns bytes with an error and
// wraps every error of the body.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	const op = "miniostore.Put"
	if err := media.ValidateKey(key); err != nil {
		return s.fail(op, key, err)
	}
	if err := media.ValidateContentType(contentType); err != nil {
		return s.fail(op, key, err)
	}
	if contentType == "" {
		contentType = media.DefaultContentType
	}
	body := &guardedBody{r: media.ExactSize(r, size)}
	_, err := s.client.PutObject(ctx, s.bucket, key, body, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    PartSize,
	})
	bodyErr := body.close()
	if err != nil {
		// The body's own error says best what went wrong; minio-go
		// reports it only as a failed request on some paths. It is the
		// client's failure, not the store's.
		if bodyErr != nil {
			return s.scrub(fmt.Errorf("%s %s: %w", op, key, bodyErr))
		}
		return s.fail(op, key, err)
	}
	return nil
}

// errPutReturned is what guardedBody returns once Put has returned.
var errPutReturned = errors.New("read after Put returned")

// guardedBody is the body Put hands minio-go. It remembers the body's first
// error, and once Put returns it stops all reading of the caller's reader:
// net/http may go on reading a request body in another goroutine after the
// request has failed, while the caller may reuse its reader's buffers (as
// fasthttp does) as soon as Put returns.
type guardedBody struct {
	mu     sync.Mutex // held during a Read, so close waits for it
	r      io.Reader
	err    error
	closed bool
}

func (b *guardedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errPutReturned
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// close stops further reads, waiting for one in progress, and returns the
// body's first error.
func (b *guardedBody) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.err
}

// Stat returns the object's info; see media.BlobStore.
func (s *Store) Stat(ctx context.Context, key string) (media.BlobInfo, error) {
	const op = "miniostore.Stat"
	if err := media.ValidateKey(key); err != nil {
		return media.BlobInfo{}, s.fail(op, key, err)
	}
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return media.BlobInfo{}, s.fail(op, key, err)
	}
	return blobInfo(info), nil
}

// Open returns a reader of the object's bytes; see media.BlobStore.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, media.BlobInfo, error) {
	const op = "miniostore.Open"
	if err := media.ValidateKey(key); err != nil {
		return nil, media.BlobInfo{}, s.fail(op, key, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, media.BlobInfo{}, s.fail(op, key, err)
	}
	info, err := obj.Stat() // sends the GET
	if err != nil {
		obj.Close()
		return nil, media.BlobInfo{}, s.fail(op, key, err)
	}
	return obj, blobInfo(info), nil
}

// Delete removes the object; see media.BlobStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	const op = "miniostore.Delete"
	if err := media.ValidateKey(key); err != nil {
		return s.fail(op, key, err)
	}
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.fail(op, key, err)
	}
	return nil
}

// List calls fn for the objects under prefix in key order; see
// media.BlobStore.
func (s *Store) List(ctx context.Context, prefix string, fn func(media.BlobInfo) error) error {
	const op = "miniostore.List"
	if err := media.ValidatePrefix(prefix); err != nil {
		return s.fail(op, prefix, err)
	}
	// Cancelling ctx is how minio-go's listing goroutine is told to stop
	// when fn ends the walk early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return s.fail(op, prefix, obj.Err)
		}
		info := blobInfo(obj)
		info.ContentType = "" // not in listings; see media.BlobStore
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Ping reports whether the server answers and the bucket is there; see
// media.BlobStore.
func (s *Store) Ping(ctx context.Context) error {
	exists, err := s.client.BucketExists(ctx, s.bucket)
	if err == nil && !exists {
		err = fmt.Errorf("bucket %s does not exist", s.bucket)
	}
	if err != nil {
		return s.fail("miniostore.Ping", "", err)
	}
	return nil
}

// PresignedGet returns a URL that lets its holder GET the object, without
// credentials, until expiry (at most 7 days) has passed; for redirecting
// clients to the photo. It does not check that the object exists.
func (s *Store) PresignedGet(ctx context.Context, key string, expiry time.Duration) (*url.URL, error) {
	const op = "miniostore.PresignedGet"
	if err := media.ValidateKey(key); err != nil {
		return nil, s.fail(op, key, err)
	}
	u, err := s.client.PresignedGetObject(ctx, s.bucket, key, expiry, nil)
	if err != nil {
		return nil, s.fail(op, key, err)
	}
	return u, nil
}

// blobInfo converts minio-go's object info.
func blobInfo(info minio.ObjectInfo) media.BlobInfo {
	return media.BlobInfo{Key: info.Key, Size: info.Size, ContentType: info.ContentType, ModTime: info.LastModified}
}

// fail wraps err with the operation and the key (or bucket or prefix) it
// was about, maps a missing object to media.ErrNotExist, and scrubs the
// credentials from the message.
func (s *Store) fail(op, subject string, err error) error {
	if subject != "" {
		op += " " + subject
	}
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchKey":
		err = fmt.Errorf("%s: %w", op, media.ErrNotExist)
	case unreachable(err) || resp.StatusCode == http.StatusServiceUnavailable:
		err = fmt.Errorf("%s: %w: %w", op, schema.ErrUnavailable, err)
	default:
		err = fmt.Errorf("%s: %w", op, err)
	}
	return s.scrub(err)
}

// scrub hides the credentials in err's message.
func (s *Store) scrub(err error) error { return &scrubbedError{err: err, secrets: s.secrets} }

// unreachable reports whether err says that the S3 server could not be
// reached or stopped answering: a failed dial, a dropped connection, a
// timeout.
func unreachable(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// scrubbedError is an error whose message has the credentials replaced.
type scrubbedError struct {
	err     error
	secrets []string
}

func (e *scrubbedError) Error() string {
	msg := e.err.Error()
	for _, secret := range e.secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}

func (e *scrubbedError) Unwrap() error { return e.err }
