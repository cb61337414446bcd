package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

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
}

func startServer(tb testing.TB, tweak ...func(*server.Config)) *testServer {
	tb.Helper()
	return startServerWith(tb, nil, tweak...)
}

// minioServer is the one MinIO server for this package's tests.
var minioServer miniotest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	if err := minioServer.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

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
	return &testServer{URL: srv.URL, Dir: srv.Dir, Secret: srv.Secret, Store: srv.Store}
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Close  bool // the server closes the connection after it
	Body   map[string]any
	Raw    []byte
}

// ErrorCode returns the contract error's code, or "".
func (r response) ErrorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// call sends a request with an optional bearer token and JSON body (a
// string is sent as is).
func (ts *testServer) call(tb testing.TB, method, path, token string, body any) response {
	tb.Helper()
	return ts.callWith(tb, http.DefaultClient, method, path, token, body)
}

// callWith is call through a given client.
func (ts *testServer) callWith(tb testing.TB, client *http.Client, method, path, token string, body any) response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(tb, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, ts.URL+path, rd)
	require.NoError(tb, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoErrorf(tb, json.Unmarshal(raw, &r.Body), "body %s", raw)
	}
	return r
}

// session is a signed-in caller.
type session struct {
	Access, Refresh string
	UserID          string
}

func (ts *testServer) login(tb testing.TB, username, password, device string) session {
	tb.Helper()
	r := ts.call(tb, "POST", "/v1/auth/login", "", map[string]string{"username": username, "password": password, "device_id": device})
	require.Equalf(tb, http.StatusOK, r.Status, "login %s: %s", username, r.Raw)
	return sessionOf(tb, r)
}

func sessionOf(tb testing.TB, r response) session {
	tb.Helper()
	user, _ := r.Body["user"].(map[string]any)
	s := session{Access: str(r.Body["access_token"]), Refresh: str(r.Body["refresh_token"]), UserID: str(user["id"])}
	require.NotEmpty(tb, s.Access)
	require.NotEmpty(tb, s.Refresh)
	return s
}

func str(v any) string { s, _ := v.(string); return s }

// createUser makes a user through the admin API and returns its id.
func (ts *testServer) createUser(tb testing.TB, admin session, user map[string]any) string {
	tb.Helper()
	r := ts.call(tb, "POST", "/v1/admin/users", admin.Access, user)
	require.Equalf(tb, http.StatusCreated, r.Status, "create user: %s", r.Raw)
	return str(r.Body["id"])
}
