package fieldsync_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// BenchmarkResumedUpload sends a 5 MB photo over a link that cuts every
// 1 MB sent up, through a resumable upload (tus) and, as the baseline in
// the same run, through a PUT that starts again from zero after each cut.
// It reports the bytes sent up per byte of photo (sent/photo) and the
// cuts. On the link that cuts exactly every 1 MB a PUT of 5 MB can never
// get through: the baseline runs on a link whose cuts come at random, 1 MB
// apart on average, where the resumable upload runs too.
//
//	go test ./clients/go -run '^$' -bench BenchmarkResumedUpload -benchtime 3x -count 3
func BenchmarkResumedUpload(b *testing.B) {
	const photoSize, cutEvery = 5_000_000, 1_000_000
	tm := newTeam(b)
	u, err := url.Parse(tm.URL)
	require.NoError(b, err)
	for _, bc := range []struct {
		name      string
		resumable bool
		random    bool
	}{
		{"link=every-1MB/client=resumable", true, false},
		{"link=random-1MB/client=resumable", true, true},
		{"link=random-1MB/client=restart-from-zero", false, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var sent, cuts int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				var link *servertest.CutProxy
				if bc.random {
					link = servertest.StartRandomCutProxy(b, u.Host, cutEvery, uint64(i+1))
				} else {
					link = servertest.StartCutProxy(b, u.Host, cutEvery)
				}
				c := tm.open(b, "rep1", "bench-phone", func(cfg *fieldsync.Config) {
					cfg.BaseURL = link.URL
					cfg.HTTPClient = &http.Client{}
					cfg.Retry = fieldsync.RetryPolicy{MaxAttempts: 2000, BaseDelay: 1, MaxDelay: 1}
					cfg.ResumableAbove = 1 << 20
					if !bc.resumable {
						cfg.ResumableAbove = -1
					}
				})
				ctx := context.Background()
				require.NoError(b, c.Put(ctx, schema.Visits, "v-bench", visit("c-1", "benchmark")))
				_, err := c.Sync(ctx) // the visit, outside the measure
				require.NoError(b, err)
				photo := jpeg(photoSize)
				require.NoError(b, c.AddPhoto(ctx, "ph-bench", "v-bench", photo, fieldsync.PhotoInfo{}))
				before, cutsBefore := link.Sent(), link.Cuts()
				b.StartTimer()
				rep, err := c.Sync(ctx)
				b.StopTimer()
				require.NoError(b, err)
				require.Equal(b, 1, rep.PhotosUploaded)
				sent += link.Sent() - before
				cuts += link.Cuts() - cutsBefore
				require.NoError(b, c.Close())
			}
			b.ReportMetric(float64(sent)/float64(b.N*photoSize), "sent/photo")
			b.ReportMetric(float64(cuts)/float64(b.N), "cuts/op")
		})
	}
}
