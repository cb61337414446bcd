package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/internal/usage"
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

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &stdout, &stderr)
	assert.Equal(t, 0, usage.ExitCode("fieldseed", err, &stderr), "-h exits 0")
	first, _, _ := strings.Cut(stderr.String(), "\n")
	assert.Equal(t, "fieldseed loads a realistic data set (territories, users, customers, products, price lists, route plans) into a fieldsync server.", first)
	for _, want := range []string{`(default "http://127.0.0.1:8080")`, `(default "admin")`, "(default 2000)", "(default 30)"} {
		assert.Contains(t, stderr.String(), want)
	}
	assert.NotContains(t, stderr.String(), "help requested")
}
