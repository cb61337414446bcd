package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheckedAccessTokensKeepTheirTimes checks that an access token taken
// from the tokens checked before still expires, is still refused before
// it was issued, and that a token differing by one character is checked
// in full.
func TestCheckedAccessTokensKeepTheirTimes(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	ti := newTokenIssuer([]byte(strings.Repeat("s", 32)), 15*time.Minute, func() time.Time { return now })
	token, err := ti.access(accessClaims{RegisteredClaims: jwtSubject("u-1", "l-1", 1), DeviceID: "d-1", LoginID: "l-1"})
	require.NoError(t, err)

	first, err := ti.parseAccess(token)
	require.NoError(t, err)
	require.Contains(t, ti.checked, token, "a good token is kept as checked")
	second, err := ti.parseAccess(token)
	require.NoError(t, err)
	assert.Equal(t, first, second, "claims of the checked token")

	tests := []struct {
		name    string
		at      time.Time
		wantErr error
	}{
		{"a second before expiry", now.Add(15*time.Minute - time.Second), nil},
		{"at expiry", now.Add(15 * time.Minute), errTokenExpired},
		{"after expiry", now.Add(time.Hour), errTokenExpired},
		{"before it was issued", now.Add(-time.Second), jwt.ErrTokenUsedBeforeIssued},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			defer func() { now = saved }()
			now = tt.at
			_, err := ti.parseAccess(token)
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			assert.ErrorIs(t, err, tt.wantErr)
		})
	}

	t.Run("a tampered copy", func(t *testing.T) {
		// The signature's first character, which no decoder ignores.
		i := strings.LastIndexByte(token, '.') + 1
		c := byte('A')
		if token[i] == 'A' {
			c = 'B'
		}
		tampered := token[:i] + string(c) + token[i+1:]
		_, err := ti.parseAccess(tampered)
		assert.Error(t, err)
		assert.NotContains(t, ti.checked, tampered)
	})
}

// TestCheckedAccessTokensAreBounded checks that the tokens kept as
// checked never number more than maxCheckedTokens.
func TestCheckedAccessTokensAreBounded(t *testing.T) {
	now := time.Now()
	ti := newTokenIssuer([]byte(strings.Repeat("s", 32)), 15*time.Minute, func() time.Time { return now })
	for i := range maxCheckedTokens + 10 {
		id := fmt.Sprintf("l-%d", i)
		token, err := ti.access(accessClaims{RegisteredClaims: jwtSubject("u-1", id, 1), LoginID: id})
		require.NoError(t, err)
		_, err = ti.parseAccess(token)
		require.NoError(t, err)
		require.LessOrEqual(t, len(ti.checked), maxCheckedTokens)
	}
}

// TestCheckedAccessTokensOutliveTheRequestBuffer checks that a token
// whose bytes are the request's buffer, as Fiber hands header values,
// is kept as a copy: when the buffer is overwritten with another device's
// token, that token is checked in full and gets its own claims, not the
// first one's.
func TestCheckedAccessTokensOutliveTheRequestBuffer(t *testing.T) {
	now := time.Now()
	ti := newTokenIssuer([]byte(strings.Repeat("s", 32)), 15*time.Minute, func() time.Time { return now })
	tokenOf := func(user, login string) string {
		token, err := ti.access(accessClaims{RegisteredClaims: jwtSubject(user, login, 1), LoginID: login})
		require.NoError(t, err)
		return token
	}
	first, second := tokenOf("u-1", "l-1"), tokenOf("u-2", "l-2")
	require.Len(t, second, len(first))

	buf := []byte(first)
	claims, err := ti.parseAccess(unsafe.String(&buf[0], len(buf)))
	require.NoError(t, err)
	require.Equal(t, "u-1", claims.Subject)

	copy(buf, second) // the next request on the connection
	for k := range ti.checked {
		assert.Equal(t, first, k, "the token kept as checked")
	}
	claims, err = ti.parseAccess(second)
	require.NoError(t, err)
	assert.Equal(t, "u-2", claims.Subject, "subject of the second token")
	assert.Equal(t, "l-2", claims.LoginID, "login of the second token")
	claims, err = ti.parseAccess(first)
	require.NoError(t, err)
	assert.Equal(t, "u-1", claims.Subject, "subject of the first token")
}
