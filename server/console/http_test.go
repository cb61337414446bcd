package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// get fetches a page without following redirects.
func get(t *testing.T, hc *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := hc.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(body)
}

func noRedirects(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var formToken = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func TestConsoleHeadersAndRedirects(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Server: func(c *server.Config) { c.MapTiles = "https://{s}.tiles.example.net/{z}/{x}/{y}.png" }})
	hc := noRedirects(t)

	resp, _ := get(t, hc, srv.URL+"/")
	assert.Equal(t, http.StatusFound, resp.StatusCode)
	assert.Equal(t, "/console/", resp.Header.Get("Location"))

	resp, _ = get(t, hc, srv.URL+"/console/coverage")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "no session: sign in first")
	assert.Equal(t, "/console/login?next=%2Fconsole%2Fcoverage", resp.Header.Get("Location"))

	resp, body := get(t, hc, srv.URL+"/console/login")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "img-src 'self' data: https://*.tiles.example.net;", "frame-ancestors 'none'"} {
		assert.Contains(t, csp, want)
	}
	assert.NotContains(t, csp, "unsafe-inline")
	assert.NotContains(t, body, "<script>", "no inline scripts")
	assert.NotContains(t, body, "style=", "no inline styles")
}

// Failed console sign-ins count towards the same lock-out as the API's.
func TestConsoleSignInSharesTheLockout(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	hc := noRedirects(t)
	for i := range 5 {
		_, body := get(t, hc, srv.URL+"/console/login")
		token := formToken.FindStringSubmatch(body)
		require.Len(t, token, 2)
		resp, err := hc.PostForm(srv.URL+"/console/login", url.Values{"csrf": {token[1]}, "username": {servertest.AdminName}, "password": {fmt.Sprint("wrong-", i)}})
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	}
	resp, err := http.Post(srv.URL+"/v1/auth/login", "application/json", strings.NewReader(
		fmt.Sprintf(`{"username":%q,"password":%q,"device_id":"d-1"}`, servertest.AdminName, servertest.AdminPassword)))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "the API refuses the right password after five console failures")

	_, body := get(t, hc, srv.URL+"/console/login")
	token := formToken.FindStringSubmatch(body)
	resp, err = hc.PostForm(srv.URL+"/console/login", url.Values{"csrf": {token[1]}, "username": {servertest.AdminName}, "password": {servertest.AdminPassword}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "and so does the console")
}

func TestConsoleSignInNeedsItsFormToken(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	hc := noRedirects(t)
	get(t, hc, srv.URL+"/console/login") // sets the pre-session cookie
	for name, token := range map[string]string{"none": "", "forged": "AAAA"} {
		t.Run(name, func(t *testing.T) {
			resp, err := hc.PostForm(srv.URL+"/console/login", url.Values{"csrf": {token}, "username": {servertest.AdminName}, "password": {servertest.AdminPassword}})
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Empty(t, resp.Header.Values("Set-Cookie"), "no session")
		})
	}
}
