package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync/report"
)

// send makes a request with headers and returns the response's status and
// headers.
func send(t *testing.T, method, url string, headers map[string]string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestCORS(t *testing.T) {
	ts := startServer(t, func(c *server.Config) { c.CORSOrigins = []string{"https://app.example.com", " http://localhost:5173"} })
	admin := ts.login(t, adminName, adminPassword, "d")
	preflight := func(origin, method string) (int, http.Header) {
		return send(t, "OPTIONS", ts.URL+"/v1/sync/pull", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "authorization,content-type"})
	}

	t.Run("preflight from an allowed origin", func(t *testing.T) {
		for _, origin := range []string{"https://app.example.com", "http://localhost:5173"} {
			status, h := preflight(origin, "POST")
			assert.Equal(t, http.StatusNoContent, status)
			assert.Equal(t, origin, h.Get("Access-Control-Allow-Origin"))
			assert.Contains(t, h.Get("Access-Control-Allow-Headers"), "Authorization")
			assert.Contains(t, h.Get("Access-Control-Allow-Headers"), "Content-Type")
			assert.Contains(t, h.Get("Access-Control-Allow-Methods"), "POST")
			assert.Empty(t, h.Get("Access-Control-Allow-Credentials"), "bearer tokens, not cookies")
		}
	})
	t.Run("preflight from another origin", func(t *testing.T) {
		_, h := preflight("https://evil.example.net", "POST")
		assert.Empty(t, h.Get("Access-Control-Allow-Origin"))
	})
	t.Run("a request from an allowed origin", func(t *testing.T) {
		status, h := send(t, "GET", ts.URL+"/v1/reports/unvisited?days=30", map[string]string{
			"Origin": "https://app.example.com", "Authorization": "Bearer " + admin.Access})
		assert.Equal(t, http.StatusOK, status)
		assert.Equal(t, "https://app.example.com", h.Get("Access-Control-Allow-Origin"))
		assert.Contains(t, h.Get("Access-Control-Expose-Headers"), "Retry-After")
	})
	t.Run("an error answer carries the headers too", func(t *testing.T) {
		status, h := send(t, "POST", ts.URL+"/v1/sync/pull", map[string]string{"Origin": "https://app.example.com"})
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.Equal(t, "https://app.example.com", h.Get("Access-Control-Allow-Origin"), "so the app can read the 401")
	})

	t.Run("none configured: no CORS", func(t *testing.T) {
		plain := startServer(t)
		_, h := send(t, "OPTIONS", plain.URL+"/v1/sync/pull", map[string]string{
			"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"})
		assert.Empty(t, h.Get("Access-Control-Allow-Origin"))
	})
}

func TestCORSOriginsAreChecked(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	photos := media.NewPhotos(nil, 1)
	build := func(origins ...string) error {
		_, err := server.New(server.Config{Store: srv.Store, Engine: srv.Engine, Reports: report.New(srv.Store, nil), Photos: photos, Secret: srv.Secret, CORSOrigins: origins, PasswordCost: servertest.PasswordCost})
		return err
	}
	require.NoError(t, build("https://app.example.com", "http://localhost:5173", ""), "good origins")
	for _, origin := range []string{"*", "app.example.com", "https://*.example.com", "https://app.example.com/path",
		"ftp://x.example.com", "https://u:p@x.example.com", "https://x.example.com?q=1"} {
		t.Run(origin, func(t *testing.T) {
			err := build("https://app.example.com", origin)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "CORS origin")
		})
	}
}
