package fieldsync_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// photoFiles lists what waits in a photo folder.
func photoFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(tb, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPhotos(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	ctx := context.Background()
	body := jpeg(200_000)
	taken := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	t.Run("bytes first, then the record, which the server marks uploaded", func(t *testing.T) {
		cfg := tm.config(t, "rep1", "phone-1")
		c := openClient(t, cfg)
		require.NoError(t, c.Put(ctx, schema.Visits, "v-photo-1", visit("c-1", "shelf photo")))
		require.NoError(t, c.AddPhoto(ctx, "ph-1", "v-photo-1", body, fieldsync.PhotoInfo{TakenAt: taken, Lat: ptr(52.52), Lng: ptr(13.405)}))
		photoDir := strings.TrimSuffix(cfg.StorePath, ".db") + "-photos" // the default
		assert.Equal(t, []string{sum(body)}, photoFiles(t, photoDir))
		require.NoError(t, c.Close())
		c = openClient(t, cfg) // the queue survives a restart
		n, err := c.Pending(ctx)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		rec, err := c.Get(ctx, schema.Photos, "ph-1")
		require.NoError(t, err)
		assert.True(t, rec.Pending)

		rep, err := c.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.PhotosUploaded)
		assert.Zero(t, rep.PhotosSkipped)
		assert.Equal(t, 2, rep.Applied)

		status, raw := tm.call(t, "GET", "/v1/media/"+sum(body), tm.login(t, "rep1", password("rep1")), nil)
		require.Equal(t, http.StatusOK, status)
		assert.Equal(t, body, raw, "the same bytes are on the server")
		rec, err = c.Get(ctx, schema.Photos, "ph-1")
		require.NoError(t, err)
		photo := decode[schema.Photo](t, rec)
		assert.True(t, photo.Uploaded)
		assert.Equal(t, sum(body), photo.SHA256)
		assert.Equal(t, int64(len(body)), photo.Size)
		assert.Equal(t, "image/jpeg", photo.ContentType, "sniffed")
		assert.Equal(t, taken, photo.TakenAt.UTC())
		assert.Equal(t, int64(1), rec.Version, "the record never came before its bytes")
		assert.Empty(t, photoFiles(t, photoDir), "uploaded bytes leave the device")
	})

	t.Run("bytes the server has are not sent again", func(t *testing.T) {
		c := tm.open(t, "rep1", "phone-2")
		file := filepath.Join(t.TempDir(), "IMG_0001.jpg")
		require.NoError(t, os.WriteFile(file, body, 0o600))
		require.NoError(t, c.Put(ctx, schema.Visits, "v-photo-2", visit("c-2", "same shelf")))
		require.NoError(t, c.AddPhotoFile(ctx, "ph-2", "v-photo-2", file, fieldsync.PhotoInfo{ContentType: "image/jpeg"}))
		rep, err := c.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.PhotosSkipped)
		assert.Zero(t, rep.PhotosUploaded)
		rec, err := c.Get(ctx, schema.Photos, "ph-2")
		require.NoError(t, err)
		assert.True(t, decode[schema.Photo](t, rec).Uploaded)
	})

	t.Run("a record waits while its bytes cannot be uploaded", func(t *testing.T) {
		faults := &faultyTransport{}
		c := tm.open(t, "rep1", "phone-3", faultyClient(faults))
		other := jpeg(10_000)
		require.NoError(t, c.Put(ctx, schema.Visits, "v-photo-3", visit("c-1", "flaky upload")))
		require.NoError(t, c.AddPhoto(ctx, "ph-3", "v-photo-3", other, fieldsync.PhotoInfo{}))
		faults.set(on("/v1/media/"+sum(other), answer503))
		rep, err := c.Sync(ctx)
		require.Error(t, err, "the upload failed")
		assert.Equal(t, 1, rep.Applied, "the visit went anyway")
		n, err := c.Pending(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "the photo's record waits")
		_, ok := tm.serverRecords(t)["photos/ph-3"]
		assert.False(t, ok, "the record is not pushed before its bytes")

		faults.set(nil)
		rep, err = c.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, rep.PhotosUploaded)
		assert.Equal(t, 1, rep.Applied)
		assert.Equal(t, true, tm.serverRecord(t, schema.Photos, "ph-3").Fields["uploaded"])
	})

	t.Run("bytes the server refuses refuse their record", func(t *testing.T) {
		c := tm.open(t, "rep1", "phone-4")
		require.NoError(t, c.Put(ctx, schema.Visits, "v-photo-4", visit("c-1", "wrong type")))
		require.NoError(t, c.AddPhoto(ctx, "ph-4", "v-photo-4", jpeg(5_000), fieldsync.PhotoInfo{ContentType: "image/png"}))
		rep, err := c.Sync(ctx)
		require.NoError(t, err)
		assert.Zero(t, rep.PhotosUploaded)
		rejections, err := c.Rejections(ctx)
		require.NoError(t, err)
		require.Len(t, rejections, 1)
		assert.Equal(t, "ph-4", rejections[0].ID)
		assert.Equal(t, schema.CodeValidationFailed, rejections[0].Error.Code)
		n, err := c.Pending(ctx)
		require.NoError(t, err)
		assert.Zero(t, n)
	})

	t.Run("a photo deleted before upload is never sent", func(t *testing.T) {
		cfg := tm.config(t, "rep1", "phone-5")
		cfg.PhotoDir = filepath.Join(t.TempDir(), "waiting")
		c := openClient(t, cfg)
		require.NoError(t, c.AddPhoto(ctx, "ph-5", "v-photo-1", jpeg(5_000), fieldsync.PhotoInfo{}))
		assert.Len(t, photoFiles(t, cfg.PhotoDir), 1)
		require.NoError(t, c.Delete(ctx, schema.Photos, "ph-5"))
		assert.Empty(t, photoFiles(t, cfg.PhotoDir))
		rep, err := c.Sync(ctx)
		require.NoError(t, err)
		assert.Zero(t, rep.Pushed+rep.PhotosUploaded+rep.PhotosSkipped)
	})
}
