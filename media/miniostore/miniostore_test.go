package miniostore

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/blobtest"
	"github.com/fieldsync/fieldsync/media/miniotest"
	"github.com/fieldsync/fieldsync/schema"
)

// minioServer is the one MinIO server for this package's tests.
var minioServer miniotest.Shared

func TestMain(m *testing.M) { os.Exit(minioServer.Main(m)) }

// config returns a Config for a fresh bucket on the package's server.
func config(t *testing.T) Config {
	t.Helper()
	srv := minioServer.Start(t)
	return Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: srv.Bucket(t)}
}

// newStore returns a Store on a fresh bucket and checks, when the test ends,
// that no multipart upload was left behind in it: minio-go must have aborted
// every upload that failed.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.Context(), config(t))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for upload := range s.client.ListIncompleteUploads(ctx, s.bucket, "", true) {
			if assert.NoError(t, upload.Err) {
				assert.Fail(t, "multipart upload left behind", "key %s, upload %s", upload.Key, upload.UploadID)
			}
		}
	})
	return s
}

func TestBlobStore(t *testing.T) {
	minioServer.Start(t) // skip or fail here once, not in every subtest
	blobtest.TestBlobStore(t, func(t *testing.T) media.BlobStore { return newStore(t) })
}

func TestPresignedGet(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	data := []byte("jpeg bytes for a redirect")
	key := "photos/presigned"
	require.NoError(t, s.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "image/jpeg"))

	u, err := s.PresignedGet(ctx, key, time.Minute)
	require.NoError(t, err)
	assert.NotContains(t, u.String(), config(t).SecretKey)
	resp, err := http.Get(u.String())
	require.NoError(t, err)
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", got)
	assert.Equal(t, data, got)
	assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))

	u, err = s.PresignedGet(ctx, "photos/missing", time.Minute)
	require.NoError(t, err)
	resp, err = http.Get(u.String())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	_, err = s.PresignedGet(ctx, "../x", time.Minute)
	assert.ErrorIs(t, err, media.ErrInvalidKey)
}

func TestNewSharesBucket(t *testing.T) {
	cfg := config(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = New(t.Context(), cfg)
		})
	}
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "New %d", i)
	}
	s, err := New(t.Context(), cfg)
	require.NoError(t, err, "New on an existing bucket")
	assert.NoError(t, s.Ping(t.Context()))
}

func TestErrorsHideCredentials(t *testing.T) {
	good := config(t)
	wrongSecret := good
	wrongSecret.SecretKey = "wrong-secret-" + good.SecretKey
	noServer := good
	noServer.Endpoint = "127.0.0.1:1"
	badEndpoint := good
	badEndpoint.Endpoint = "http://" + good.AccessKey + ":" + good.SecretKey + "@127.0.0.1:1/x"

	for name, cfg := range map[string]Config{"wrong secret": wrongSecret, "no server": noServer, "bad endpoint": badEndpoint} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			_, err := New(ctx, cfg)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), cfg.SecretKey)
			assert.NotContains(t, err.Error(), cfg.AccessKey)
			t.Log(err)
		})
	}
}

func TestMissingBucket(t *testing.T) {
	s, err := New(t.Context(), config(t))
	require.NoError(t, err)
	require.NoError(t, s.client.RemoveBucket(t.Context(), s.bucket))

	assert.Error(t, s.Ping(t.Context()), "Ping")
	_, err = s.Stat(t.Context(), "photos/x")
	require.Error(t, err)
	assert.NotErrorIs(t, err, media.ErrNotExist, "a missing bucket is a misconfiguration, not a missing key")
}

// The guard on the body: once Put has returned, nothing reads the caller's
// reader any more.
func TestGuardedBodyStopsReading(t *testing.T) {
	b := &guardedBody{r: bytes.NewReader([]byte("abc"))}
	n, err := b.Read(make([]byte, 1))
	assert.Equal(t, 1, n)
	assert.NoError(t, err)
	assert.NoError(t, b.close())
	_, err = b.Read(make([]byte, 1))
	assert.ErrorIs(t, err, errPutReturned)
}

func TestStoppedServerIsUnavailable(t *testing.T) {
	srv := miniotest.Start(t) // its own server: stopping the shared one would break the other tests
	s, err := New(t.Context(), Config{Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: srv.Bucket(t)})
	require.NoError(t, err)
	key := media.Key(strings.Repeat("ab", 32))
	require.NoError(t, s.Put(t.Context(), key, strings.NewReader("shelf"), 5, "image/jpeg"))
	_, err = s.Stat(t.Context(), media.Key(strings.Repeat("cd", 32)))
	require.ErrorIs(t, err, media.ErrNotExist)
	assert.NotErrorIs(t, err, schema.ErrUnavailable, "a missing object is not an outage")

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for name, call := range map[string]func() error{
		"put": func() error {
			return s.Put(ctx, media.Key(strings.Repeat("ef", 32)), strings.NewReader("shelf"), 5, "image/jpeg")
		},
		"stat": func() error { _, err := s.Stat(ctx, key); return err },
		"open": func() error { _, _, err := s.Open(ctx, key); return err },
		"ping": func() error { return s.Ping(ctx) },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			assert.ErrorIs(t, err, schema.ErrUnavailable)
			assert.NotErrorIs(t, err, media.ErrNotExist)
		})
	}
}
