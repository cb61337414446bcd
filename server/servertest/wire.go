package servertest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The golden wire files (schema/testdata/wire/*.json) pin the JSON of each
// wire shape: requests as clients send them, answers as the server gives
// them. The server's tests send the requests and compare the answers; the
// Go client's tests decode the answers and build the requests; both check
// the same files. FIELDSYNC_UPDATE_GOLDEN=1 makes MatchWire rewrite them.

// volatile are the fields whose values differ from run to run (tokens,
// times, generated ids, opaque checkpoints): MatchWire compares only that
// they are there, null or not.
var volatile = map[string]bool{
	"access_token": true, "refresh_token": true, "checkpoint": true,
	"updated_at": true, "created_at": true, "updated_by": true,
}

// WireDir is the folder of the golden wire files.
func WireDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "schema", "testdata", "wire")
}

// Wire returns the golden wire file name.
func Wire(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(WireDir(), name))
	require.NoError(tb, err, "golden wire file")
	return raw
}

// MatchWire checks that got is the JSON of the golden wire file name, but
// for the values of volatile fields. With FIELDSYNC_UPDATE_GOLDEN set, it
// writes got to the file instead.
func MatchWire(tb testing.TB, name string, got []byte) {
	tb.Helper()
	if os.Getenv("FIELDSYNC_UPDATE_GOLDEN") != "" {
		var out bytes.Buffer
		require.NoError(tb, json.Indent(&out, got, "", "  "))
		out.WriteByte('\n')
		require.NoError(tb, os.WriteFile(filepath.Join(WireDir(), name), out.Bytes(), 0o644))
	}
	assert.JSONEq(tb, string(Masked(tb, Wire(tb, name))), string(Masked(tb, got)), name)
}

// Masked returns JSON with the value of every volatile field (and the id
// of a user, which the server makes up) replaced by a placeholder naming
// its JSON type, so that two answers of different runs compare equal.
func Masked(tb testing.TB, raw []byte) []byte {
	tb.Helper()
	var v any
	require.NoErrorf(tb, json.Unmarshal(raw, &v), "JSON: %s", raw)
	out, err := json.Marshal(mask(v, ""))
	require.NoError(tb, err)
	return out
}

func mask(v any, parent string) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if e != nil && (volatile[k] || (k == "id" && parent == "user")) {
				x[k] = typeOf(e)
				continue
			}
			x[k] = mask(e, k)
		}
	case []any:
		for i, e := range x {
			x[i] = mask(e, parent)
		}
	}
	return v
}

// typeOf names a JSON value's type.
func typeOf(v any) string {
	switch v.(type) {
	case string:
		return "<string>"
	case float64:
		return "<number>"
	case bool:
		return "<bool>"
	case []any:
		return "<array>"
	}
	return "<object>"
}
