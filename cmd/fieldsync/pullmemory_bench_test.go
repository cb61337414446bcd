package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// BenchmarkConcurrentFirstPulls measures the resident memory of the real
// binary while eight devices make their first full pull, at once, of a
// territory of 1,000 customers each filled to 64 KiB of data (64 MB in
// all), asking for pages of the largest count. It reports the process's
// peak resident set (VmHWM) and its resident set once the data is loaded
// and nobody pulls, the baseline of the same run.
//
//	go test -run '^$' -bench ConcurrentFirstPulls -benchtime 1x -count 3 ./cmd/fieldsync/
//
// FIELDSYNC_BENCH_BINARY runs it against another build of fieldsync (an
// older one, to compare).
func BenchmarkConcurrentFirstPulls(b *testing.B) {
	const (
		customers = 1000
		devices   = 8
	)
	bin := binary
	if other := os.Getenv("FIELDSYNC_BENCH_BINARY"); other != "" {
		bin = other
	}
	for range b.N {
		b.StopTimer()
		dir := b.TempDir()
		seedFilledTerritory(b, dir, customers)
		p := startProgram(b, bin, dir, nil, "FIELDSYNC_DATA_DIR="+dir)
		token := benchLogin(b, p.addr, "rep", "rep-password-1")
		idle := residentKB(b, p.cmd.Process.Pid, "VmRSS")

		b.StartTimer()
		var wg gosync.WaitGroup
		counts := make([]int, devices)
		for d := range devices {
			wg.Go(func() { counts[d] = firstPull(b, p.addr, token) })
		}
		wg.Wait()
		b.StopTimer()

		for d, n := range counts {
			require.Equalf(b, customers+1, n, "device %d pulled every customer and the territory", d)
		}
		peak := residentKB(b, p.cmd.Process.Pid, "VmHWM")
		b.ReportMetric(float64(idle)/1024, "idle-rss-MiB")
		b.ReportMetric(float64(peak)/1024, "peak-rss-MiB")
		b.ReportMetric(float64(peak)/float64(idle), "peak/idle")
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// seedFilledTerritory writes, straight into a new embedded store in dir,
// an admin, a rep of territory t-1, the territory, and n customers in it
// whose data is 64 KiB each.
func seedFilledTerritory(b *testing.B, dir string, n int) {
	b.Helper()
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "fieldsync.db"))
	require.NoError(b, err)
	defer store.Close()
	_, err = server.EnsureAdmin(ctx, store, "admin", "admin-password-1", time.Now(), servertest.PasswordCost)
	require.NoError(b, err)
	hash, err := server.HashPassword("rep-password-1", servertest.PasswordCost)
	require.NoError(b, err)
	require.NoError(b, store.CreateUser(ctx, &schema.User{ID: "u-rep", Username: "rep", PasswordHash: hash,
		Role: schema.RoleRep, Territories: []string{"t-1"}, Active: true, CreatedAt: time.Now(), UpdatedAt: time.Now()}))

	facts := schema.Facts{Territories: []string{"t-1"}}
	records := []*sync.Record{{Collection: schema.Territories, ID: "t-1", Version: 1, UpdatedAt: time.Now(), UpdatedBy: "u-admin",
		Data: json.RawMessage(`{"name":"North","region":"N"}`), Tokens: schema.RecordTokens(schema.Territories, facts), Refs: []string{}}}
	for i := range n {
		head := fmt.Sprintf(`{"code":"C-%04d","name":"Shop %d","territory_id":"t-1","grade":"A","lat":52.5,"lng":13.4,"notes":"`, i, i)
		data := head + strings.Repeat("n", 64<<10-len(head)-2) + `"}`
		records = append(records, &sync.Record{Collection: schema.Customers, ID: fmt.Sprintf("c-%04d", i), Version: 1,
			UpdatedAt: time.Now(), UpdatedBy: "u-admin", Data: json.RawMessage(data),
			Tokens: schema.RecordTokens(schema.Customers, facts), Refs: []string{}})
	}
	require.NoError(b, store.Update(ctx, func(tx sync.RecordTx) error {
		for _, r := range records {
			if err := tx.Put(ctx, r, 0); err != nil {
				return err
			}
		}
		return nil
	}))
}

func benchLogin(b *testing.B, addr, user, password string) string {
	b.Helper()
	return benchAPI("http://"+addr).Login(b, user, password, "d-1").Access
}

// firstPull pulls from the beginning, pages of 1,000, until there is no
// more, and returns how many changes came. It speaks HTTP by hand: it runs
// on many goroutines at once (so it reports with b.Error, not require),
// and streams each page's body rather than holding it whole.
func firstPull(b *testing.B, addr, token string) int {
	checkpoint, n := "", 0
	for {
		body, _ := json.Marshal(map[string]any{"checkpoint": checkpoint, "limit": sync.MaxPullLimit})
		req, err := http.NewRequest("POST", "http://"+addr+"/v1/sync/pull", bytes.NewReader(body))
		if err != nil {
			b.Error(err)
			return n
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Error(err)
			return n
		}
		var page struct {
			Changes    []json.RawMessage `json:"changes"`
			Checkpoint string            `json:"checkpoint"`
			HasMore    bool              `json:"has_more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Errorf("pull: status %d, %v", resp.StatusCode, err)
			return n
		}
		n += len(page.Changes)
		checkpoint = page.Checkpoint
		if !page.HasMore {
			return n
		}
	}
}

// residentKB reads a memory figure of a process from /proc, in KiB.
func residentKB(b *testing.B, pid int, field string) int64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			require.NoError(b, err)
			return kb
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
