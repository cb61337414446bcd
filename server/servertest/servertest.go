// Package servertest runs a real fieldsync server in the test process, for
// the tests of every package that talks to one over HTTP: a fresh SQLite
// store and photo folder in a temp dir, a first admin, a random loopback
// port, and a clean stop when the test ends.
package servertest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

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

// PasswordCost is the bcrypt work factor of test servers' passwords:
// bcrypt's least, since under the race detector a hash at the default
// cost takes a second of CPU, and tests sign in often.
const PasswordCost = bcrypt.MinCost

// Options change the server a test gets. The zero value is the default.
type Options struct {
	// AdminPassword is the first admin's password; default AdminPassword.
	AdminPassword string
	// PasswordCost is the bcrypt work factor of the passwords the server
	// sets; default PasswordCost.
	PasswordCost int
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
	srv, stop, err := Run(tb.TempDir(), opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, stop()) })
	srv.HTTP = &http.Client{Transport: NewContract(tb).Transport(tb, srv.URL, nil)}
	return srv
}

// Run starts a server keeping its data in dir, for a TestMain or an
// Example, which have no test to end with: call stop when done. Its HTTP
// client checks nothing; Start's checks every exchange.
func Run(dir string, opts Options) (srv *Server, stop func() error, err error) {
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(dir, "fieldsync.db"))
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	if opts.AdminPassword == "" {
		opts.AdminPassword = AdminPassword
	}
	if opts.PasswordCost == 0 {
		opts.PasswordCost = PasswordCost
	}
	if _, err = server.EnsureAdmin(ctx, store, AdminName, opts.AdminPassword, time.Now(), opts.PasswordCost); err != nil {
		return nil, nil, err
	}
	secret, err := server.LoadSecret(dir, "")
	if err != nil {
		return nil, nil, err
	}
	if opts.Blobs == nil {
		if opts.Blobs, err = filestore.Open(filepath.Join(dir, "photos")); err != nil {
			return nil, nil, err
		}
	}
	photos := media.NewPhotos(opts.Blobs, 25_000_000).WithRedirects(opts.PhotoRedirect)
	logger := Logger()
	engineCfg := sync.Config{Store: store, Secret: secret, Logger: logger, Photos: photos}
	if opts.Engine != nil {
		opts.Engine(&engineCfg)
	}
	engine, err := sync.New(engineCfg)
	if err != nil {
		return nil, nil, err
	}
	serverCfg := server.Config{Store: store, Engine: engine, Reports: report.New(store, nil), Photos: photos, Secret: secret, Logger: logger,
		PasswordCost: opts.PasswordCost,
		UploadDir:    filepath.Join(dir, "uploads"),
		// Tests send requests as fast as they can from one device: the
		// sync rate limits are off unless a test sets them.
		Limits: server.Limits{DeviceRate: -1, UserRate: -1}}
	if opts.Server != nil {
		opts.Server(&serverCfg)
	}
	s, err := server.New(serverCfg)
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	stop = func() error {
		// Tests' servers drain like the binary's, within 30 s.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := s.Shutdown(ctx)
		<-done
		return errors.Join(err, store.Close())
	}
	url := "http://" + ln.Addr().String()
	return &Server{URL: url, Dir: dir, Store: store, Engine: engine, Secret: secret, HTTP: http.DefaultClient, Routes: s.Routes()}, stop, nil
}

// Logger shows server logs only with go test -v.
func Logger() *slog.Logger {
	if testing.Verbose() {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
