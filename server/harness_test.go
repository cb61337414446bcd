package server_test

import (
	"context"
	"net/http"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/miniostore"
	"github.com/fieldsync/fieldsync/media/miniotest"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

const (
	adminName     = "admin"
	adminPassword = "admin-password-1"
)

// testServer is a real fieldsync server on a random loopback port, with a
// fresh SQLite store in a temp dir and a first admin.
type testServer struct {
	URL    string
	Dir    string
	Secret []byte
	Store  *sqlitestore.Store
	client *servertest.Client
	// HTTP checks every exchange with the server against the OpenAPI
	// document.
	HTTP *http.Client
}

func startServer(tb testing.TB, tweak ...func(*server.Config)) *testServer {
	tb.Helper()
	return startServerWith(tb, nil, tweak...)
}

// minioServer is the one MinIO server for this package's tests.
var minioServer miniotest.Shared

func TestMain(m *testing.M) { os.Exit(minioServer.Main(m)) }

// minioBlobs returns a MinIO photo store on a fresh bucket of the
// package's MinIO server.
func minioBlobs(tb testing.TB) media.BlobStore {
	tb.Helper()
	srv := minioServer.Start(tb)
	blobs, err := miniostore.New(context.Background(), miniostore.Config{
		Endpoint: srv.Endpoint, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Bucket: srv.Bucket(tb)})
	require.NoError(tb, err)
	return blobs
}

// startServerWith starts a server whose photos go to blobs (nil: a local
// folder in the server's temp dir).
func startServerWith(tb testing.TB, blobs media.BlobStore, tweak ...func(*server.Config)) *testServer {
	tb.Helper()
	srv := servertest.Start(tb, servertest.Options{AdminPassword: adminPassword, Blobs: blobs, Server: func(c *server.Config) {
		for _, f := range tweak {
			f(c)
		}
	}})
	return &testServer{URL: srv.URL, Dir: srv.Dir, Secret: srv.Secret, Store: srv.Store, client: srv.Client(), HTTP: srv.HTTP}
}

// response is a decoded answer.
type response = servertest.Response

// callWith is call through a given client.
func (ts *testServer) callWith(tb testing.TB, client *http.Client, method, path, token string, body any) response {
	tb.Helper()
	c := servertest.Client{URL: ts.URL, HTTP: client}
	return c.Call(tb, method, path, token, body)
}

// session is a signed-in caller.
type session = servertest.Session

// call sends a request with an optional bearer token and JSON body (a
// string is sent as is), checked against the OpenAPI document.
func (ts *testServer) call(tb testing.TB, method, path, token string, body any) response {
	tb.Helper()
	return ts.client.Call(tb, method, path, token, body)
}

func (ts *testServer) login(tb testing.TB, username, password, device string) session {
	tb.Helper()
	return ts.client.Login(tb, username, password, device)
}

func sessionOf(tb testing.TB, r response) session {
	tb.Helper()
	return servertest.SessionOf(tb, r)
}

func str(v any) string { s, _ := v.(string); return s }

// createUser makes a user through the admin API and returns its id.
func (ts *testServer) createUser(tb testing.TB, admin session, user map[string]any) string {
	tb.Helper()
	return ts.client.CreateUser(tb, admin.Access, user)
}

// scenario is one API call and what it must be answered: a status and,
// for a refusal, the error code.
type scenario struct {
	name, method, path string
	who                session
	body               any
	status             int
	code               string
}

// runScenarios makes each call as a subtest and checks its answer.
func runScenarios(t *testing.T, ts *testServer, scenarios []scenario) {
	t.Helper()
	for _, tt := range scenarios {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.call(t, tt.method, tt.path, tt.who.Access, tt.body)
			assert.Equal(t, tt.status, r.Status, string(r.Raw))
			assert.Equal(t, tt.code, r.ErrorCode())
		})
	}
}
