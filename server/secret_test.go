package server_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server"
)

func TestStartersAtOnceAgreeOnTheSecret(t *testing.T) {
	// Several starters on one empty data dir, many times over: every one
	// gets the same secret, and none ever reads a file that is not yet
	// whole.
	for round := range 100 {
		dir := t.TempDir()
		const starters = 6
		secrets := make([][]byte, starters)
		errs := make([]error, starters)
		var ready, wg gosync.WaitGroup
		ready.Add(1)
		for i := range starters {
			wg.Go(func() {
				ready.Wait()
				secrets[i], errs[i] = server.LoadSecret(dir, "")
			})
		}
		ready.Done()
		wg.Wait()
		for i := range starters {
			require.NoErrorf(t, errs[i], "round %d, starter %d", round, i)
			require.Equalf(t, secrets[0], secrets[i], "round %d, starter %d", round, i)
		}
		require.Len(t, secrets[0], 32)
		kept, err := os.ReadFile(filepath.Join(dir, server.SecretFileName))
		require.NoError(t, err)
		assert.Equal(t, hex.EncodeToString(secrets[0])+"\n", string(kept))
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Lenf(t, entries, 1, "round %d: only the secret is left, no temp file", round)
	}
}

func TestSecretFileIsWholeOrAbsent(t *testing.T) {
	dir := t.TempDir()
	// What a start cut off by a crash leaves behind: a temp file with part
	// of a secret. It is not the secret, and a start makes a whole one.
	leftover := filepath.Join(dir, ".jwt.secret-123")
	require.NoError(t, os.WriteFile(leftover, []byte("abc"), 0o600))
	old := time.Now().Add(-time.Hour)
	require.NoError(t, os.Chtimes(leftover, old, old))
	secret, err := server.LoadSecret(dir, "")
	require.NoError(t, err)
	again, err := server.LoadSecret(dir, "")
	require.NoError(t, err)
	assert.Equal(t, secret, again, "the second start reads the first's secret")
	info, err := os.Stat(filepath.Join(dir, server.SecretFileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	assert.NoFileExists(t, leftover, "an old start's temp file is removed")

	// A broken secret file is never silently replaced.
	broken := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(broken, server.SecretFileName), []byte(strings.Repeat("a", 10)), 0o600))
	_, err = server.LoadSecret(broken, "")
	require.Error(t, err)
	assert.NotContains(t, fmt.Sprint(err), "aaaa", "the error does not show the secret")
}
