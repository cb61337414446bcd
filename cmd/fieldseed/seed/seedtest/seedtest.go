// Package seedtest starts a real fieldsync server in-process for the tests
// of the data-set and load tools: a fresh SQLite store and photo folder on
// a random loopback port, with a first admin.
package seedtest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// The first admin of a test server.
const (
	AdminName     = "admin"
	AdminPassword = "admin-password"
)

// StartServer starts a server that stops when the test ends and returns
// its base URL.
func StartServer(tb testing.TB) string {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "fieldsync.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { store.Close() })
	_, err = server.EnsureAdmin(ctx, store, AdminName, AdminPassword, time.Now())
	require.NoError(tb, err)
	secret, err := server.LoadSecret(dir, "")
	require.NoError(tb, err)
	blobs, err := filestore.Open(filepath.Join(dir, "photos"))
	require.NoError(tb, err)
	photos := media.NewPhotos(blobs, 25_000_000)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.Default()
	}
	engine, err := sync.New(sync.Config{Store: store, Secret: secret, Logger: logger, Photos: server.PhotoFacts(photos)})
	require.NoError(tb, err)
	srv, err := server.New(server.Config{Store: store, Photos: photos, Secret: secret, Logger: logger, Engine: engine})
	require.NoError(tb, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(tb, srv.Shutdown(ctx))
		<-done
	})
	return "http://" + ln.Addr().String()
}
