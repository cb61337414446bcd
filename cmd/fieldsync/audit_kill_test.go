package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/mongostore"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

// The real binary is killed with SIGKILL, again and again, while two
// writers push; after the last restart every version of every record has
// exactly one audit entry, on the embedded store and on MongoDB.
func TestAuditSurvivesKill9(t *testing.T) {
	tests := []struct {
		name  string
		env   func(t *testing.T) []string
		store func(t *testing.T, env []string, dir string) storetest.Store
	}{
		{"sqlite", func(*testing.T) []string { return nil }, func(t *testing.T, _ []string, dir string) storetest.Store {
			s, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "data", "fieldsync.db"))
			require.NoError(t, err)
			return s
		}},
		{"mongodb", func(t *testing.T) []string {
			return []string{"FIELDSYNC_MONGO_URI=" + ferretDatabase(t, "fieldsync_kill")}
		}, func(t *testing.T, env []string, _ string) storetest.Store {
			uri := strings.TrimPrefix(env[0], "FIELDSYNC_MONGO_URI=")
			s, err := mongostore.Open(context.Background(), uri)
			require.NoError(t, err)
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			env := append(tt.env(t), "FIELDSYNC_ADMIN_USER=admin", "FIELDSYNC_ADMIN_PASSWORD=admin-password-1")
			var acked atomic.Int64
			for round := range 6 {
				p := startBinary(t, dir, env...)
				base := "http://" + p.addr
				api := servertest.Connect(t, base)
				token := signIn(t, api, "admin", "admin-password-1")
				if round == 0 {
					c := client{api: api, token: token}
					for _, r := range c.push(t, mutation("t", "territories", "t-1", 0, map[string]any{"name": "North", "region": "EU"})) {
						require.Equal(t, schema.PushApplied, r.Status)
					}
				}
				var wg gosync.WaitGroup
				for w := range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						killWriter(base, token, fmt.Sprintf("r%d-w%d", round, w), &acked)
					}()
				}
				// The kill lands while writes go on, after at least one of
				// this round was acknowledged: on a loaded machine the first
				// writes against a fresh process can take a second or more.
				before := acked.Load()
				require.Eventually(t, func() bool { return acked.Load() > before }, time.Minute, 10*time.Millisecond, "a write acknowledged in round %d", round)
				time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
				require.NoError(t, p.cmd.Process.Kill())
				p.wait(t)
				wg.Wait()
			}
			// A last start runs the sweeper, which completes whatever a
			// store builds its audit collection from.
			p := startBinary(t, dir, env...)
			store := tt.store(t, env, dir)
			defer store.Close()
			require.Eventually(t, func() bool {
				_, err := store.SweepAudit(context.Background(), time.Time{})
				return err == nil
			}, 10*time.Second, 100*time.Millisecond)
			assert.Positive(t, acked.Load(), "writes were acknowledged between kills")
			storetest.AuditOfEveryVersion(t, store)
			require.NoError(t, p.cmd.Process.Kill())
			p.wait(t)
		})
	}
}

// killWriter updates ten customers over and over, as the server allows,
// until the server dies under it. It speaks HTTP by hand, not through the
// checked test client: a request that fails because the server was killed
// ends the writer and is no test failure.
func killWriter(base, token, prefix string, acked *atomic.Int64) {
	versions := map[string]int64{}
	for i := 0; ; i++ {
		id := fmt.Sprintf("c-%d", i%10)
		body, _ := json.Marshal(map[string]any{"device_id": "d", "mutations": []any{mutation(fmt.Sprintf("%s-%d", prefix, i), "customers", id, versions[id],
			map[string]any{"code": id, "name": fmt.Sprintf("%s %d", prefix, i), "territory_id": "t-1", "grade": "B"})}})
		req, _ := http.NewRequest("POST", base+"/v1/sync/push", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return
		}
		if resp.StatusCode == http.StatusTooManyRequests { // past the device's sync rate
			resp.Body.Close()
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			time.Sleep(time.Duration(max(secs, 1)) * time.Second)
			i--
			continue
		}
		var out schema.PushResponse
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || len(out.Results) != 1 {
			return
		}
		switch r := out.Results[0]; r.Status {
		case schema.PushApplied, schema.PushMerged:
			versions[id] = r.Version
			acked.Add(1)
		case schema.PushConflict:
			versions[id] = r.Record.Version
		}
	}
}
