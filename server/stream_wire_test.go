package server

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

var update = flag.Bool("update", false, "rewrite golden files")

// The bytes of each kind of stream event are pinned by a golden file.
func TestStreamWireFormat(t *testing.T) {
	var buf bytes.Buffer
	e := &sse{w: bufio.NewWriter(&buf), metrics: newMetrics()}
	require.True(t, e.event("ready", struct{}{}))
	require.True(t, e.event("changes", changesEvent{Collections: []schema.Collection{schema.Customers, schema.Visits}}))
	require.True(t, e.comment("ping"))
	require.True(t, e.event("expired", map[string]string{"reason": "token_expired"}))

	path := filepath.Join("testdata", "stream.golden")
	if *update {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), buf.String())
}
