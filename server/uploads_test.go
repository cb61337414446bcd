package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tusMeta is the Upload-Metadata of a photo.
func tusMeta(sha, contentType string) string {
	enc := base64.StdEncoding.EncodeToString
	return "sha256 " + enc([]byte(sha)) + ",content_type " + enc([]byte(contentType))
}

// tus sends one tus request, checked against the OpenAPI document.
func (ts *testServer) tus(t *testing.T, method, path, token string, header map[string]string, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Tus-Resumable", "1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := ts.HTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &r.Body) // an answer without a body stays nil
	return r
}

// createUpload opens an upload of body and returns its path.
func (ts *testServer) createUpload(t *testing.T, token string, body []byte, contentType string) string {
	t.Helper()
	r := ts.tus(t, "POST", "/v1/uploads/", token, map[string]string{
		"Upload-Length": strconv.Itoa(len(body)), "Upload-Metadata": tusMeta(sum(body), contentType)}, nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	loc, err := url.Parse(r.Header.Get("Location"))
	require.NoError(t, err)
	return loc.Path
}

// patch sends bytes at an offset.
func (ts *testServer) patch(t *testing.T, token, path string, offset int, chunk []byte) response {
	t.Helper()
	return ts.tus(t, "PATCH", path, token, map[string]string{"Upload-Offset": strconv.Itoa(offset)}, chunk)
}

// partials lists the files the server keeps for unfinished uploads.
func partials(t *testing.T, ts *testServer) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(ts.Dir, "uploads"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// An upload sent in pieces is stored once its last byte is in, exactly as
// PUT stores it: the uploader's photo record turns uploaded, the bytes are
// served under their hash, and nothing of the upload is left.
func TestResumableUploadStoresThePhoto(t *testing.T) {
	f := newFieldTeam(t, nil)
	body := jpeg(300_000)
	f.push(t, f.rep1, photoRecord("ph-1", body))
	path := f.ts.createUpload(t, f.rep1.Access, body, "image/jpeg")

	r := f.ts.patch(t, f.rep1.Access, path, 0, body[:100_000])
	require.Equal(t, http.StatusNoContent, r.Status, string(r.Raw))
	assert.Equal(t, "100000", r.Header.Get("Upload-Offset"))
	head := f.ts.tus(t, "HEAD", path, f.rep1.Access, nil, nil)
	assert.Equal(t, http.StatusOK, head.Status)
	assert.Equal(t, "100000", head.Header.Get("Upload-Offset"), "the server says where to go on")
	assert.Equal(t, http.StatusNotFound, f.ts.stored(t, f.rep1.Access, sum(body)), "not stored before the last byte")

	r = f.ts.patch(t, f.rep1.Access, path, 50_000, body[50_000:])
	assert.Equal(t, http.StatusConflict, r.Status, "an offset that is not the server's")
	assert.Equal(t, "conflict", r.ErrorCode())

	r = f.ts.patch(t, f.rep1.Access, path, 100_000, body[100_000:])
	require.Equal(t, http.StatusNoContent, r.Status, string(r.Raw))
	assert.Equal(t, "300000", r.Header.Get("Upload-Offset"))
	assert.Equal(t, http.StatusOK, f.ts.stored(t, f.rep1.Access, sum(body)))
	got := f.ts.call(t, "GET", "/v1/media/"+sum(body), f.rep1.Access, nil)
	assert.Equal(t, body, got.Raw, "the stored bytes are the photo")
	_, data := f.photoState(t, "ph-1")
	assert.Equal(t, true, data["uploaded"], "the record turns uploaded as after a PUT")
	assert.Equal(t, http.StatusNotFound, f.ts.tus(t, "HEAD", path, f.rep1.Access, nil, nil).Status, "a finished upload is forgotten")
	assert.Empty(t, partials(t, f.ts), "nothing of the upload is left")
}
