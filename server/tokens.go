package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
)

const tokenIssuerName = "fieldsync"

// accessClaims are what an access token carries: who, on which login and
// device, and the role for clients to see. It names no territories, so
// that a token stays small whatever the user's scope: the server reads
// the user's current role and territories from the store on every request.
type accessClaims struct {
	jwt.RegisteredClaims
	Role     string `json:"role"`
	DeviceID string `json:"did"`
	LoginID  string `json:"lid"`
}

// tokenIssuer signs and checks access tokens (HS256 only) and refresh
// tokens (login id, generation and an HMAC over both).
type tokenIssuer struct {
	accessKey  []byte
	refreshKey []byte
	ttl        time.Duration
	now        func() time.Time
	parser     *jwt.Parser

	// checked holds the claims of access tokens whose signature and
	// claims were checked, by the token, so that a device's next requests
	// with the same token skip the decoding and the HMAC; their times are
	// checked again at each use. It holds at most maxCheckedTokens and is
	// emptied when full.
	mu      gosync.Mutex
	checked map[string]accessClaims
}

// maxCheckedTokens bounds tokenIssuer.checked: a few hundred KB of tokens,
// room for the access tokens of thousands of devices in use at once.
const maxCheckedTokens = 4096

func newTokenIssuer(secret []byte, ttl time.Duration, now func() time.Time) *tokenIssuer {
	return &tokenIssuer{
		accessKey:  secret,
		refreshKey: deriveKey(secret, "fieldsync refresh token"),
		ttl:        ttl,
		now:        now,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithIssuer(tokenIssuerName),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithTimeFunc(now),
		),
		checked: map[string]accessClaims{},
	}
}

// deriveKey returns a key for one purpose from the server secret, so that
// no two kinds of token share a key.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// access signs an access token.
func (t *tokenIssuer) access(claims accessClaims) (string, error) {
	now := t.now()
	claims.Issuer = tokenIssuerName
	claims.IssuedAt = jwt.NewNumericDate(now)
	// JWT times are whole seconds: round the expiry up, so that a token
	// never lives less than the ttl the client is told.
	claims.ExpiresAt = jwt.NewNumericDate(now.Add(t.ttl).Add(time.Second - 1).Truncate(time.Second))
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.accessKey)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return signed, nil
}

// errTokenExpired tells an expired token from a bad one.
var errTokenExpired = errors.New("token expired")

// parseAccess checks an access token's algorithm, signature, issuer and
// times, and returns its claims. A token checked before is not decoded
// again, only its times are checked.
func (t *tokenIssuer) parseAccess(token string) (*accessClaims, error) {
	t.mu.Lock()
	claims, ok := t.checked[token]
	t.mu.Unlock()
	if ok {
		return &claims, t.checkTimes(&claims)
	}
	_, err := t.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.accessKey, nil })
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, errTokenExpired
	}
	if err != nil {
		return nil, err
	}
	if claims.Subject == "" || claims.LoginID == "" {
		return nil, errors.New("token lacks subject or login")
	}
	t.mu.Lock()
	if len(t.checked) >= maxCheckedTokens {
		clear(t.checked)
	}
	// The token may share its bytes with the request's buffer, which the
	// next request overwrites: the key is a copy.
	t.checked[strings.Clone(token)] = claims
	t.mu.Unlock()
	return &claims, nil
}

// checkTimes checks the times of claims that passed the parser before, as
// the parser does: expired from ExpiresAt on, not valid before IssuedAt.
func (t *tokenIssuer) checkTimes(claims *accessClaims) error {
	now := t.now()
	if !now.Before(claims.ExpiresAt.Time) {
		return errTokenExpired
	}
	if now.Before(claims.IssuedAt.Time) {
		return jwt.ErrTokenUsedBeforeIssued
	}
	return nil
}

// refresh returns the refresh token of a login's generation.
func (t *tokenIssuer) refresh(loginID string, generation int64) string {
	body := loginID + "." + strconv.FormatInt(generation, 10)
	return body + "." + t.refreshMAC(body)
}

func (t *tokenIssuer) refreshMAC(body string) string {
	m := hmac.New(sha256.New, t.refreshKey)
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// parseRefresh checks a refresh token's MAC and returns its login id and
// generation. A token that parses was issued by this server.
func (t *tokenIssuer) parseRefresh(token string) (loginID string, generation int64, ok bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || len(token) > 512 {
		return "", 0, false
	}
	body, mac := token[:i], token[i+1:]
	if !hmac.Equal([]byte(mac), []byte(t.refreshMAC(body))) {
		return "", 0, false
	}
	loginID, gen, found := strings.Cut(body, ".")
	if !found {
		return "", 0, false
	}
	generation, err := strconv.ParseInt(gen, 10, 64)
	if err != nil {
		return "", 0, false
	}
	return loginID, generation, true
}

// jwtSubject returns the registered claims of an access token for a user
// under a login generation.
func jwtSubject(userID, loginID string, generation int64) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: userID, ID: loginID + "." + strconv.FormatInt(generation, 10) + "." + uuid.NewString()}
}
