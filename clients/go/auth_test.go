package fieldsync_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
)

func TestExpiredTokens(t *testing.T) {
	t.Parallel()
	// Access tokens live 1.5 s (the server rounds expiry up to the
	// second, so at most 2.5 s).
	tm := newTeam(t, func(_ *sync.Config, s *server.Config) { s.AccessTTL = 1500 * time.Millisecond })
	ctx := context.Background()
	frozen := time.Now()
	tests := []struct {
		name                    string
		tweak                   func(*fieldsync.Config)
		spoil                   bool
		wantRefresh, wantLogins int // at least that many refreshes
	}{
		{name: "renewed before it runs out", wantRefresh: 1},
		{name: "renewed after a 401 (the device's clock is wrong)",
			tweak: func(c *fieldsync.Config) { c.Now = func() time.Time { return frozen } }, wantRefresh: 1},
		{name: "signed in again when the refresh token is refused", spoil: true, wantLogins: 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &logBuffer{}
			tweaks := []func(*fieldsync.Config){logs.attach}
			if tt.tweak != nil {
				tweaks = append(tweaks, tt.tweak)
			}
			c := tm.open(t, "rep1", "phone-"+string(rune('a'+i)), tweaks...)
			_, err := c.Sync(ctx)
			require.NoError(t, err)
			time.Sleep(2600 * time.Millisecond) // past any token's expiry
			if tt.spoil {
				c.SpoilRefreshToken()
			}
			id := "v-token-" + string(rune('a'+i))
			require.NoError(t, c.Put(ctx, schema.Visits, id, visit("c-1", "after the token expired")))
			rep, err := c.Sync(ctx)
			require.NoError(t, err)
			assert.Equal(t, 1, rep.Applied)
			// A slow run (-race) may see the new token run out too.
			assert.GreaterOrEqual(t, rep.Refreshes, tt.wantRefresh, "refreshes")
			assert.Equal(t, tt.wantLogins, rep.Logins, "sign-ins with the password")
			logs.assertNoSecrets(t, password("rep1"))
		})
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	tm := newTeam(t)
	logs := &logBuffer{}
	c := tm.open(t, "rep1", "phone-1", logs.attach, func(c *fieldsync.Config) { c.Password = "wrong-password" })
	rep, err := c.Sync(context.Background())
	require.Error(t, err)
	assert.Equal(t, schema.CodeUnauthorized, schema.ErrorCode(err))
	assert.Zero(t, rep.Retries, "a refused sign-in is not retried")
	assert.NotContains(t, err.Error(), "wrong-password")
	logs.assertNoSecrets(t, "wrong-password")
}

// logBuffer collects a client's logs, down to debug.
type logBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) attach(c *fieldsync.Config) {
	c.Logger = slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// assertNoSecrets checks that the logs hold neither the password nor
// anything like a token.
func (b *logBuffer) assertNoSecrets(t *testing.T, password string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	logs := b.buf.String()
	assert.NotEmpty(t, logs)
	for _, secret := range []string{password, "eyJ", "Bearer", "token="} {
		assert.NotContains(t, logs, secret)
	}
}

// A refresh the server refuses before using the token (503 from an
// instance at its in-flight cap) keeps the token: the next sync refreshes
// with it instead of signing in with the password.
func TestRefusedRefreshKeepsTheToken(t *testing.T) {
	t.Parallel()
	tm := newTeam(t, func(_ *sync.Config, s *server.Config) { s.AccessTTL = 1500 * time.Millisecond })
	ctx := context.Background()
	faults := &faultyTransport{}
	cfg := tm.config(t, "rep1", "phone-refused-refresh")
	faultyClient(faults)(&cfg)
	cfg.Retry.MaxAttempts = 1
	c := openClient(t, cfg)
	_, err := c.Sync(ctx)
	require.NoError(t, err)
	time.Sleep(2600 * time.Millisecond) // past the token's expiry

	faults.set(on("/v1/auth/refresh", answer503))
	_, err = c.Sync(ctx)
	var re *fieldsync.ResponseError
	require.True(t, errors.As(err, &re), "%v", err)
	assert.Equal(t, http.StatusServiceUnavailable, re.Status)

	faults.set(nil)
	rep, err := c.Sync(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, faults.count("/v1/auth/refresh"), "the kept token is presented again")
	assert.GreaterOrEqual(t, rep.Refreshes, 1)
	assert.Zero(t, rep.Logins, "no sign-in with the password")
}
