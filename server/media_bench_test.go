package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stretchr/testify/require"
)

// BenchmarkPhotoUpload compares uploading photos through fieldsync (PUT
// /v1/media/{sha256}, streamed and hashed on the way to MinIO) with
// minio-go's PutObject straight to the same MinIO server, in the same run:
//
//	go test -run '^$' -bench PhotoUpload -benchtime 20x ./server/
func BenchmarkPhotoUpload(b *testing.B) {
	for _, size := range []int{1 << 20, 8 << 20} {
		body := jpeg(size)
		b.Run(fmt.Sprintf("fieldsync/%dMiB", size>>20), func(b *testing.B) {
			f := newFieldTeam(b, minioBlobs(b))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				binary.BigEndian.PutUint64(body[16:], uint64(i)) // a new photo each time
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
		})
		b.Run(fmt.Sprintf("minio-go/%dMiB", size>>20), func(b *testing.B) {
			srv := minioServer.Start(b)
			client, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
			require.NoError(b, err)
			bucket := srv.Bucket(b)
			require.NoError(b, client.MakeBucket(context.Background(), bucket, minio.MakeBucketOptions{}))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := range b.N {
				binary.BigEndian.PutUint64(body[16:], uint64(i))
				_, err := client.PutObject(context.Background(), bucket, "photos/"+sum(body), bytes.NewReader(body), int64(size),
					minio.PutObjectOptions{ContentType: "image/jpeg"})
				require.NoError(b, err)
			}
		})
	}
}
