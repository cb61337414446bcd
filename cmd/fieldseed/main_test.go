package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/server/servertest"
)

func TestRun(t *testing.T) {
	url := servertest.Start(t, servertest.Options{}).URL
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-url", url, "-admin", servertest.AdminName, "-password", servertest.AdminPassword,
		"-territories", "1", "-reps-per-territory", "1", "-customers", "10", "-products", "2", "-price-lists", "1", "-days", "2",
		"-user-password", "s3cret-pass"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	assert.Contains(t, stdout.String(), "s3cret-pass")
	assert.Contains(t, stdout.String(), "2 route plans")
	assert.Contains(t, stdout.String(), "0 rejected")
}

func TestRunNeedsPassword(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Error(t, run(context.Background(), []string{"-url", "http://127.0.0.1:1"}, &stdout, &stderr))
}
