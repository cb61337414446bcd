package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/deploy/nginxtest"
	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// startNginx runs deploy/nginx.conf, its upstreams pointed at addrs, on a
// loopback port, and returns its base URL.
func startNginx(t *testing.T, addrs ...string) string {
	t.Helper()
	return nginxtest.Start(t, "../../deploy/nginx.conf", addrs...)
}

// The stream passes through deploy/nginx.conf as it comes: ready at once,
// and a write through the proxy reaches it, whichever instance each lands
// on.
func TestStreamThroughNginx(t *testing.T) {
	sp := startStreamPair(t)
	base := startNginx(t, sp.procs[0].addr, sp.procs[1].addr)

	st := servertest.OpenStream(t, base, sp.rep2, "")
	require.Equal(t, http.StatusOK, st.Status, st.Body)
	ev, ok := st.Next(2 * time.Second)
	require.True(t, ok, "ready comes through at once, not buffered")
	require.Equal(t, "ready", ev.Name)
	settle(st)

	admin := client{api: servertest.Connect(t, base), token: sp.admin.token}
	for i := range 3 {
		id := fmt.Sprintf("c-n%d", i)
		r := admin.push(t, mutation("n-"+id, "customers", id, 0, map[string]any{"code": id, "name": "Shop", "territory_id": "t-2", "grade": "B"}))[0]
		require.Equal(t, schema.PushApplied, r.Status)
		ev, ok := st.Next(2 * time.Second)
		require.True(t, ok, "write %d comes through within 2 s", i)
		assert.Equal(t, "changes", ev.Name)
	}
}

// A resumable upload through deploy/nginx.conf in front of two instances
// sharing one data folder: opened, cut midway, its offset asked and the
// rest sent, each request landing on either instance. nginx passes the tus
// headers both ways, streams the cut PATCH's bytes to the instance as they
// come (so the bytes before the cut are kept), lets a multi-megabyte PATCH
// through, and the photo ends in the photo store under its content
// address.
func TestResumableUploadThroughNginx(t *testing.T) {
	sp := startStreamPair(t)
	base := startNginx(t, sp.procs[0].addr, sp.procs[1].addr)
	host := strings.TrimPrefix(base, "http://")
	api := servertest.Connect(t, base)
	token := sp.rep1
	photo := jpegBytes(3_000_000)
	sum := sha256.Sum256(photo)
	hash := hex.EncodeToString(sum[:])
	enc := base64.StdEncoding.EncodeToString

	// Creation: the announced length and metadata reach the instance, and
	// the upload's address names the proxy, not an instance.
	resp := tusCall(t, api, "POST", base+"/v1/uploads/", token, map[string]string{
		"Upload-Length":   strconv.Itoa(len(photo)),
		"Upload-Metadata": "sha256 " + enc([]byte(hash)) + ",content_type " + enc([]byte("image/jpeg")),
	}, nil)
	require.Equal(t, http.StatusCreated, resp.Status, string(resp.Raw))
	assert.Equal(t, "1.0.0", resp.Header.Get("Tus-Resumable"))
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, host, loc.Host, "Location names the address clients reach")
	assert.Equal(t, "http", loc.Scheme)
	upload := base + loc.Path

	// The link drops after 1.2 MB of a PATCH that announced the whole photo.
	const cut = 1_200_000
	conn, err := net.Dial("tcp", host)
	require.NoError(t, err)
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: %d\r\n\r\n", loc.Path, host, token, len(photo))
	require.NoError(t, err)
	_, err = conn.Write(photo[:cut])
	require.NoError(t, err)
	require.NoError(t, conn.(*net.TCPConn).CloseWrite())
	_, _ = io.Copy(io.Discard, conn) // whatever nginx answers, until it closes
	conn.Close()

	// The offset, asked through the proxy: the bytes that passed before the
	// cut are kept (a proxy that buffered request bodies would have sent
	// the instance nothing of a body that never ended).
	var offset int
	require.Eventually(t, func() bool {
		resp := tusCall(t, api, "HEAD", upload, token, nil, nil)
		if resp.Status != http.StatusOK {
			return false // the cut request may still hold the upload
		}
		offset, err = strconv.Atoi(resp.Header.Get("Upload-Offset"))
		return err == nil && resp.Header.Get("Upload-Length") == strconv.Itoa(len(photo)) && resp.Header.Get("Tus-Resumable") == "1.0.0"
	}, 20*time.Second, 100*time.Millisecond, "HEAD through nginx answers the offset and length")
	t.Logf("cut after %d bytes sent; the server holds %d", cut, offset)
	assert.Greater(t, offset, 0, "the bytes before the cut streamed through to the instance")
	assert.LessOrEqual(t, offset, cut)

	// The rest, in one PATCH through the proxy.
	resp = tusCall(t, api, "PATCH", upload, token, map[string]string{"Upload-Offset": strconv.Itoa(offset)}, photo[offset:])
	require.Equal(t, http.StatusNoContent, resp.Status, string(resp.Raw))
	assert.Equal(t, strconv.Itoa(len(photo)), resp.Header.Get("Upload-Offset"))

	// Stored under its content address, once, in the instances' photo
	// folder, and the upload forgotten.
	photos, err := filestore.Open(filepath.Join(sp.procs[0].cmd.Dir, "data", "photos"))
	require.NoError(t, err)
	var keys []string
	require.NoError(t, photos.List(context.Background(), "", func(b media.BlobInfo) error { keys = append(keys, b.Key); return nil }))
	assert.Equal(t, []string{media.Key(hash)}, keys, "the photo is stored once, under its content address")
	r, _, err := photos.Open(context.Background(), media.Key(hash))
	require.NoError(t, err)
	stored, err := io.ReadAll(r)
	r.Close()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(photo, stored), "the stored photo is the photo")
	resp = tusCall(t, api, "HEAD", upload, token, nil, nil)
	assert.Equal(t, http.StatusNotFound, resp.Status, "a stored upload is forgotten")
}
