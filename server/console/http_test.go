package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
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

// Failed console sign-ins count towards the same throttle as the API's:
// after five failures the next attempt waits the backoff (an hour here).
func TestConsoleSignInSharesTheThrottle(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{Server: func(c *server.Config) { c.LoginBackoff = time.Hour }})
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

// A photo's thumbnail and its place in the gallery reach the managers of
// its territory and nobody else.
func TestConsolePhotosAreScoped(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	admin, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(t, err)
	users := map[string]*schema.User{}
	for _, u := range []struct {
		name string
		role schema.Role
		t    string
	}{{"rep1", schema.RoleRep, "t-1"}, {"mgr1", schema.RoleManager, "t-1"}, {"mgr2", schema.RoleManager, "t-2"}} {
		nu, err := server.NewUser(u.name, "password-"+u.name, u.role, []string{u.t}, "", time.Now(), servertest.PasswordCost)
		require.NoError(t, err)
		require.NoError(t, srv.Store.CreateUser(ctx, nu))
		users[u.name] = nu
	}
	push := func(p schema.Principal, coll schema.Collection, id string, data map[string]any) {
		t.Helper()
		body, err := json.Marshal(data)
		require.NoError(t, err)
		m, err := json.Marshal(schema.Mutation{MutationID: "m-" + id, Collection: coll, ID: id, Op: schema.MutationUpsert, Data: body})
		require.NoError(t, err)
		res, err := srv.Engine.Push(ctx, p, &schema.PushRequest{DeviceID: "d", Mutations: []json.RawMessage{m}})
		require.NoError(t, err)
		require.Equal(t, schema.PushApplied, res.Results[0].Status, "%+v", res.Results[0].Error)
	}
	ap, rp := admin.Principal("d", ""), users["rep1"].Principal("d", "")
	push(ap, schema.Territories, "t-1", map[string]any{"name": "One", "region": "R"})
	push(ap, schema.Territories, "t-2", map[string]any{"name": "Two", "region": "R"})
	push(ap, schema.Customers, "c-1", map[string]any{"code": "C1", "name": "Shop", "territory_id": "t-1", "grade": "A", "lat": 52.5, "lng": 13.4})
	today := time.Now().UTC().Truncate(time.Minute)
	push(rp, schema.Visits, "v-1", map[string]any{"customer_id": "c-1", "check_in": map[string]any{"at": today.Format(time.RFC3339), "lat": 52.5, "lng": 13.4}})

	var img bytes.Buffer
	require.NoError(t, png.Encode(&img, image.NewGray(image.Rect(0, 0, 400, 300))))
	sum := fmt.Sprintf("%x", sha256.Sum256(img.Bytes()))
	push(rp, schema.Photos, "ph-1", map[string]any{"visit_id": "v-1", "sha256": sum, "content_type": "image/png", "size": img.Len()})
	req, err := http.NewRequest("PUT", srv.URL+"/v1/media/"+sum, bytes.NewReader(img.Bytes()))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+repToken(t, srv.URL))
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	tests := []struct {
		manager     string
		thumbStatus int
		inGallery   bool
	}{{"mgr1", http.StatusOK, true}, {"mgr2", http.StatusNotFound, false}}
	for _, tt := range tests {
		t.Run(tt.manager, func(t *testing.T) {
			hc := signedIn(t, srv.URL, tt.manager, "password-"+tt.manager)
			resp, body := get(t, hc, srv.URL+"/console/photos/"+sum+"/thumb")
			assert.Equal(t, tt.thumbStatus, resp.StatusCode)
			if tt.thumbStatus == http.StatusOK {
				assert.Equal(t, "image/jpeg", resp.Header.Get("Content-Type"))
				cfg, err := jpeg.DecodeConfig(strings.NewReader(body))
				require.NoError(t, err)
				assert.Equal(t, [2]int{192, 144}, [2]int{cfg.Width, cfg.Height})
			}
			resp, page := get(t, hc, srv.URL+"/console/photos")
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", page)
			assert.Equal(t, tt.inGallery, strings.Contains(page, sum))
		})
	}
}

func repToken(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Post(base+"/v1/auth/login", "application/json", strings.NewReader(`{"username":"rep1","password":"password-rep1","device_id":"d"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out.AccessToken
}

// signedIn signs in through the console's form.
func signedIn(t *testing.T, base, user, password string) *http.Client {
	t.Helper()
	hc := noRedirects(t)
	_, body := get(t, hc, base+"/console/login")
	token := formToken.FindStringSubmatch(body)
	require.Len(t, token, 2)
	resp, err := hc.PostForm(base+"/console/login", url.Values{"csrf": {token[1]}, "username": {user}, "password": {password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	return hc
}

// An admin creates, changes and deactivates users from the console
// through the server's own user code; a manager may not.
func TestConsoleUserAdmin(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	hc := signedIn(t, srv.URL, servertest.AdminName, servertest.AdminPassword)
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		_, page := get(t, hc, srv.URL+"/console/admin/users")
		token := formToken.FindStringSubmatch(page)
		require.Len(t, token, 2)
		form.Set("csrf", token[1])
		resp, err := hc.PostForm(srv.URL+path, form)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	resp := post("/console/admin/users", url.Values{"username": {"mgr9"}, "password": {"password-mgr9"}, "role": {"manager"}, "territories": {"t-1, t-2"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	u, err := srv.Store.UserByName(ctx, "mgr9")
	require.NoError(t, err)
	assert.Equal(t, schema.RoleManager, u.Role)
	assert.Equal(t, []string{"t-1", "t-2"}, u.Territories)

	resp = post("/console/admin/users", url.Values{"username": {"mgr9"}, "password": {"password-mgr9"}, "role": {"manager"}})
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "a taken username")

	mgr := signedIn(t, srv.URL, "mgr9", "password-mgr9")
	resp, _ = get(t, mgr, srv.URL+"/console/admin/users")
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "admin pages are for admins")
	resp, _ = get(t, mgr, srv.URL+"/console/coverage")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp = post("/console/admin/users/"+u.ID, url.Values{"action": {"save"}, "role": {"manager"}, "territories": {"t-3"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	u, err = srv.Store.User(ctx, u.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"t-3"}, u.Territories)

	resp = post("/console/admin/users/"+u.ID, url.Values{"action": {"password"}, "password": {"password-new-1"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, _ = get(t, mgr, srv.URL+"/console/coverage")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "a new password ends the user's sessions")

	mgr = signedIn(t, srv.URL, "mgr9", "password-new-1")
	resp = post("/console/admin/users/"+u.ID, url.Values{"action": {"deactivate"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	u, err = srv.Store.User(ctx, u.ID)
	require.NoError(t, err)
	assert.False(t, u.Active)
	resp, _ = get(t, mgr, srv.URL+"/console/coverage")
	assert.Equal(t, http.StatusSeeOther, resp.StatusCode, "deactivation ends the user's sessions")
}

// Territories are created and renamed from the console through push, and
// exported as CSV; the unvisited page filters by grade.
func TestConsoleTerritoriesExportAndUnvisited(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	hc := signedIn(t, srv.URL, servertest.AdminName, servertest.AdminPassword)
	save := func(form url.Values) *http.Response {
		t.Helper()
		_, page := get(t, hc, srv.URL+"/console/admin/territories")
		token := formToken.FindStringSubmatch(page)
		require.Len(t, token, 2)
		form.Set("csrf", token[1])
		resp, err := hc.PostForm(srv.URL+"/console/admin/territories", form)
		require.NoError(t, err)
		resp.Body.Close()
		return resp
	}
	require.Equal(t, http.StatusSeeOther, save(url.Values{"id": {"t-1"}, "name": {"North, upper"}, "region": {"EU"}}).StatusCode)
	require.Equal(t, http.StatusSeeOther, save(url.Values{"id": {"t-1"}, "version": {"1"}, "name": {"North"}, "region": {"EU"}}).StatusCode)
	assert.Equal(t, http.StatusConflict, save(url.Values{"id": {"t-1"}, "version": {"1"}, "name": {"Stale"}, "region": {"EU"}}).StatusCode, "a stale form")
	assert.Equal(t, http.StatusUnprocessableEntity, save(url.Values{"id": {"t-2"}, "name": {""}}).StatusCode, "a territory needs a name")

	resp, body := get(t, hc, srv.URL+"/console/admin/export/territories")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "id,name,region\nt-1,North,EU\n", body)

	ctx := context.Background()
	admin, err := srv.Store.UserByName(ctx, servertest.AdminName)
	require.NoError(t, err)
	for i, grade := range []string{"A", "B", "B"} {
		data, err := json.Marshal(map[string]any{"code": fmt.Sprint("C", i), "name": fmt.Sprint("Shop ", i), "territory_id": "t-1", "grade": grade, "lat": 52.5, "lng": 13.4})
		require.NoError(t, err)
		m, err := json.Marshal(schema.Mutation{MutationID: fmt.Sprint("m-c", i), Collection: schema.Customers, ID: fmt.Sprint("c-", i), Op: schema.MutationUpsert, Data: data})
		require.NoError(t, err)
		res, err := srv.Engine.Push(ctx, admin.Principal("d", ""), &schema.PushRequest{DeviceID: "d", Mutations: []json.RawMessage{m}})
		require.NoError(t, err)
		require.Equal(t, schema.PushApplied, res.Results[0].Status)
	}
	for grade, want := range map[string]int{"": 3, "A": 1, "B": 2, "D": 0} {
		resp, page := get(t, hc, srv.URL+"/console/unvisited?days=30&grade="+grade)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, want, strings.Count(page, `<tr data-key="c-`), "grade %q", grade)
	}
}
