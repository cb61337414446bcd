package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Cookie names.
const (
	sessionCookie = "fieldsync_console"
	preCookie     = "fieldsync_console_pre" // before sign-in: binds the sign-in form's token
	langCookie    = "fieldsync_lang"
)

// signer signs session cookies and derives form tokens from a key that
// only this console uses.
type signer struct {
	key []byte
}

func newSigner(secret []byte) signer {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("fieldsync console session"))
	return signer{key: m.Sum(nil)}
}

func (s signer) mac(purpose, value string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(purpose))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// seal returns value with its MAC for purpose.
func (s signer) seal(purpose, value string) string {
	return value + "." + s.mac(purpose, value)
}

// open returns the value sealed for purpose, or false when the seal does
// not check out.
func (s signer) open(purpose, sealed string) (string, bool) {
	i := strings.LastIndexByte(sealed, '.')
	if i <= 0 || len(sealed) > 512 {
		return "", false
	}
	value, mac := sealed[:i], sealed[i+1:]
	if !hmac.Equal([]byte(mac), []byte(s.mac(purpose, value))) {
		return "", false
	}
	return value, true
}

// formToken is the token every form of a session (or pre-session) carries.
func (s signer) formToken(session string) string {
	return s.mac("form", session)
}

// checkFormToken reports whether token is the form token of session.
func (s signer) checkFormToken(session, token string) bool {
	return session != "" && token != "" && hmac.Equal([]byte(token), []byte(s.formToken(session)))
}

// randomID returns 128 random bits, URL-safe.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
