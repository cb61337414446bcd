package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

// postJSON sends a JSON body with a bearer token through client and
// returns the answer's body, failing on any status but 200.
func postJSON(tb testing.TB, client *http.Client, url, token string, body []byte) []byte {
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	require.NoError(tb, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s: status %d: %s", url, resp.StatusCode, out)
	}
	return out
}

// BenchmarkOneRecordPush is one phone pushing one new closed visit at a
// time over HTTP to the real server on the embedded store: what a push of
// a single record costs end to end (push-ms/op). Where that time goes is
// read from a CPU profile of the same run:
//
//	go test -run '^$' -bench OneRecordPush -benchtime 2000x -cpuprofile push.prof ./server/
//	go tool pprof -top -cum -focus 'server.\(\*Server\)' server.test push.prof
func BenchmarkOneRecordPush(b *testing.B) {
	f := newFieldTeam(b, nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	bodies := make([][]byte, b.N)
	for i := range bodies {
		in := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
		v := map[string]any{"customer_id": "c-1",
			"check_in":  map[string]any{"at": in.Format(time.RFC3339), "lat": 52.52, "lng": 13.405},
			"check_out": map[string]any{"at": in.Add(20 * time.Second).Format(time.RFC3339), "lat": 52.52, "lng": 13.405}}
		body, err := json.Marshal(map[string]any{"device_id": "phone-1",
			"mutations": []any{mut(fmt.Sprintf("m-%d", i), "visits", fmt.Sprintf("vp-%d", i), 0, v)}})
		require.NoError(b, err)
		bodies[i] = body
	}
	b.ResetTimer()
	for i := range b.N {
		out := postJSON(b, client, f.ts.URL+"/v1/sync/push", f.rep1.Access, bodies[i])
		if !bytes.Contains(out, []byte(`"applied"`)) {
			b.Fatalf("push %d: %s", i, out)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "push-ms/op")
}

// BenchmarkFirstSyncPull is a rep's first sync of 3,000 customers over
// HTTP in pages of 500 (the page size the clients use), beside the raw
// store reading the same feed in pages of 500, the two alternating in
// one run: http-ms/op and store-ms/op are the times of one whole sync,
// ratio their quotient (1 would be HTTP costing nothing over the store).
// The HTTP client asks for no compression ("identity") or for gzip, as
// Go's transport does by default.
//
//	go test -run '^$' -bench FirstSyncPull -benchtime 10x ./server/
func BenchmarkFirstSyncPull(b *testing.B) {
	const customers, page = 3000, 500
	f := newFieldTeam(b, nil)
	var muts []map[string]any
	for i := range customers {
		muts = append(muts, mut(fmt.Sprintf("mc-%d", i), "customers", fmt.Sprintf("cb-%d", i), 0, map[string]any{
			"code": fmt.Sprintf("C%07d", i), "name": fmt.Sprintf("Outlet %d, Main Street", i), "territory_id": "t-1",
			"address": "12 Main Street, Springfield", "grade": "B", "lat": 52.52 + float64(i%100)/1000, "lng": 13.40,
			"credit_limit": 250000, "payment_terms_days": 30,
			"contacts": []any{map[string]any{"name": "Ana Owner", "role": "owner", "phone": "+49 30 1234567"}},
			"tags":     []any{"kiosk", "north"}}))
		if len(muts) == page {
			f.push(b, f.admin, muts...)
			muts = nil
		}
	}
	ctx := context.Background()
	tokens := schema.ReadTokens(schema.Principal{UserID: f.rep1.UserID, Role: schema.RoleRep, Territories: []string{"t-1"}})

	for _, mode := range []struct {
		name     string
		compress bool
	}{{"identity", false}, {"gzip", true}} {
		b.Run(mode.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{DisableCompression: !mode.compress}}
			overHTTP := func() int {
				n, checkpoint := 0, ""
				for {
					body, err := json.Marshal(schema.PullRequest{Checkpoint: checkpoint, Limit: page})
					require.NoError(b, err)
					var resp schema.PullResponse
					require.NoError(b, json.Unmarshal(postJSON(b, client, f.ts.URL+"/v1/sync/pull", f.rep1.Access, body), &resp))
					n += len(resp.Changes)
					if !resp.HasMore {
						return n
					}
					checkpoint = resp.Checkpoint
				}
			}
			fromStore := func() int {
				upto, err := f.ts.Store.Watermark(ctx)
				require.NoError(b, err)
				n := 0
				for after := int64(0); ; {
					changes, err := f.ts.Store.Changes(ctx, tokens, after, upto, page, 1<<20)
					require.NoError(b, err)
					n += len(changes)
					if len(changes) < page {
						return n
					}
					after = changes[len(changes)-1].Seq
				}
			}
			var viaHTTP, viaStore time.Duration
			timed := func(total *time.Duration, sync func() int) {
				start := time.Now()
				n := sync()
				*total += time.Since(start)
				if n < customers {
					b.Fatalf("synced %d records, want at least %d", n, customers)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					timed(&viaHTTP, overHTTP)
					timed(&viaStore, fromStore)
				} else {
					timed(&viaStore, fromStore)
					timed(&viaHTTP, overHTTP)
				}
			}
			b.ReportMetric(float64(viaHTTP.Microseconds())/1000/float64(b.N), "http-ms/op")
			b.ReportMetric(float64(viaStore.Microseconds())/1000/float64(b.N), "store-ms/op")
			b.ReportMetric(viaHTTP.Seconds()/viaStore.Seconds(), "ratio")
		})
	}
}
