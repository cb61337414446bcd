package miniotest

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBucketRoundTrip talks to the harness's server with minio-go directly,
// then checks that the harness stopped the server when the test ended.
func TestBucketRoundTrip(t *testing.T) {
	requireBinary(t)
	var srv *Server
	t.Run("server", func(t *testing.T) {
		srv = Start(t)
		ctx := t.Context()
		client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
		require.NoError(t, err)

		bucket := srv.Bucket(t)
		require.NoError(t, client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}))
		want := []byte("a photo's bytes")
		_, err = client.PutObject(ctx, bucket, "photos/x", bytes.NewReader(want), int64(len(want)), minio.PutObjectOptions{ContentType: "image/jpeg"})
		require.NoError(t, err)

		obj, err := client.GetObject(ctx, bucket, "photos/x", minio.GetObjectOptions{})
		require.NoError(t, err)
		got, err := io.ReadAll(obj)
		require.NoError(t, err)
		require.NoError(t, obj.Close())
		assert.Equal(t, want, got)

		require.NoError(t, client.RemoveObject(ctx, bucket, "photos/x", minio.RemoveObjectOptions{}))
		require.NoError(t, client.RemoveBucket(ctx, bucket))
	})
	require.NotNil(t, srv)

	select {
	case <-srv.exited:
	default:
		t.Fatal("minio still running after its test ended")
	}
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + srv.Endpoint + "/minio/health/live")
	if err == nil {
		resp.Body.Close()
	}
	assert.Error(t, err, "endpoint still answers after stop")
}

func TestBucketNames(t *testing.T) {
	s := &Server{}
	first, second := s.Bucket(t), s.Bucket(t)
	assert.Equal(t, "t-testbucketnames-1", first)
	assert.NotEqual(t, first, second)
	t.Run("Sub Test/with ODD_chars and a rather long name that goes on", func(t *testing.T) {
		name := s.Bucket(t)
		assert.Regexp(t, `^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`, name)
		assert.NotContains(t, name, "--")
	})
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("FIELDSYNC_MINIO_BIN", "")
	t.Setenv("PATH", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	_, err := findBinary()
	assert.ErrorIs(t, err, errNoBinary)
	assert.Contains(t, err.Error(), "go install github.com/minio/minio@"+Version)

	t.Setenv("FIELDSYNC_MINIO_BIN", "/nonexistent/minio")
	_, err = findBinary()
	assert.Error(t, err)
	assert.NotErrorIs(t, err, errNoBinary, "a wrong FIELDSYNC_MINIO_BIN is a mistake, not a missing binary")
}

func TestEarlyExitReportsOutput(t *testing.T) {
	bin := requireBinary(t)
	// A file where the data dir should be makes MinIO exit at once.
	notDir := t.TempDir() + "/file"
	require.NoError(t, os.WriteFile(notDir, []byte("not a directory"), 0o644))
	_, err := launch(bin, notDir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited early")
	t.Log(err)
}
