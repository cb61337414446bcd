package main

import (
	"bufio"
	"context"
	"io"
	"strings"
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
