package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/miniostore"
	"github.com/fieldsync/fieldsync/media/miniotest"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// fieldTeam is a server with two territories, a customer in each, and a
// rep for each, a manager of the first and an admin, all signed in.
type fieldTeam struct {
	ts                     *testServer
	admin, rep1, rep2, mgr session
}

func newFieldTeam(t testing.TB, blobs media.BlobStore) *fieldTeam {
	t.Helper()
	return newFieldTeamOn(t, startServerWith(t, blobs))
}

// newFieldTeamOn sets the team up on a running server.
func newFieldTeamOn(t testing.TB, ts *testServer) *fieldTeam {
	t.Helper()
	f := &fieldTeam{ts: ts, admin: ts.login(t, adminName, adminPassword, "laptop")}
	ts.createUser(t, f.admin, map[string]any{"username": "rep1", "password": "rep1-password", "role": "rep", "territories": []string{"t-1"}})
	ts.createUser(t, f.admin, map[string]any{"username": "rep2", "password": "rep2-password", "role": "rep", "territories": []string{"t-2"}})
	ts.createUser(t, f.admin, map[string]any{"username": "mgr", "password": "mgr-password", "role": "manager", "territories": []string{"t-1"}})
	f.rep1 = ts.login(t, "rep1", "rep1-password", "phone-1")
	f.rep2 = ts.login(t, "rep2", "rep2-password", "phone-2")
	f.mgr = ts.login(t, "mgr", "mgr-password", "laptop-m")
	f.push(t, f.admin,
		mut("t-1", "territories", "t-1", 0, map[string]any{"name": "One", "region": "R"}),
		mut("t-2", "territories", "t-2", 0, map[string]any{"name": "Two", "region": "R"}),
		mut("c-1", "customers", "c-1", 0, map[string]any{"code": "C1", "name": "Shop 1", "territory_id": "t-1", "grade": "A", "lat": 52.52, "lng": 13.405}),
		mut("c-2", "customers", "c-2", 0, map[string]any{"code": "C2", "name": "Shop 2", "territory_id": "t-2", "grade": "A"}))
	f.push(t, f.rep1, mut("v-1", "visits", "v-1", 0, map[string]any{"customer_id": "c-1",
		"check_in": map[string]any{"at": "2026-11-23T09:00:00Z", "lat": 52.52, "lng": 13.405}}))
	return f
}

func mut(mid, coll, id string, base int64, data any) map[string]any {
	return map[string]any{"mutation_id": mid, "collection": coll, "id": id, "op": "upsert", "base_version": base, "data": data}
}

// push sends mutations and requires each applied; it returns the versions.
func (f *fieldTeam) push(t testing.TB, s session, muts ...map[string]any) []float64 {
	t.Helper()
	r := f.ts.call(t, "POST", "/v1/sync/push", s.Access, map[string]any{"device_id": "d", "mutations": muts})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	var versions []float64
	for _, res := range r.Body["results"].([]any) {
		m := res.(map[string]any)
		require.Equal(t, "applied", m["status"], "%v", m)
		versions = append(versions, m["version"].(float64))
	}
	return versions
}

// photoRecord is the photos record of a photo's bytes on visit v-1.
func photoRecord(id string, body []byte) map[string]any {
	return mut("m-"+id, "photos", id, 0, map[string]any{"visit_id": "v-1", "sha256": sum(body), "content_type": "image/jpeg",
		"size": len(body), "taken_at": "2026-11-23T09:05:00Z", "lat": 52.52, "lng": 13.405})
}

// jpeg returns n bytes that start like a JPEG and are otherwise random.
func jpeg(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, 'J', 'F', 'I', 'F', 0})
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// upload PUTs bytes under a hash.
func (ts *testServer) upload(t *testing.T, token, hash, contentType string, body io.Reader, size int64) response {
	t.Helper()
	req, err := http.NewRequest("PUT", ts.URL+"/v1/media/"+hash, body)
	require.NoError(t, err)
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := ts.HTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	json.Unmarshal(raw, &r.Body)
	return r
}

func (ts *testServer) stored(t *testing.T, token, hash string) int {
	t.Helper()
	return ts.call(t, "HEAD", "/v1/media/"+hash, token, nil).Status
}

// photoState pulls the photo record as the rep sees it.
func (f *fieldTeam) photoState(t *testing.T, id string) (version float64, data map[string]any) {
	t.Helper()
	r := f.ts.call(t, "POST", "/v1/sync/pull", f.rep1.Access, map[string]any{"checkpoint": ""})
	require.Equal(t, http.StatusOK, r.Status)
	for _, ch := range r.Body["changes"].([]any) {
		env := ch.(map[string]any)
		if env["collection"] == "photos" && env["id"] == id {
			return env["version"].(float64), env["data"].(map[string]any)
		}
	}
	t.Fatalf("photo %s not pulled", id)
	return 0, nil
}

func TestPhotos(t *testing.T) {
	for _, store := range []struct {
		name  string
		blobs func(t *testing.T) media.BlobStore
	}{
		{"folder", func(t *testing.T) media.BlobStore { return nil }},
		{"minio", func(t *testing.T) media.BlobStore { return minioBlobs(t) }},
	} {
		t.Run(store.name, func(t *testing.T) { testPhotos(t, store.blobs(t)) })
	}
}

func testPhotos(t *testing.T, blobs media.BlobStore) {
	f := newFieldTeam(t, blobs)
	ts := f.ts

	t.Run("record first, then bytes", func(t *testing.T) {
		body := jpeg(300_000)
		f.push(t, f.rep1, photoRecord("ph-1", body))
		v, data := f.photoState(t, "ph-1")
		assert.Equal(t, float64(1), v)
		assert.Equal(t, false, data["uploaded"])
		assert.Equal(t, "phone-1", data["device_id"], "the device of the login, not of the body")

		assert.Equal(t, http.StatusNotFound, ts.stored(t, f.rep1.Access, sum(body)))
		r := ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
		assert.Equal(t, http.StatusOK, ts.stored(t, f.rep1.Access, sum(body)))
		v, data = f.photoState(t, "ph-1")
		assert.Equal(t, float64(2), v, "the arrival is a new version")
		assert.Equal(t, true, data["uploaded"])

		r = ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		assert.Equal(t, http.StatusOK, r.Status, "already stored")

		got := ts.call(t, "GET", "/v1/media/"+sum(body), f.rep1.Access, nil)
		require.Equal(t, http.StatusOK, got.Status)
		assert.Equal(t, body, got.Raw, "the same bytes come back")
		assert.Equal(t, "image/jpeg", got.Header.Get("Content-Type"))
		assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/media/"+sum(body), f.mgr.Access, nil).Status, "the territory's manager")
		assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/media/"+sum(body), f.admin.Access, nil).Status, "an admin")
		other := ts.call(t, "GET", "/v1/media/"+sum(body), f.rep2.Access, nil)
		assert.Equal(t, http.StatusNotFound, other.Status, "another territory's rep")
		assert.Equal(t, "not_found", other.ErrorCode())
	})

	t.Run("bytes first, then record", func(t *testing.T) {
		body := jpeg(50_000)
		r := ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
		assert.Equal(t, http.StatusNotFound, ts.call(t, "GET", "/v1/media/"+sum(body), f.rep1.Access, nil).Status,
			"nobody may read bytes no record names")
		f.push(t, f.rep1, photoRecord("ph-2", body))
		v, data := f.photoState(t, "ph-2")
		assert.Equal(t, float64(1), v)
		assert.Equal(t, true, data["uploaded"])
		assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/media/"+sum(body), f.rep1.Access, nil).Status)
	})

	t.Run("refused uploads keep nothing", func(t *testing.T) {
		body := jpeg(40_000)
		png := append([]byte{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}, jpeg(1000)[8:]...)
		tests := []struct {
			name, hash, contentType string
			body                    []byte
			status                  int
			code                    string
		}{
			{"hash mismatch", sum([]byte("other")), "image/jpeg", body, 422, "hash_mismatch"},
			{"bytes are not the declared type", sum(png), "image/jpeg", png, 422, "validation_failed"},
			{"content type not a photo", sum(body), "application/pdf", body, 415, "unsupported_media_type"},
			{"no content type", sum(body), "", body, 415, "unsupported_media_type"},
			{"not a hash", "abc", "image/jpeg", body, 400, "bad_request"},
			{"upper-case hash", "A" + sum(body)[1:], "image/jpeg", body, 400, "bad_request"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := ts.upload(t, f.rep1.Access, tt.hash, tt.contentType, bytes.NewReader(tt.body), int64(len(tt.body)))
				assert.Equal(t, tt.status, r.Status, string(r.Raw))
				assert.Equal(t, tt.code, r.ErrorCode())
				if schema.ValidSHA256(tt.hash) {
					assert.Equal(t, http.StatusNotFound, ts.stored(t, f.rep1.Access, tt.hash), "nothing kept")
				} else {
					assert.Equal(t, http.StatusBadRequest, ts.stored(t, f.rep1.Access, tt.hash), "HEAD checks the hash as PUT does")
				}
			})
		}
		assert.Equal(t, http.StatusNotFound, ts.stored(t, f.rep1.Access, sum(body)))
	})

	t.Run("over the size limit", func(t *testing.T) {
		body := jpeg(25_000_001)
		r := ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.Status)
		assert.Equal(t, "payload_too_large", r.ErrorCode())
		r = ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", io.MultiReader(bytes.NewReader(body)), -1)
		assert.Equal(t, http.StatusRequestEntityTooLarge, r.Status, "also when the length is not said")
		assert.Equal(t, http.StatusNotFound, ts.stored(t, f.rep1.Access, sum(body)))
	})

	t.Run("who may upload", func(t *testing.T) {
		body := jpeg(1000)
		r := ts.upload(t, f.mgr.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		assert.Equal(t, http.StatusForbidden, r.Status)
		r = ts.upload(t, "", sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		assert.Equal(t, http.StatusUnauthorized, r.Status)
	})

	t.Run("an upload cut off half way leaves nothing and can be sent again", func(t *testing.T) {
		body := jpeg(2_000_000)
		addr := ts.URL[len("http://"):]
		conn, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		fmt.Fprintf(conn, "PUT /v1/media/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n",
			sum(body), f.rep1.Access, len(body))
		_, err = conn.Write(body[:len(body)/2])
		require.NoError(t, err)
		conn.Close()
		time.Sleep(300 * time.Millisecond)
		assert.Equal(t, http.StatusNotFound, ts.stored(t, f.rep1.Access, sum(body)), "nothing visible")
		r := ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		assert.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	})

	t.Run("two devices upload the same photo at once", func(t *testing.T) {
		body := jpeg(3_000_000)
		var wg gosync.WaitGroup
		statuses := make([]int, 2)
		for i, s := range []session{f.rep1, f.rep2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses[i] = ts.upload(t, s.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body))).Status
			}()
		}
		wg.Wait()
		for _, s := range statuses {
			assert.Contains(t, []int{http.StatusCreated, http.StatusOK}, s)
		}
		f.push(t, f.rep1, photoRecord("ph-twice", body))
		got := ts.call(t, "GET", "/v1/media/"+sum(body), f.rep1.Access, nil)
		assert.Equal(t, body, got.Raw)
	})

	t.Run("missing photos report", func(t *testing.T) {
		body := jpeg(10_000)
		f.push(t, f.rep1, photoRecord("ph-never", body))
		r := ts.call(t, "GET", "/v1/reports/photos/missing", f.mgr.Access, nil)
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		missing := r.Body["missing"].([]any)
		require.Len(t, missing, 1)
		group := missing[0].(map[string]any)
		assert.Equal(t, "phone-1", group["device_id"])
		assert.Equal(t, float64(1), group["count"])
		assert.Equal(t, "ph-never", group["photos"].([]any)[0].(map[string]any)["id"])
		assert.Equal(t, http.StatusForbidden, ts.call(t, "GET", "/v1/reports/photos/missing", f.rep1.Access, nil).Status)

		r = ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
		require.Equal(t, http.StatusCreated, r.Status)
		r = ts.call(t, "GET", "/v1/reports/photos/missing", f.mgr.Access, nil)
		assert.Empty(t, r.Body["missing"], "not missing once the bytes arrive")
	})
}

// A 25 MB upload passes through the server without the server holding it:
// its heap grows by a few MB at most.
func TestUploadMemoryStaysFlat(t *testing.T) {
	f := newFieldTeam(t, nil)
	body := jpeg(25_000_000)
	hash := sum(body)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// The sampler owns its peak and hands it over when told to stop.
	done, peaks := make(chan struct{}), make(chan uint64)
	go func() {
		peak := before.HeapInuse
		for {
			select {
			case <-done:
				peaks <- peak
				return
			case <-time.After(2 * time.Millisecond):
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				peak = max(peak, m.HeapInuse)
			}
		}
	}()
	// The body is read from a pipe so that the client holds no copy either
	// beyond the test's own.
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(body); off += 64 << 10 {
			pw.Write(body[off:min(off+64<<10, len(body))])
		}
		pw.Close()
	}()
	r := f.ts.upload(t, f.rep1.Access, hash, "image/jpeg", pr, int64(len(body)))
	close(done)
	peak := <-peaks
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	runtime.ReadMemStats(&after)
	growth := float64(peak-before.HeapInuse) / (1 << 20)
	t.Logf("heap in use before %.1f MiB, peak %.1f MiB (+%.1f MiB) for a 25 MB upload",
		float64(before.HeapInuse)/(1<<20), float64(peak)/(1<<20), growth)
	assert.Less(t, growth, 8.0, "the heap grows by a few MB, not by the photo")
}

// With redirects on, a reader of a photo gets a short-lived URL of MinIO
// itself; anyone else still gets 404.
func TestPhotoRedirects(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{AdminPassword: adminPassword, Blobs: minioBlobs(t), PhotoRedirect: time.Minute})
	f := newFieldTeamOn(t, &testServer{URL: srv.URL, Dir: srv.Dir, Secret: srv.Secret, Store: srv.Store, client: srv.Client(), HTTP: srv.HTTP})
	body := jpeg(200_000)
	f.push(t, f.rep1, photoRecord("ph-r", body))
	r := f.ts.upload(t, f.rep1.Access, sum(body), "image/jpeg", bytes.NewReader(body), int64(len(body)))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))

	noRedirects := &http.Client{Transport: srv.HTTP.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest("GET", f.ts.URL+"/v1/media/"+sum(body), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+f.rep1.Access)
	resp, err := noRedirects.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusFound, resp.StatusCode)
	location := resp.Header.Get("Location")
	assert.Contains(t, location, "X-Amz-Signature=", "a presigned URL")

	got, err := http.Get(location) // no credentials of ours
	require.NoError(t, err)
	defer got.Body.Close()
	raw, err := io.ReadAll(got.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, got.StatusCode)
	assert.Equal(t, body, raw, "the URL serves the bytes")

	assert.Equal(t, http.StatusNotFound, f.ts.call(t, "GET", "/v1/media/"+sum(body), f.rep2.Access, nil).Status,
		"no URL for a caller who may not read the photo")
}

// A photo store that is down answers 503 unavailable with Retry-After on
// every photo endpoint, as api.md promises, never 500.
func TestPhotoStoreOutage(t *testing.T) {
	srv := miniotest.Start(t) // its own server: stopping the shared one would break the other tests
	blobs, err := miniostore.New(context.Background(), miniostore.Config{
		Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: srv.Bucket(t)})
	require.NoError(t, err)
	f := newFieldTeam(t, blobs)
	stored := jpeg(50_000)
	f.push(t, f.rep1, photoRecord("ph-1", stored))
	r := f.ts.upload(t, f.rep1.Access, sum(stored), "image/jpeg", bytes.NewReader(stored), int64(len(stored)))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))

	srv.Stop()
	fresh := jpeg(50_000)
	for name, call := range map[string]func() response{
		"PUT": func() response {
			return f.ts.upload(t, f.rep1.Access, sum(fresh), "image/jpeg", bytes.NewReader(fresh), int64(len(fresh)))
		},
		"HEAD": func() response { return f.ts.call(t, "HEAD", "/v1/media/"+sum(stored), f.rep1.Access, nil) },
		"GET":  func() response { return f.ts.call(t, "GET", "/v1/media/"+sum(stored), f.rep1.Access, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			r := call()
			assert.Equal(t, http.StatusServiceUnavailable, r.Status, string(r.Raw))
			assert.Equal(t, "5", r.Header.Get("Retry-After"))
			if name != "HEAD" {
				assert.Equal(t, "unavailable", r.ErrorCode())
				assert.NotContains(t, string(r.Raw), srv.Endpoint, "no driver message reaches the client")
			}
		})
	}
	ready := f.ts.call(t, "GET", "/readyz", "", nil)
	assert.Equal(t, http.StatusServiceUnavailable, ready.Status)
}
