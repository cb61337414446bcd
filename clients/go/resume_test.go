package fieldsync_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// A large photo over a link that drops every 256 kB goes through a
// resumable upload: each cut costs only the bytes in flight, the server
// ends up with exactly the photo, and its record turns uploaded.
func TestLargePhotoResumesAfterCuts(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	u, err := url.Parse(tm.URL)
	require.NoError(t, err)
	const every = 256 << 10
	link := servertest.StartCutProxy(t, u.Host, every)
	body := jpeg(1_500_000)
	c := tm.open(t, "rep1", "phone-cut", func(cfg *fieldsync.Config) {
		cfg.BaseURL = link.URL
		cfg.HTTPClient = &http.Client{} // fresh connections after each cut
		cfg.ResumableAbove = 500_000
		cfg.Retry.MaxAttempts = 10
	})
	require.NoError(t, c.Put(ctx, schema.Visits, "v-cut", visit("c-1", "a large photo on a poor link")))
	require.NoError(t, c.AddPhoto(ctx, "ph-cut", "v-cut", body, fieldsync.PhotoInfo{}))

	rep, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.PhotosUploaded)
	assert.GreaterOrEqual(t, link.Cuts(), int64(len(body)/every), "the link was cut while the photo went up")
	assert.Positive(t, rep.Resumes, "the upload went on after cuts")
	assert.Less(t, float64(link.Sent()), 1.3*float64(len(body)),
		"bytes sent up (%d) against the photo (%d): a resumed upload sends little more than the photo", link.Sent(), len(body))

	assertPhotoStored(t, tm, c, "ph-cut", body)
}

// An app closed in the middle of a resumable upload keeps the upload's
// address in its local store: reopened on the same store, the client asks
// the server how many bytes it holds and sends only the rest.
func TestPhotoUploadResumesAfterRestart(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	u, err := url.Parse(tm.URL)
	require.NoError(t, err)
	body := jpeg(2_000_000)
	// The cut comes at 40% of the photo, while the first app's single
	// attempt is under way.
	link := servertest.StartCutProxy(t, u.Host, 800_000)
	store := filepath.Join(t.TempDir(), "phone.db")
	onLink := func(attempts int) func(*fieldsync.Config) {
		return func(cfg *fieldsync.Config) {
			cfg.BaseURL = link.URL
			cfg.HTTPClient = &http.Client{} // fresh connections after each cut
			cfg.StorePath = store
			cfg.ResumableAbove = 500_000
			cfg.Retry.MaxAttempts = attempts
		}
	}

	first := tm.open(t, "rep1", "phone-restart", onLink(1))
	require.NoError(t, first.Put(ctx, schema.Visits, "v-restart", visit("c-1", "a large photo, the app closed midway")))
	require.NoError(t, first.AddPhoto(ctx, "ph-restart", "v-restart", body, fieldsync.PhotoInfo{}))
	rep, _ := first.Sync(ctx) // cut off, and the one attempt spent
	require.Zero(t, rep.PhotosUploaded, "the first app did not finish the photo")
	require.Equal(t, int64(1), link.Cuts(), "the first app's upload was cut")
	require.NoError(t, first.Close())

	// The bytes that were on their way when the link dropped may still be
	// reaching the upload; the second app starts once the server's offset
	// has settled, on a link that holds.
	link.Heal()
	held := settledOffset(t, tm, store)
	require.Greater(t, held, int64(len(body)/4), "the server kept the bytes the first app sent")

	before := link.Sent()
	second := tm.open(t, "rep1", "phone-restart", onLink(10))
	rep, err = second.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.PhotosUploaded)
	sent := link.Sent() - before
	assert.Less(t, sent, int64(len(body))-held+64<<10,
		"bytes sent up by the restarted app (%d) against the photo (%d) less what the server held (%d): it went on from the server's offset", sent, len(body), held)

	assertPhotoStored(t, tm, second, "ph-restart", body)
}

// settledOffset reads the address of the upload the app kept in its local
// store at path and asks the server for the upload's offset until two
// answers a moment apart agree.
func settledOffset(t *testing.T, tm *team, path string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var upload string
	require.NoError(t, db.QueryRow(`SELECT path FROM photo_uploads`).Scan(&upload), "the app kept the upload's address")
	token := tm.login(t, "rep1", password("rep1"))
	offset := func() int64 {
		req, err := http.NewRequest(http.MethodHead, tm.URL+upload, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		n, err := strconv.ParseInt(res.Header.Get("Upload-Offset"), 10, 64)
		require.NoError(t, err)
		return n
	}
	last := offset()
	for range 50 {
		time.Sleep(200 * time.Millisecond)
		now := offset()
		if now == last {
			return now
		}
		last = now
	}
	t.Fatalf("the upload's offset did not settle (last %d)", last)
	return 0
}

// assertPhotoStored checks that the server holds exactly body and that the
// client's photo record id turned uploaded.
func assertPhotoStored(t *testing.T, tm *team, c *fieldsync.Client, id string, body []byte) {
	t.Helper()
	status, raw := tm.call(t, "GET", "/v1/media/"+sum(body), tm.login(t, "rep1", password("rep1")), nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, body, raw, "the server has exactly the photo")
	rec, err := c.Get(context.Background(), schema.Photos, id)
	require.NoError(t, err)
	assert.True(t, decode[schema.Photo](t, rec).Uploaded)
}
