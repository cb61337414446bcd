// Package servertest runs a real fieldsync server in the test process, for
// the tests of every package that talks to one over HTTP: a fresh SQLite
// store and photo folder in a temp dir, a first admin, a random loopback
// port, and a clean stop when the test ends.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// The first admin of a server, unless Options say otherwise.
const (
	AdminName     = "admin"
	AdminPassword = "admin-password"
)

// Options change the server a test gets. The zero value is the default.
type Options struct {
	// AdminPassword is the first admin's password; default AdminPassword.
	AdminPassword string
	// Blobs keeps photo bytes; default a folder in the server's temp dir.
	Blobs media.BlobStore
	// PhotoRedirect, when not 0, makes photo GETs redirect to presigned
	// URLs of the blob store that live this long.
	PhotoRedirect time.Duration
	// Engine and Server, when set, adjust the configurations before the
	// engine and the server are built.
	Engine func(*sync.Config)
	Server func(*server.Config)
}

// Server is a running fieldsync server.
type Server struct {
	URL    string // http://127.0.0.1:port
	Dir    string // its temp dir: store, photos, secret
	Store  *sqlitestore.Store
	Engine *sync.Engine
	Secret []byte
	// HTTP is a client whose every exchange with the server is checked
	// against the OpenAPI document.
	HTTP *http.Client
	// Routes lists the server's routes.
	Routes []server.Route
}

// Client returns a test client of the server.
func (s *Server) Client() *Client { return &Client{URL: s.URL, HTTP: s.HTTP} }

// Start starts a server that stops when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "fieldsync.db"))
	require.NoError(tb, err)
	tb.Cleanup(func() { store.Close() })
	if opts.AdminPassword == "" {
		opts.AdminPassword = AdminPassword
	}
	_, err = server.EnsureAdmin(ctx, store, AdminName, opts.AdminPassword, time.Now())
	require.NoError(tb, err)
	secret, err := server.LoadSecret(dir, "")
	require.NoError(tb, err)
	if opts.Blobs == nil {
		opts.Blobs, err = filestore.Open(filepath.Join(dir, "photos"))
		require.NoError(tb, err)
	}
	photos := media.NewPhotos(opts.Blobs, 25_000_000).WithRedirects(opts.PhotoRedirect)
	logger := Logger()
	engineCfg := sync.Config{Store: store, Secret: secret, Logger: logger, Photos: photos}
	if opts.Engine != nil {
		opts.Engine(&engineCfg)
	}
	engine, err := sync.New(engineCfg)
	require.NoError(tb, err)
	serverCfg := server.Config{Store: store, Engine: engine, Reports: report.New(store, nil), Photos: photos, Secret: secret, Logger: logger,
		UploadDir: filepath.Join(dir, "uploads")}
	if opts.Server != nil {
		opts.Server(&serverCfg)
	}
	srv, err := server.New(serverCfg)
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
	url := "http://" + ln.Addr().String()
	checked := &http.Client{Transport: NewContract(tb).Transport(tb, url, nil)}
	return &Server{URL: url, Dir: dir, Store: store, Engine: engine, Secret: secret, HTTP: checked, Routes: srv.Routes()}
}

// Logger shows server logs only with go test -v.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
