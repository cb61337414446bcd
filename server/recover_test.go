package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	stdsync "sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync"
)

// panickyStore is a record store whose change feed panics.
type panickyStore struct{ sync.Store }

func (panickyStore) Watermark(context.Context) (int64, error) { panic("the feed is broken") }

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu  stdsync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Lines returns the lines written so far.
func (b *syncBuffer) Lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

func TestHandlerPanicsAnswerInternalAndTheServerKeepsServing(t *testing.T) {
	var logs syncBuffer
	srv := servertest.Start(t, servertest.Options{
		Engine: func(c *sync.Config) { c.Store = panickyStore{c.Store} },
		Server: func(c *server.Config) { c.Logger = slog.New(slog.NewJSONHandler(&logs, nil)) },
	})
	ts := &testServer{URL: srv.URL, Dir: srv.Dir, Secret: srv.Secret, Store: srv.Store, client: srv.Client(), HTTP: srv.HTTP}
	admin := ts.login(t, servertest.AdminName, servertest.AdminPassword, "d-admin")

	require.Equal(t, http.StatusOK, ts.call(t, "POST", "/v1/sync/push", admin.Access, inputBatch(inputTerritory("m-1", "t-1"))).Status)
	for range 3 {
		r := ts.call(t, "POST", "/v1/sync/pull", admin.Access, map[string]any{"checkpoint": ""})
		assert.Equal(t, http.StatusInternalServerError, r.Status)
		require.Equal(t, "internal", r.ErrorCode(), string(r.Raw))
		assert.Equal(t, "internal error", r.Body["error"].(map[string]any)["message"])
		assert.NotContains(t, string(r.Raw), "broken", "the panic stays in the log")
	}
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/healthz", "", nil).Status, "the process keeps serving")
	assert.Equal(t, http.StatusOK, ts.call(t, "POST", "/v1/sync/push", admin.Access, inputBatch(inputTerritory("m-2", "t-2"))).Status)

	lines := logs.Lines()
	var failed []string
	for _, l := range lines {
		if strings.Contains(l, `"msg":"request failed"`) {
			failed = append(failed, l)
		}
	}
	require.Len(t, failed, 3, "each panic logged once: %v", lines)
	assert.Contains(t, failed[0], `"route":"/v1/sync/pull"`)
	assert.Contains(t, failed[0], "the feed is broken")
}
