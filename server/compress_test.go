package server_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

// encodedExchange sends a request as is, without the transport's own gzip
// handling, and returns the answer's bytes as they came on the wire.
func (ts *testServer) encodedExchange(tb testing.TB, method, path, token, acceptEncoding string, body []byte, contentEncoding string) response {
	tb.Helper()
	req, err := http.NewRequest(method, ts.URL+path, bytes.NewReader(body))
	require.NoError(tb, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
}

// decoded inflates an answer's body by its Content-Encoding.
func decoded(tb testing.TB, r response) []byte {
	tb.Helper()
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "":
		return r.Raw
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(r.Raw))
		require.NoError(tb, err)
		out, err := io.ReadAll(zr)
		require.NoError(tb, err)
		return out
	case "zstd":
		zr, err := zstd.NewReader(nil)
		require.NoError(tb, err)
		defer zr.Close()
		out, err := zr.DecodeAll(r.Raw, nil)
		require.NoError(tb, err)
		return out
	default:
		tb.Fatalf("unexpected Content-Encoding %q", enc)
		return nil
	}
}

func zstdBytes(tb testing.TB, parts ...[]byte) []byte {
	tb.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	require.NoError(tb, err)
	for _, p := range parts {
		_, err := w.Write(p)
		require.NoError(tb, err)
	}
	require.NoError(tb, w.Close())
	return buf.Bytes()
}

func TestPullAnswersAreCompressedWhenAccepted(t *testing.T) {
	f := newFieldTeam(t, nil)
	var muts []map[string]any
	for i := range 60 {
		id := fmt.Sprintf("t-many-%02d", i)
		muts = append(muts, mut("m-"+id, "territories", id, 0, map[string]any{"name": "Territory " + id, "region": "North"}))
	}
	f.push(t, f.admin, muts...)
	pull := []byte(`{"checkpoint":""}`)
	plain := f.ts.encodedExchange(t, "POST", "/v1/sync/pull", f.admin.Access, "", pull, "")
	require.Equal(t, http.StatusOK, plain.Status, string(plain.Raw))
	require.Greater(t, len(plain.Raw), 4<<10, "an answer worth compressing")

	tests := []struct {
		name   string
		accept string
		want   string // Content-Encoding
	}{
		{"no Accept-Encoding", "", ""},
		{"identity", "identity", ""},
		{"gzip", "gzip", "gzip"},
		{"zstd", "zstd", "zstd"},
		{"both, zstd preferred on a tie", "gzip, zstd", "zstd"},
		{"gzip weighted higher", "zstd;q=0.5, gzip", "gzip"},
		{"zstd refused", "zstd;q=0, gzip", "gzip"},
		{"any", "*", "zstd"},
		{"any but both refused", "*, zstd;q=0, gzip;q=0", ""},
		{"only unknown ones", "br, deflate", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.ts.encodedExchange(t, "POST", "/v1/sync/pull", f.admin.Access, tt.accept, pull, "")
			require.Equal(t, http.StatusOK, r.Status)
			assert.Equal(t, tt.want, r.Header.Get("Content-Encoding"))
			assert.Contains(t, r.Header.Values("Vary"), "Accept-Encoding")
			body := decoded(t, r)
			assert.JSONEq(t, string(plain.Raw), string(body))
			if tt.want != "" {
				assert.Less(t, len(r.Raw), len(plain.Raw)/4, "compressed %d of %d bytes", len(r.Raw), len(plain.Raw))
			}
		})
	}
}

func TestSmallAnswersAndPhotosAreNotCompressed(t *testing.T) {
	f := newFieldTeam(t, nil)
	t.Run("a small JSON answer", func(t *testing.T) {
		r := f.ts.encodedExchange(t, "GET", "/healthz", "", "zstd, gzip", nil, "")
		require.Equal(t, http.StatusOK, r.Status)
		assert.Empty(t, r.Header.Get("Content-Encoding"))
		assert.JSONEq(t, `{"status":"ok"}`, string(r.Raw))
	})
	t.Run("a small error", func(t *testing.T) {
		r := f.ts.encodedExchange(t, "POST", "/v1/sync/pull", f.admin.Access, "zstd, gzip", []byte(`{`), "")
		require.Equal(t, http.StatusBadRequest, r.Status)
		assert.Empty(t, r.Header.Get("Content-Encoding"))
		var body map[string]any
		require.NoError(t, json.Unmarshal(r.Raw, &body))
		assert.Contains(t, body, "error")
	})
	t.Run("photo bytes", func(t *testing.T) {
		// Compressible bytes under an image type: they still go out as they are.
		photo := append(jpeg(16), bytes.Repeat([]byte("a"), 64<<10)...)
		f.push(t, f.rep1, photoRecord("ph-1", photo))
		up := f.ts.upload(t, f.rep1.Access, sum(photo), "image/jpeg", bytes.NewReader(photo), int64(len(photo)))
		require.Equal(t, http.StatusCreated, up.Status, string(up.Raw))
		for _, accept := range []string{"zstd", "gzip", "zstd, gzip", "*"} {
			r := f.ts.encodedExchange(t, "GET", "/v1/media/"+sum(photo), f.rep1.Access, accept, nil, "")
			require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
			assert.Empty(t, r.Header.Get("Content-Encoding"), accept)
			assert.Equal(t, "image/jpeg", r.Header.Get("Content-Type"))
			assert.True(t, bytes.Equal(photo, r.Raw), "%s: the photo's bytes as stored", accept)
		}
	})
}

func TestLiveStreamIsNotCompressed(t *testing.T) {
	f := newFieldTeam(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", f.ts.URL+"/v1/sync/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.rep1.Access)
	req.Header.Set("Accept-Encoding", "zstd, gzip")
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Content-Encoding"))
	assert.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "event: ready\n", line, "the first event comes at once, as text")
}

func TestPushBodiesMayBeZstd(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")
	push := func(t *testing.T, body []byte, encoding string) response {
		t.Helper()
		return ts.encodedExchange(t, "POST", "/v1/sync/push", admin.Access, "", body, encoding)
	}

	t.Run("a zstd batch is applied", func(t *testing.T) {
		r := push(t, zstdBytes(t, []byte(inputBatch(inputTerritory("m-z", "t-z")))), "zstd")
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		var res struct{ Results []schema.PushResult }
		require.NoError(t, json.Unmarshal(r.Raw, &res))
		require.Len(t, res.Results, 1)
		assert.Equal(t, schema.PushApplied, res.Results[0].Status)
	})
	t.Run("a zstd bomb is refused whole", func(t *testing.T) {
		// 64 MB of JSON whitespace inside a valid batch: a few KB on the
		// wire, far over the body limit once inflated.
		parts := [][]byte{[]byte(`{"device_id":"d-1","mutations":[` + inputTerritory("m-bomb", "t-bomb"))}
		for range 64 {
			parts = append(parts, bytes.Repeat([]byte(" "), 1<<20))
		}
		bomb := zstdBytes(t, append(parts, []byte(`]}`))...)
		require.Less(t, len(bomb), 1<<20)
		r := push(t, bomb, "zstd")
		inputAssertError(t, r, http.StatusRequestEntityTooLarge, schema.CodePayloadTooLarge)
	})
	t.Run("bytes that are not zstd", func(t *testing.T) {
		r := push(t, []byte(inputBatch(inputTerritory("m-not", "t-not"))), "zstd")
		inputAssertError(t, r, http.StatusBadRequest, schema.CodeBadRequest)
	})
	t.Run("an unknown encoding", func(t *testing.T) {
		r := push(t, []byte(inputBatch(inputTerritory("m-br", "t-br"))), "br")
		inputAssertError(t, r, http.StatusUnsupportedMediaType, schema.CodeUnsupportedMedia)
	})
	state, _ := inputRecords(t, ts, admin.Access)
	assert.Contains(t, state, "territories/t-z")
	for _, id := range []string{"t-bomb", "t-not", "t-br"} {
		assert.NotContains(t, state, "territories/"+id, "nothing written")
	}
}
