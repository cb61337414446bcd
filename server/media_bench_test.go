package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"
)

// BenchmarkPhotoUpload compares uploading photos through fieldsync (PUT
// /v1/media/{sha256}, streamed and hashed on the way to MinIO) with
// minio-go's PutObject straight to the same MinIO server. Each iteration
// does one of each, in alternating order, so that both meet the same load
// on a shared machine; it reports both times and their ratio (fieldsync's
// throughput over minio-go's: 1 is as fast as PutObject):
//
//	go test -run '^$' -bench PhotoUpload -benchtime 20x ./server/
func BenchmarkPhotoUpload(b *testing.B) {
	minioServer.Start(b) // without MinIO: skip (or fail under CI=true) once, saying why
	for _, size := range []int{1 << 20, 8 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			f := newFieldTeam(b, minioBlobs(b))
			srv := minioServer.Start(b)
			client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
			require.NoError(b, err)
			bucket := srv.Bucket(b)
			require.NoError(b, client.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}))
			body := jpeg(size)
			throughFieldsync := func(i int) {
				binary.BigEndian.PutUint64(body[16:], uint64(2*i)) // a new photo each time
				req, err := http.NewRequest("PUT", f.ts.URL+"/v1/media/"+sum(body), bytes.NewReader(body))
				require.NoError(b, err)
				req.Header.Set("Authorization", "Bearer "+f.rep1.Access)
				req.Header.Set("Content-Type", "image/jpeg")
				resp, err := http.DefaultClient.Do(req)
				require.NoError(b, err)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			straightToMinIO := func(i int) {
				binary.BigEndian.PutUint64(body[16:], uint64(2*i+1))
				_, err := client.PutObject(context.Background(), bucket, "photos/"+sum(body), bytes.NewReader(body), int64(size),
					minio.PutObjectOptions{ContentType: "image/jpeg"})
				require.NoError(b, err)
			}
			var fieldsync, direct time.Duration
			timed := func(total *time.Duration, upload func(int), i int) {
				start := time.Now()
				upload(i)
				*total += time.Since(start)
			}
			b.SetBytes(int64(2 * size)) // both uploads of an iteration
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					timed(&fieldsync, throughFieldsync, i)
					timed(&direct, straightToMinIO, i)
				} else {
					timed(&direct, straightToMinIO, i)
					timed(&fieldsync, throughFieldsync, i)
				}
			}
			b.ReportMetric(float64(fieldsync)/float64(time.Millisecond)/float64(b.N), "fieldsync-ms/op")
			b.ReportMetric(float64(direct)/float64(time.Millisecond)/float64(b.N), "minio-go-ms/op")
			b.ReportMetric(direct.Seconds()/fieldsync.Seconds(), "ratio")
		})
	}
}
