package deploy_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/deploy/nginxtest"
)

const (
	// heartbeat is fieldsync's default --stream-heartbeat.
	heartbeat = 15 * time.Second
	// photoLimit is the largest photo fieldsync takes.
	photoLimit = 25 << 20
)

// location returns the body of the nginx location block opened by head.
func location(t *testing.T, conf, head string) string {
	t.Helper()
	_, rest, ok := strings.Cut(conf, head+" {\n")
	require.True(t, ok, "nginx.conf has %q", head)
	body, _, ok := strings.Cut(rest, "\n    }\n")
	require.True(t, ok)
	return body
}

// directive returns the value of a directive in block, or "".
func directive(block, name string) string {
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `\s+([^;]*);`).FindStringSubmatch(block)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestNginxSyntax(t *testing.T) {
	bin := nginxtest.Binary(t)
	c := nginxtest.Write(t, "nginx.conf", "127.0.0.1:1", "127.0.0.1:2")
	out, err := exec.Command(bin, c.Args("-t")...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "syntax is ok")
	assert.Contains(t, string(out), "test is successful")

	// nginx -t refuses what it does not know.
	raw, err := os.ReadFile(c.Path)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(c.Path, bytes.Replace(raw, []byte("proxy_buffering off;"), []byte("proxy_bufering off;"), 1), 0o600))
	out, err = exec.Command(bin, c.Args("-t")...).CombinedOutput()
	assert.Error(t, err)
	assert.Contains(t, string(out), `unknown directive "proxy_bufering"`)
}

func TestNginxSettings(t *testing.T) {
	raw, err := os.ReadFile("nginx.conf")
	require.NoError(t, err)
	conf := string(raw)

	seconds := func(v string) time.Duration {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "s"))
		require.NoError(t, err, "%q is in seconds", v)
		return time.Duration(n) * time.Second
	}
	stream := location(t, conf, "location = /v1/sync/stream")
	assert.Equal(t, "off", directive(stream, "proxy_buffering"), "events pass as they come")
	assert.Greater(t, seconds(directive(stream, "proxy_read_timeout")), 2*heartbeat, "a stream survives a late ping")

	uploads := location(t, conf, "location /v1/uploads/")
	assert.Equal(t, "off", directive(uploads, "proxy_request_buffering"), "upload bodies stream through")
	assert.Equal(t, "off", directive(uploads, "proxy_redirect"), "Location passes untouched")

	size := directive(conf, "client_max_body_size")
	require.True(t, strings.HasSuffix(size, "m"), "client_max_body_size %q in MB", size)
	mb, err := strconv.Atoi(strings.TrimSuffix(size, "m"))
	require.NoError(t, err)
	assert.Greater(t, mb<<20, photoLimit, "a 25 MB photo and its framing fit")
	assert.LessOrEqual(t, mb, 32, "no far larger bodies")
}

// seen is what the fake instance behind nginx received.
type seen struct {
	header http.Header
	length int64
}

// TestNginxUploads sends tus requests through the real nginx to a plain
// HTTP server standing in for an instance, and checks what each side sees.
func TestNginxUploads(t *testing.T) {
	got := make(chan seen, 1)
	instance := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- seen{r.Header.Clone(), n}
		w.Header().Set("Tus-Resumable", "1.0.0")
		w.Header().Set("Upload-Offset", strconv.FormatInt(n, 10))
		w.Header().Set("Location", "https://photos.example.com/v1/uploads/u-1")
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(instance.Close)
	base := nginxtest.Start(t, "nginx.conf", strings.TrimPrefix(instance.URL, "http://"))

	send := func(method, path string, body []byte, header map[string]string) *http.Response {
		req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
		require.NoError(t, err)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	tus := map[string]string{
		"Tus-Resumable":   "1.0.0",
		"Upload-Length":   strconv.Itoa(photoLimit),
		"Upload-Metadata": "filename cGhvdG8uanBn,content_type aW1hZ2UvanBlZw==",
	}
	resp := send(http.MethodPost, "/v1/uploads/", nil, tus)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Resumable"))
	assert.Equal(t, "https://photos.example.com/v1/uploads/u-1", resp.Header.Get("Location"))
	s := <-got
	for k, v := range tus {
		assert.Equal(t, v, s.header.Get(k), k)
	}
	assert.Equal(t, "http", s.header.Get("X-Forwarded-Proto"))
	assert.Equal(t, strings.TrimPrefix(base, "http://"), s.header.Get("X-Forwarded-Host"))

	// A whole 25 MB photo in one PATCH reaches the instance.
	photo := bytes.Repeat([]byte{0xff}, photoLimit)
	resp = send(http.MethodPatch, "/v1/uploads/u-1", photo, map[string]string{
		"Tus-Resumable": "1.0.0",
		"Upload-Offset": "0",
		"Content-Type":  "application/offset+octet-stream",
	})
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, strconv.Itoa(photoLimit), resp.Header.Get("Upload-Offset"))
	s = <-got
	assert.Equal(t, int64(photoLimit), s.length)
	assert.Equal(t, "0", s.header.Get("Upload-Offset"))

	// Far more than a photo is refused by the proxy.
	resp = send(http.MethodPatch, "/v1/uploads/u-1", make([]byte, 40<<20), map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "0"})
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Empty(t, got, "the instance never saw it")
}
