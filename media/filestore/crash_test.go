package filestore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/media"
)

// putForeverEnv, when set to a folder, makes the test binary a process
// that starts a Put into that folder whose body never ends, and waits to
// be killed.
const putForeverEnv = "FILESTORE_PUT_FOREVER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(putForeverEnv); dir != "" {
		s, err := Open(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		err = s.Put(context.Background(), media.Key(strings.Repeat("ab", 32)), io.MultiReader(strings.NewReader("some bytes"), blocked{}), -1, "image/jpeg")
		fmt.Fprintln(os.Stderr, "the Put ended:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// blocked is a body whose next bytes never come.
type blocked struct{}

func (blocked) Read([]byte) (int, error) { select {} }

// crashMidPut runs a process that starts a Put into dir, waits until its
// temporary file has bytes, and kills it.
func crashMidPut(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), putForeverEnv+"="+dir)
	cmd.Stderr = os.Stderr
	had := tempFiles(t, dir)
	require.NoError(t, cmd.Start())
	defer cmd.Wait()
	defer cmd.Process.Kill()
	require.Eventually(t, func() bool { return tempFiles(t, dir) > had }, 30*time.Second, 10*time.Millisecond,
		"the Put writes its temporary file")
}

// tempFiles counts the temporary files in a store's folder that hold
// bytes.
func tempFiles(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, tmpDirName))
	if os.IsNotExist(err) {
		return 0
	}
	require.NoError(t, err)
	n := 0
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Size() > headerSize {
			n++
		}
	}
	return n
}

func TestTempFilesOfCrashedPutsAreSwept(t *testing.T) {
	dir := t.TempDir()

	// A Put in progress in this process keeps its temporary file.
	live, err := Open(dir)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- live.Put(ctx, media.Key(strings.Repeat("cd", 32)), pr, -1, "image/jpeg") }()
	_, err = pw.Write(make([]byte, 1000))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return tempFiles(t, dir) == 1 }, 30*time.Second, 10*time.Millisecond,
		"the live Put writes its temporary file")

	// At start-up: a process killed mid-Put leaves its temporary file,
	// and the next Open removes it, but not the live one.
	crashMidPut(t, dir)
	require.Equal(t, 2, tempFiles(t, dir), "the killed Put's file and the live one")
	_, err = Open(dir)
	require.NoError(t, err)
	assert.Equal(t, 1, tempFiles(t, dir), "start-up removes only the killed Put's file")

	// By the sweeper.
	crashMidPut(t, dir)
	require.Equal(t, 2, tempFiles(t, dir))
	photos := media.NewPhotos(live, 1<<20)
	sweepCtx, stopSweeper := context.WithCancel(context.Background())
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		photos.RunSweeper(sweepCtx, time.Hour, time.Hour, func(context.Context, string) (bool, error) { return true, nil },
			slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	require.Eventually(t, func() bool { return tempFiles(t, dir) == 1 }, 30*time.Second, 10*time.Millisecond,
		"the sweeper removes the killed Put's file")
	stopSweeper()
	<-swept

	// The live Put still finishes, or fails cleanly, and leaves nothing.
	cancel()
	pw.Close()
	<-done
	entries, err := os.ReadDir(filepath.Join(dir, tmpDirName))
	require.NoError(t, err)
	assert.Empty(t, entries, "no temporary file is left")
}
