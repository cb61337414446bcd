package fieldsync_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

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

	status, raw := tm.call(t, "GET", "/v1/media/"+sum(body), tm.login(t, "rep1", password("rep1")), nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, body, raw, "the server has exactly the photo")
	rec, err := c.Get(ctx, schema.Photos, "ph-cut")
	require.NoError(t, err)
	assert.True(t, decode[schema.Photo](t, rec).Uploaded)
}
