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

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// tusMeta is the Upload-Metadata of a photo.
func tusMeta(sha, contentType string) string {
	enc := base64.StdEncoding.EncodeToString
	return "sha256 " + enc([]byte(sha)) + ",content_type " + enc([]byte(contentType))
}

// tus sends one tus request, checked against the OpenAPI document.
func (ts *testServer) tus(t *testing.T, method, path, token string, header map[string]string, body []byte) response {
	t.Helper()
	req, err := servertest.TusRequest(method, ts.URL+path, token, header, body)
	require.NoError(t, err)
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

// What an upload must announce, and who may open one, is checked when it
// is opened: each refusal comes in the contract's shape and keeps nothing.
func TestUploadCreationRefusals(t *testing.T) {
	f := newFieldTeam(t, nil)
	body := jpeg(1000)
	meta := tusMeta(sum(body), "image/jpeg")
	for _, tc := range []struct {
		name   string
		token  string
		header map[string]string
		status int
		code   string
	}{
		{"no token", "", map[string]string{"Upload-Length": "1000", "Upload-Metadata": meta}, http.StatusUnauthorized, "unauthorized"},
		{"a manager uploads no photos", f.mgr.Access, map[string]string{"Upload-Length": "1000", "Upload-Metadata": meta}, http.StatusForbidden, "forbidden"},
		{"no hash", f.rep1.Access, map[string]string{"Upload-Length": "1000", "Upload-Metadata": "content_type " + base64.StdEncoding.EncodeToString([]byte("image/jpeg"))}, http.StatusBadRequest, "bad_request"},
		{"not a photo type", f.rep1.Access, map[string]string{"Upload-Length": "1000", "Upload-Metadata": tusMeta(sum(body), "text/html")}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"over the size limit", f.rep1.Access, map[string]string{"Upload-Length": "25000001", "Upload-Metadata": meta}, http.StatusRequestEntityTooLarge, "payload_too_large"},
		{"no size", f.rep1.Access, map[string]string{"Upload-Defer-Length": "1", "Upload-Metadata": meta}, http.StatusBadRequest, "bad_request"},
		{"no bytes", f.rep1.Access, map[string]string{"Upload-Length": "0", "Upload-Metadata": meta}, http.StatusUnprocessableEntity, "validation_failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.ts.tus(t, "POST", "/v1/uploads/", tc.token, tc.header, nil)
			assert.Equal(t, tc.status, r.Status, string(r.Raw))
			assert.Equal(t, tc.code, r.ErrorCode())
		})
	}
	assert.Empty(t, partials(t, f.ts), "no refused upload is kept")
}

// An upload is its creator's alone: to anyone else it does not exist, and
// nothing they send reaches it.
func TestUploadsAreTheirCreators(t *testing.T) {
	f := newFieldTeam(t, nil)
	body := jpeg(50_000)
	path := f.ts.createUpload(t, f.rep1.Access, body, "image/jpeg")
	require.Equal(t, http.StatusNoContent, f.ts.patch(t, f.rep1.Access, path, 0, body[:10_000]).Status)
	for _, s := range []session{f.rep2, f.admin} {
		assert.Equal(t, http.StatusNotFound, f.ts.tus(t, "HEAD", path, s.Access, nil, nil).Status)
		r := f.ts.patch(t, s.Access, path, 10_000, body[10_000:])
		assert.Equal(t, http.StatusNotFound, r.Status)
		assert.Equal(t, "not_found", r.ErrorCode())
		assert.Equal(t, http.StatusNotFound, f.ts.tus(t, "DELETE", path, s.Access, nil, nil).Status)
	}
	head := f.ts.tus(t, "HEAD", path, f.rep1.Access, nil, nil)
	assert.Equal(t, "10000", head.Header.Get("Upload-Offset"), "the creator's upload is untouched")
}

// Opening an upload proves nothing: a rep whose photo is already stored
// (by someone else) still has to send every byte before its record counts
// as uploaded, and bytes that are not the announced photo are refused
// when the last one arrives, with nothing kept.
func TestUploadProvesPossessionOnlyWithTheBytes(t *testing.T) {
	f := newFieldTeam(t, nil)
	body := jpeg(200_000)
	f.push(t, f.rep1, photoRecord("ph-1", body))
	require.Equal(t, http.StatusCreated, f.ts.upload(t, f.admin.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body))).Status)

	path := f.ts.createUpload(t, f.rep1.Access, body, "image/jpeg")
	_, data := f.photoState(t, "ph-1")
	assert.Equal(t, false, data["uploaded"], "announcing a stored photo's hash is no proof")

	forged := jpeg(len(body)) // the right length, the wrong bytes
	r := f.ts.patch(t, f.rep1.Access, path, 0, forged)
	assert.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	assert.Equal(t, "hash_mismatch", r.ErrorCode())
	_, data = f.photoState(t, "ph-1")
	assert.Equal(t, false, data["uploaded"], "wrong bytes prove nothing")
	assert.Equal(t, http.StatusNotFound, f.ts.tus(t, "HEAD", path, f.rep1.Access, nil, nil).Status, "the refused upload is forgotten")
	assert.Empty(t, partials(t, f.ts), "nothing of it is kept")
	assert.NoFileExists(t, filepath.Join(f.ts.Dir, "photos", media.Key(sum(forged))), "the forged bytes are not stored under their own hash either")
	assert.FileExists(t, filepath.Join(f.ts.Dir, "photos", media.Key(sum(body))), "(where the stored photo is)")

	path = f.ts.createUpload(t, f.rep1.Access, body, "image/jpeg")
	require.Equal(t, http.StatusNoContent, f.ts.patch(t, f.rep1.Access, path, 0, body).Status)
	_, data = f.photoState(t, "ph-1")
	assert.Equal(t, true, data["uploaded"], "the bytes themselves prove possession")
}

// Bytes that are not of the announced type are refused at the last byte,
// as PUT refuses them, and nothing is kept.
func TestUploadSniffsTheBytes(t *testing.T) {
	f := newFieldTeam(t, nil)
	body := []byte("<html>" + string(make([]byte, 5000)) + "</html>")
	path := f.ts.createUpload(t, f.rep1.Access, body, "image/jpeg")
	r := f.ts.patch(t, f.rep1.Access, path, 0, body)
	assert.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	assert.Equal(t, "validation_failed", r.ErrorCode())
	assert.Empty(t, partials(t, f.ts))
}
