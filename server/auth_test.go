package server_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
)

func TestLogin(t *testing.T) {
	ts := startServer(t)
	t.Run("good password", func(t *testing.T) {
		r := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": adminName, "password": adminPassword, "device_id": "d-1"})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		assert.Equal(t, float64(900), r.Body["expires_in"])
		user := r.Body["user"].(map[string]any)
		assert.Equal(t, adminName, user["username"])
		assert.Equal(t, "admin", user["role"])
		assert.NotContains(t, string(r.Raw), "password", "the hash never leaves the server")
		me := ts.call(t, "GET", "/v1/admin/users/"+str(user["id"]), str(r.Body["access_token"]), nil)
		assert.Equal(t, http.StatusOK, me.Status, "the access token works")
	})

	wrongPassword := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": adminName, "password": "not-the-password", "device_id": "d-1"})
	unknownUser := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "nobody", "password": "not-the-password", "device_id": "d-1"})
	t.Run("wrong password and unknown user get the same answer", func(t *testing.T) {
		assert.Equal(t, http.StatusUnauthorized, wrongPassword.Status)
		assert.Equal(t, "unauthorized", wrongPassword.ErrorCode())
		assert.Equal(t, wrongPassword.Status, unknownUser.Status)
		assert.Equal(t, string(wrongPassword.Raw), string(unknownUser.Raw))
	})

	bad := []struct {
		name, body, code, field string
		status                  int
	}{
		{"malformed JSON", `{"username":`, "bad_request", "", 400},
		{"empty body", ``, "bad_request", "", 400},
		{"wrong type", `{"username":1}`, "bad_request", "", 400},
		{"no username", `{"password":"x","device_id":"d"}`, "validation_failed", "username", 422},
		{"no password", `{"username":"a","device_id":"d"}`, "validation_failed", "password", 422},
		{"no device", `{"username":"a","password":"x"}`, "validation_failed", "device_id", 422},
		{"odd device id", `{"username":"a","password":"x","device_id":"a b"}`, "validation_failed", "device_id", 422},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.call(t, "POST", "/v1/auth/login", "", tt.body)
			assert.Equal(t, tt.status, r.Status)
			assert.Equal(t, tt.code, r.ErrorCode())
			if tt.field != "" {
				assert.Equal(t, tt.field, r.Body["error"].(map[string]any)["field"])
			}
		})
	}
}

// forge signs claims the way an attacker might.
func forge(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

// claimsOf reads a token's claims without checking it.
func claimsOf(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, _, err := jwt.NewParser().ParseUnverified(token, claims)
	require.NoError(t, err)
	return claims
}

func TestAccessTokensAreCheckedStrictly(t *testing.T) {
	ts := startServer(t)
	s := ts.login(t, adminName, adminPassword, "d-1")
	good := claimsOf(t, s.Access)
	with := func(changes jwt.MapClaims) jwt.MapClaims {
		c := jwt.MapClaims{}
		for k, v := range good {
			c[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(c, k)
				continue
			}
			c[k] = v
		}
		return c
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	parts := strings.Split(s.Access, ".")
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	past := time.Now().Add(-time.Hour).Unix()

	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"the issued token", s.Access, http.StatusOK},
		{"re-signed by the server secret", forge(t, jwt.SigningMethodHS256, ts.Secret, with(nil)), http.StatusOK},
		{"expired", forge(t, jwt.SigningMethodHS256, ts.Secret, with(jwt.MapClaims{"exp": past, "iat": past - 900})), http.StatusUnauthorized},
		{"no expiry", forge(t, jwt.SigningMethodHS256, ts.Secret, with(jwt.MapClaims{"exp": nil})), http.StatusUnauthorized},
		{"another issuer", forge(t, jwt.SigningMethodHS256, ts.Secret, with(jwt.MapClaims{"iss": "elsewhere"})), http.StatusUnauthorized},
		{"issued in the future", forge(t, jwt.SigningMethodHS256, ts.Secret, with(jwt.MapClaims{"iat": time.Now().Add(time.Hour).Unix()})), http.StatusUnauthorized},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x","lid":"y","iss":"fieldsync","exp":9999999999}`)) + "." + parts[2], http.StatusUnauthorized},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flip(parts[2]), http.StatusUnauthorized},
		{"alg none", noneHeader + "." + parts[1] + ".", http.StatusUnauthorized},
		{"alg none via library", forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, with(nil)), http.StatusUnauthorized},
		{"HS512 with the right key", forge(t, jwt.SigningMethodHS512, ts.Secret, with(nil)), http.StatusUnauthorized},
		{"HS256 with another key", forge(t, jwt.SigningMethodHS256, []byte(strings.Repeat("k", 32)), with(nil)), http.StatusUnauthorized},
		{"RS256 with another key", forge(t, jwt.SigningMethodRS256, rsaKey, with(nil)), http.StatusUnauthorized},
		{"unknown login", forge(t, jwt.SigningMethodHS256, ts.Secret, with(jwt.MapClaims{"lid": "l-none"})), http.StatusUnauthorized},
		{"another user's subject", forge(t, jwt.SigningMethodHS256, ts.Secret, with(jwt.MapClaims{"sub": "u-none"})), http.StatusUnauthorized},
		{"garbage", "not.a.token", http.StatusUnauthorized},
		{"missing", "", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.call(t, "GET", "/v1/admin/users/"+s.UserID, tt.token, nil)
			assert.Equal(t, tt.want, r.Status, string(r.Raw))
			if tt.want == http.StatusUnauthorized {
				assert.Equal(t, "unauthorized", r.ErrorCode())
				assert.NotEmpty(t, r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("not a bearer scheme", func(t *testing.T) {
		req, err := http.NewRequest("GET", ts.URL+"/v1/admin/users/"+s.UserID, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Basic "+s.Access)
		resp, err := ts.HTTP.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

func flip(sig string) string {
	b := []byte(sig)
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return string(b)
}

func TestRefreshRotationAndReuse(t *testing.T) {
	ts := startServer(t)
	first := ts.login(t, adminName, adminPassword, "d-1")
	other := ts.login(t, adminName, adminPassword, "d-2")

	r := ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": first.Refresh})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	second := sessionOf(t, r)
	assert.NotEqual(t, first.Refresh, second.Refresh, "a new refresh token")
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+first.UserID, second.Access, nil).Status)

	r = ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": second.Refresh})
	require.Equal(t, http.StatusOK, r.Status, "the current token refreshes again")
	third := sessionOf(t, r)

	// The first token again: a replay. The whole login is revoked.
	r = ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": first.Refresh})
	assert.Equal(t, http.StatusUnauthorized, r.Status)
	assert.Equal(t, "unauthorized", r.ErrorCode())
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": third.Refresh}).Status,
		"the newest refresh token of the login is dead too")
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "GET", "/v1/admin/users/"+first.UserID, third.Access, nil).Status,
		"and so is its access token, at once")
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+first.UserID, other.Access, nil).Status,
		"another login of the same user is untouched")

	for name, token := range map[string]string{
		"garbage":        "garbage",
		"forged mac":     strings.Join(append(strings.Split(other.Refresh, ".")[:2], "AAAA"), "."),
		"access token":   other.Access,
		"empty":          "",
		"huge":           strings.Repeat("a", 5000),
		"future version": strings.Replace(other.Refresh, ".1.", ".2.", 1),
	} {
		t.Run(name, func(t *testing.T) {
			r := ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": token})
			assert.Equal(t, http.StatusUnauthorized, r.Status)
		})
	}
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+first.UserID, other.Access, nil).Status,
		"bad refresh tokens revoke nothing")
}

func TestLogout(t *testing.T) {
	ts := startServer(t)
	s := ts.login(t, adminName, adminPassword, "d-1")
	other := ts.login(t, adminName, adminPassword, "d-2")
	r := ts.call(t, "POST", "/v1/auth/logout", s.Access, nil)
	assert.Equal(t, http.StatusNoContent, r.Status)
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "GET", "/v1/admin/users/"+s.UserID, s.Access, nil).Status)
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": s.Refresh}).Status)
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+s.UserID, other.Access, nil).Status, "only that login ends")
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/logout", "", nil).Status)
}

func TestAdminUsers(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	repID := ts.createUser(t, admin, map[string]any{"username": "rita", "password": "rita-pass-1", "role": "rep", "territories": []string{"t-1"}})
	rep := ts.login(t, "rita", "rita-pass-1", "phone-1")
	assert.Equal(t, repID, rep.UserID)

	t.Run("duplicate username", func(t *testing.T) {
		r := ts.call(t, "POST", "/v1/admin/users", admin.Access, map[string]any{"username": "rita", "password": "another-1", "role": "rep"})
		assert.Equal(t, http.StatusConflict, r.Status)
		assert.Equal(t, "conflict", r.ErrorCode())
	})
	t.Run("invalid users", func(t *testing.T) {
		for name, body := range map[string]map[string]any{
			"no password":             {"username": "x-user", "role": "rep"},
			"short password":          {"username": "x-user", "password": "short", "role": "rep"},
			"bad role":                {"username": "x-user", "password": "long-enough", "role": "boss"},
			"bad username":            {"username": "x user", "password": "long-enough", "role": "rep"},
			"distributor without id":  {"username": "x-user", "password": "long-enough", "role": "distributor"},
			"bad territory id":        {"username": "x-user", "password": "long-enough", "role": "rep", "territories": []string{"t 1"}},
			"rep with distributor id": {"username": "x-user", "password": "long-enough", "role": "rep", "distributor_id": "d-1"},
		} {
			t.Run(name, func(t *testing.T) {
				r := ts.call(t, "POST", "/v1/admin/users", admin.Access, body)
				assert.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
				assert.Equal(t, "validation_failed", r.ErrorCode())
			})
		}
	})
	t.Run("only admins", func(t *testing.T) {
		r := ts.call(t, "POST", "/v1/admin/users", rep.Access, map[string]any{"username": "sneaky", "password": "long-enough", "role": "admin"})
		assert.Equal(t, http.StatusForbidden, r.Status)
		assert.Equal(t, "forbidden", r.ErrorCode())
		assert.Equal(t, http.StatusForbidden, ts.call(t, "PATCH", "/v1/admin/users/"+repID, rep.Access, map[string]any{"role": "admin"}).Status)
	})
	t.Run("change role and territories", func(t *testing.T) {
		r := ts.call(t, "PATCH", "/v1/admin/users/"+repID, admin.Access, map[string]any{"role": "manager", "territories": []string{"t-1", "t-2"}})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		assert.Equal(t, "manager", r.Body["role"])
		assert.Equal(t, []any{"t-1", "t-2"}, r.Body["territories"])
		assert.Equal(t, http.StatusOK, ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": rep.Refresh}).Status,
			"a scope change does not end logins")
	})
	t.Run("unknown user", func(t *testing.T) {
		assert.Equal(t, http.StatusNotFound, ts.call(t, "PATCH", "/v1/admin/users/nope", admin.Access, map[string]any{"active": false}).Status)
	})
	t.Run("password change ends logins", func(t *testing.T) {
		id := ts.createUser(t, admin, map[string]any{"username": "paula", "password": "paula-pass-1", "role": "rep"})
		s := ts.login(t, "paula", "paula-pass-1", "phone")
		r := ts.call(t, "PATCH", "/v1/admin/users/"+id, admin.Access, map[string]any{"password": "paula-pass-2"})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/logout", s.Access, nil).Status)
		ts.login(t, "paula", "paula-pass-2", "phone")
	})
}

func TestDeactivationIsImmediate(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	id := ts.createUser(t, admin, map[string]any{"username": "otto", "password": "otto-pass-1", "role": "admin"})
	otto := ts.login(t, "otto", "otto-pass-1", "laptop")
	require.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+id, otto.Access, nil).Status)

	r := ts.call(t, "PATCH", "/v1/admin/users/"+id, admin.Access, map[string]any{"active": false})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	assert.Equal(t, false, r.Body["active"])

	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "GET", "/v1/admin/users/"+id, otto.Access, nil).Status, "the unexpired access token is refused")
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "POST", "/v1/auth/refresh", "", map[string]string{"refresh_token": otto.Refresh}).Status)
	r = ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "otto", "password": "otto-pass-1", "device_id": "laptop"})
	assert.Equal(t, http.StatusUnauthorized, r.Status, "a deactivated user cannot log in")

	require.Equal(t, http.StatusOK, ts.call(t, "PATCH", "/v1/admin/users/"+id, admin.Access, map[string]any{"active": true}).Status)
	assert.Equal(t, http.StatusUnauthorized, ts.call(t, "GET", "/v1/admin/users/"+id, otto.Access, nil).Status,
		"reactivation does not bring old logins back")
	ts.login(t, "otto", "otto-pass-1", "laptop")
}

func TestRoleChangeCountsFromTheNextRequest(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	id := ts.createUser(t, admin, map[string]any{"username": "vera", "password": "vera-pass-1", "role": "admin"})
	vera := ts.login(t, "vera", "vera-pass-1", "laptop")
	require.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+id, vera.Access, nil).Status)

	r := ts.call(t, "PATCH", "/v1/admin/users/"+id, admin.Access, map[string]any{"role": "rep", "territories": []string{"t-1"}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	r = ts.call(t, "GET", "/v1/admin/users/"+id, vera.Access, nil)
	assert.Equal(t, http.StatusForbidden, r.Status, "the same access token no longer carries the old role")
	assert.Equal(t, "forbidden", r.ErrorCode())

	r = ts.call(t, "PATCH", "/v1/admin/users/"+id, admin.Access, map[string]any{"role": "admin", "territories": []string{}})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/v1/admin/users/"+id, vera.Access, nil).Status,
		"and carries the new one at once")
}

func TestFailedLoginsAreRateLimited(t *testing.T) {
	now := time.Now()
	ts := startServer(t, func(c *server.Config) { c.Now = func() time.Time { return now } })
	for i := range 5 {
		r := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": adminName, "password": "wrong-password", "device_id": "d"})
		require.Equalf(t, http.StatusUnauthorized, r.Status, "attempt %d", i+1)
	}
	r := ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": adminName, "password": adminPassword, "device_id": "d"})
	assert.Equal(t, http.StatusTooManyRequests, r.Status, "slowed down even with the right password")
	assert.Equal(t, "rate_limited", r.ErrorCode())
	assert.NotEmpty(t, r.Header.Get("Retry-After"))

	r = ts.call(t, "POST", "/v1/auth/login", "", map[string]string{"username": "someone-else", "password": "wrong-password", "device_id": "d"})
	assert.Equal(t, http.StatusUnauthorized, r.Status, "other usernames are not slowed down")
}
