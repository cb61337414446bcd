package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// testmongo prints a URI that a client can write to and read back, and
// ends cleanly when interrupted.
func TestPrintsAWorkingURI(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-dir", t.TempDir()}, w, io.Discard); w.Close() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	uri := strings.TrimSpace(line)
	require.True(t, strings.HasPrefix(uri, "mongodb://127.0.0.1:"), uri)

	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri+"trial"))
	require.NoError(t, err)
	defer client.Disconnect(context.Background())
	coll := client.Database("trial").Collection("c")
	_, err = coll.InsertOne(ctx, bson.M{"_id": "a", "v": 1})
	require.NoError(t, err)
	var got struct{ V int }
	require.NoError(t, coll.FindOne(ctx, bson.M{"_id": "a"}).Decode(&got))
	assert.Equal(t, 1, got.V)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("testmongo did not stop")
	}
}

func TestRefusesUnknownFlags(t *testing.T) {
	var stderr strings.Builder
	err := run(context.Background(), []string{"-nope"}, io.Discard, &stderr)
	assert.Error(t, err)
	assert.Contains(t, stderr.String(), "-nope")
}

// After its input ends, testmongo still catches SIGTERM while it stops
// (a test's Close ends the input and signals at once): the signal does
// not kill it midway. Were the signal no longer caught, it would end
// this test's process.
func TestCatchesSIGTERMAfterTheInputEnds(t *testing.T) {
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	ctx, stop := lifetime(r)
	defer stop()
	require.NoError(t, w.Close())
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the end of the input did not end the context")
	}
	time.Sleep(100 * time.Millisecond) // what follows the end of the input has run
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	time.Sleep(200 * time.Millisecond)
}
