package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
	"github.com/fieldsync/fieldsync/media/phototest"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
	"github.com/fieldsync/fieldsync/sync/storetest"
)

func mutation(id string, c schema.Collection, rid string, base int64, data any) json.RawMessage {
	raw, err := json.Marshal(map[string]any{"mutation_id": id, "collection": c, "id": rid, "op": "upsert", "base_version": base, "data": data})
	if err != nil {
		panic(err)
	}
	return raw
}

// ack is a write the server acknowledged, and when.
type ack struct {
	key     string
	version int64
	at      time.Time
}

// A backup taken while writers push, restored into a new folder: the
// restored store holds exactly the original's state at the backup's
// watermark, every acknowledged write from before the backup, and every
// photo with bytes that match its hash; by either method of copying the
// store.
func TestBackupWhileWritersPush(t *testing.T) {
	for _, method := range []backup.Method{backup.PageCopy, backup.VacuumInto} {
		t.Run(string(method), func(t *testing.T) { backupWhileWritersPush(t, method) })
	}
}

func backupWhileWritersPush(t *testing.T, method backup.Method) {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.Options{})
	adminUser, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(t, err)
	admin := adminUser.Principal("laptop", "l-1")
	resp, err := srv.Engine.Push(ctx, admin, &schema.PushRequest{Mutations: []json.RawMessage{
		mutation("t", schema.Territories, "t-1", 0, map[string]any{"name": "North", "region": "EU"})}})
	require.NoError(t, err)
	require.Equal(t, schema.PushApplied, resp.Results[0].Status)

	token := signIn(t, srv.URL)
	var hashes []string
	for i := range 5 {
		body := phototest.PlainJPEG(t, phototest.Segment(t, 0xFE, []byte(fmt.Sprintf("shelf %d", i))))
		sum := sha256.Sum256(body)
		h := hex.EncodeToString(sum[:])
		req, err := http.NewRequest("PUT", srv.URL+"/v1/media/"+h, bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "image/jpeg")
		req.Header.Set("Authorization", "Bearer "+token)
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		r.Body.Close()
		require.Equal(t, http.StatusCreated, r.StatusCode)
		hashes = append(hashes, h)
	}

	var (
		mu     gosync.Mutex
		acks   []ack
		stop   atomic.Bool
		wg     gosync.WaitGroup
		writes atomic.Int64
	)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			versions := map[string]int64{}
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("c-%d-%d", w, i%20)
				data := map[string]any{"code": id, "name": fmt.Sprintf("Shop %d", i), "territory_id": "t-1", "grade": "B"}
				resp, err := srv.Engine.Push(ctx, admin, &schema.PushRequest{Mutations: []json.RawMessage{
					mutation(fmt.Sprintf("m-%d-%d", w, i), schema.Customers, id, versions[id], data)}})
				if !assert.NoError(t, err) || !assert.Equal(t, schema.PushApplied, resp.Results[0].Status) {
					return
				}
				versions[id] = resp.Results[0].Version
				writes.Add(1)
				mu.Lock()
				acks = append(acks, ack{"customers/" + id, versions[id], time.Now()})
				mu.Unlock()
			}
		}()
	}
	for writes.Load() < 50 {
		time.Sleep(5 * time.Millisecond)
	}
	started := time.Now()
	out := filepath.Join(t.TempDir(), "fieldsync.backup")
	m, err := backup.BackupWith(ctx, method, srv.Store, srv.Dir, out)
	require.NoError(t, err)
	for n := writes.Load(); writes.Load() < n+50; {
		time.Sleep(5 * time.Millisecond) // writers go on after the backup too
	}
	stop.Store(true)
	wg.Wait()
	assert.Equal(t, 5, m.Photos)

	restored := filepath.Join(t.TempDir(), "restored")
	require.NoError(t, backup.Restore(ctx, out, restored))
	rs, err := sqlitestore.Open(ctx, filepath.Join(restored, backup.DatabaseName))
	require.NoError(t, err)
	defer rs.Close()
	wm, err := rs.Watermark(ctx)
	require.NoError(t, err)
	assert.Equal(t, m.Watermark+backup.RestoreFeedGap, wm, "the restored feed goes on past any checkpoint of the lost store")

	// A full admin pull from the restored data, through an engine with the
	// restored secret.
	secret, err := server.LoadSecret(restored, "")
	require.NoError(t, err)
	assert.Equal(t, srv.Secret, secret, "the signing secret came along")
	eng, err := sync.New(sync.Config{Store: rs, Secret: secret, Logger: servertest.Logger()})
	require.NoError(t, err)
	pulled := storetest.Replica{}
	storetest.PullAll(t, eng, admin, "", 500, pulled)

	// The original at the backup's watermark: the records whose latest
	// write is at or below it are unchanged since and must come back as
	// they are; the others must come back at an earlier version, or not
	// at all if created after.
	atBackup := storetest.Replica{}
	var all []string
	for _, c := range schema.Collections() {
		all = append(all, string(c)+"|all")
	}
	now := storetest.Readable(t, srv.Store, admin)
	for after := int64(0); ; {
		chs, err := srv.Store.Changes(ctx, all, after, m.Watermark, 1000, 0)
		require.NoError(t, err)
		for _, ch := range chs {
			if !ch.Record.Deleted {
				atBackup[string(ch.Record.Collection)+"/"+ch.Record.ID] = ch.Record.Version
			}
		}
		if len(chs) < 1000 {
			break
		}
		after = chs[len(chs)-1].Seq
	}
	for key, v := range atBackup {
		assert.Equal(t, v, pulled[key], "%s unchanged since the backup", key)
	}
	for key, v := range pulled {
		if _, ok := atBackup[key]; !ok {
			assert.Less(t, v, now[key], "%s changed after the backup: older in it", key)
		}
	}
	for _, a := range acks {
		if a.at.Before(started) {
			assert.GreaterOrEqual(t, pulled[a.key], a.version, "%s acknowledged before the backup", a.key)
		}
	}
	assert.LessOrEqual(t, len(pulled), len(now))
	storetest.AuditOfEveryVersion(t, rs)

	// A device that pulled the lost store past the backup's watermark
	// still gets what is written to the restored one.
	cp := storetest.PullAll(t, srv.Engine, admin, "", 500, storetest.Replica{})
	rsp, err := eng.Push(ctx, admin, &schema.PushRequest{Mutations: []json.RawMessage{
		mutation("after-restore", schema.Customers, "c-new", 0, map[string]any{"code": "NEW", "name": "New", "territory_id": "t-1", "grade": "A"})}})
	require.NoError(t, err)
	require.Equal(t, schema.PushApplied, rsp.Results[0].Status)
	later := storetest.Replica{}
	storetest.PullAll(t, eng, admin, cp, 500, later)
	assert.Equal(t, int64(1), later["customers/c-new"])

	// Photos, intact by hash, read through the photo folder's own store.
	photos, err := filestore.Open(filepath.Join(restored, backup.PhotosDir))
	require.NoError(t, err)
	found := map[string]bool{}
	require.NoError(t, photos.List(ctx, "", func(info media.BlobInfo) error {
		rc, _, err := photos.Open(ctx, info.Key)
		require.NoError(t, err)
		defer rc.Close()
		h := sha256.New()
		_, err = io.Copy(h, rc)
		require.NoError(t, err)
		assert.Equal(t, media.Key(hex.EncodeToString(h.Sum(nil))), info.Key, "bytes match their hash")
		found[path.Base(info.Key)] = true
		return nil
	}))
	for _, h := range hashes {
		assert.True(t, found[h], "photo %s restored", h)
	}

	t.Run("restore refuses a folder that is not empty", func(t *testing.T) {
		err := backup.Restore(ctx, out, restored)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not empty")
	})
	t.Run("restore refuses what is no backup, and leaves nothing", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad")
		require.NoError(t, os.WriteFile(bad, []byte("not an archive"), 0o600))
		dir := filepath.Join(t.TempDir(), "into")
		require.Error(t, backup.Restore(ctx, bad, dir))
		entries, _ := os.ReadDir(dir)
		assert.Empty(t, entries)
	})
	t.Run("export from the restored store", func(t *testing.T) {
		for _, format := range []string{backup.FormatJSONL, backup.FormatCSV} {
			dir := t.TempDir()
			counts, err := backup.Export(ctx, rs, dir, format)
			require.NoError(t, err)
			total := 0
			for _, c := range schema.Collections() {
				data, err := os.ReadFile(filepath.Join(dir, string(c)+"."+format))
				require.NoError(t, err)
				lines := strings.Count(string(data), "\n")
				if format == backup.FormatCSV {
					lines-- // the header
				}
				assert.Equal(t, counts[c], lines, "%s %s", c, format)
				total += counts[c]
			}
			assert.Equal(t, len(storetest.Readable(t, rs, admin)), total, "every record once")
		}
	})
}

func signIn(t *testing.T, base string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": servertest.AdminName, "password": servertest.AdminPassword, "device_id": "laptop"})
	r, err := http.Post(base+"/v1/auth/login", "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer r.Body.Close()
	require.Equal(t, http.StatusOK, r.StatusCode)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(r.Body).Decode(&out))
	return out.AccessToken
}
