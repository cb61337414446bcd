package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/miniotest"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// tusCall sends one tus request to a fieldsync process through its
// checked client.
func tusCall(t *testing.T, api *servertest.Client, method, u, token string, header map[string]string, body []byte) servertest.Response {
	t.Helper()
	req, err := servertest.TusRequest(method, u, token, header, body)
	require.NoError(t, err)
	return api.Do(t, req)
}

// openUpload opens a resumable upload of photo and returns its URL.
func openUpload(t *testing.T, api *servertest.Client, token string, photo []byte) string {
	t.Helper()
	h := sha256.Sum256(photo)
	enc := base64.StdEncoding.EncodeToString
	resp := tusCall(t, api, "POST", api.URL+"/v1/uploads/", token, map[string]string{
		"Upload-Length":   strconv.Itoa(len(photo)),
		"Upload-Metadata": "sha256 " + enc([]byte(hex.EncodeToString(h[:]))) + ",content_type " + enc([]byte("image/jpeg")),
	}, nil)
	require.Equal(t, http.StatusCreated, resp.Status, string(resp.Raw))
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return api.URL + loc.Path
}

// jpegBytes returns n random bytes that start like a JPEG.
func jpegBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}

// errorOf decodes the contract's error from an answer.
func errorOf(t *testing.T, raw []byte) (code, message string) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), string(raw))
	return body.Error.Code, body.Error.Message
}

// MinIO stopped in the middle of a resumable upload: the request that
// brings the last byte gets 503 unavailable with Retry-After, nothing of
// the photo is in the photo store, /readyz names the photo store, and once
// MinIO is back the same upload is stored without a byte sent again.
func TestResumableUploadSurvivesMinIOOutage(t *testing.T) {
	srv := miniotest.Start(t) // its own server: this test stops it
	bucket := srv.Bucket(t)
	dir := t.TempDir()
	p := startBinary(t, dir, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1",
		"FIELDSYNC_S3_ENDPOINT="+srv.Endpoint, "FIELDSYNC_S3_ACCESS_KEY="+srv.AccessKey,
		"FIELDSYNC_S3_SECRET_KEY="+srv.SecretKey, "FIELDSYNC_S3_BUCKET="+bucket)
	api := servertest.Connect(t, "http://"+p.addr)
	token := login(t, api)
	photo := jpegBytes(2_000_000)
	h := sha256.Sum256(photo)
	key := media.Key(hex.EncodeToString(h[:]))
	s3, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	require.NoError(t, err)

	upload := openUpload(t, api, token, photo)
	resp := tusCall(t, api, "PATCH", upload, token, map[string]string{"Upload-Offset": "0"}, photo[:1_200_000])
	require.Equal(t, http.StatusNoContent, resp.Status, string(resp.Raw))

	srv.Stop()
	resp = tusCall(t, api, "PATCH", upload, token, map[string]string{"Upload-Offset": "1200000"}, photo[1_200_000:])
	assert.Equal(t, http.StatusServiceUnavailable, resp.Status, string(resp.Raw))
	assert.NotEmpty(t, resp.Header.Get("Retry-After"), "the client is told when to try again")
	code, _ := errorOf(t, resp.Raw)
	assert.Equal(t, "unavailable", code)
	assert.NotContains(t, string(resp.Raw), srv.Endpoint, "no driver message reaches the client")

	ready := api.Call(t, http.MethodGet, "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, ready.Status)
	_, msg := errorOf(t, ready.Raw)
	assert.Contains(t, msg, "photos", "/readyz names the store that is down")
	assert.NotContains(t, msg, "records", "and only that one")

	resp = tusCall(t, api, "HEAD", upload, token, nil, nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.Status, "still down: HEAD cannot store the photo either")

	srv.Restart(t)
	_, err = s3.StatObject(context.Background(), bucket, key, minio.StatObjectOptions{})
	assert.Equal(t, "NoSuchKey", minio.ToErrorResponse(err).Code, "nothing of the photo was kept during the outage")
	require.Eventually(t, func() bool {
		return api.Call(t, http.MethodGet, "/readyz", "", nil).Status == http.StatusOK
	}, 30*time.Second, 200*time.Millisecond, "ready again once MinIO is back")

	resp = tusCall(t, api, "HEAD", upload, token, nil, nil)
	require.Equal(t, http.StatusOK, resp.Status, string(resp.Raw))
	assert.Equal(t, strconv.Itoa(len(photo)), resp.Header.Get("Upload-Offset"), "the whole photo is in: the same upload is stored")
	obj, err := s3.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	require.NoError(t, err)
	got, err := io.ReadAll(obj)
	require.NoError(t, err)
	assert.Equal(t, photo, got, "the photo store has exactly the photo under its content address")
	resp = tusCall(t, api, "HEAD", upload, token, nil, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, "a stored upload is forgotten")
}

// Partial uploads that receive no byte for --upload-ttl are swept from
// the upload folder; an upload still moving is not.
func TestExpiredUploadsAreSwept(t *testing.T) {
	dir := t.TempDir()
	p := startBinaryWith(t, dir, []string{"--upload-ttl", "2s"}, "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
	api := servertest.Connect(t, "http://"+p.addr)
	token := login(t, api)
	photo := jpegBytes(100_000)
	upload := openUpload(t, api, token, photo)
	resp := tusCall(t, api, "PATCH", upload, token, map[string]string{"Upload-Offset": "0"}, photo[:40_000])
	require.Equal(t, http.StatusNoContent, resp.Status, string(resp.Raw))
	files, err := os.ReadDir(filepath.Join(dir, "data", "uploads"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "the partial upload is kept in the data dir")

	require.Eventually(t, func() bool {
		resp := tusCall(t, api, "HEAD", upload, token, nil, nil)
		return resp.Status == http.StatusNotFound
	}, 20*time.Second, 250*time.Millisecond, "the idle upload is swept")
	files, err = os.ReadDir(filepath.Join(dir, "data", "uploads"))
	require.NoError(t, err)
	assert.Empty(t, files, "nothing of it is left")
	resp = tusCall(t, api, "PATCH", upload, token, map[string]string{"Upload-Offset": "40000"}, photo[40_000:])
	assert.Equal(t, http.StatusNotFound, resp.Status, "a swept upload takes no more bytes: %s", resp.Raw)
}
