package ts_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The client's wire types (src/wire.ts) are generated from the OpenAPI
// document by openapi-typescript (`npm run generate`). This fails when the
// committed file is not what the document generates today: a change to
// docs/openapi.yaml must regenerate it, and no hand edit may slip in.
func TestWireTypesAreGeneratedFromTheDocument(t *testing.T) {
	needNode(t)
	npmInstall(t)
	cmd := exec.Command("npm", "run", "--silent", "wire")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoErrorf(t, cmd.Run(), "npm run wire: %s", stderr.String())
	require.Contains(t, stdout.String(), "export interface components", "openapi-typescript printed no types")
	committed, err := os.ReadFile(filepath.Join("src", "wire.ts"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(stdout.Bytes(), committed),
		"src/wire.ts is not what docs/openapi.yaml generates: run `npm run generate` in clients/ts and commit the result")
}
