package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/cmd/fieldseed/seed"
	"github.com/fieldsync/fieldsync/server/servertest"
)

func TestLoadShortRun(t *testing.T) {
	ctx := context.Background()
	url := servertest.Start(t, servertest.Options{}).URL
	_, err := seed.Run(ctx, &bytes.Buffer{}, seed.Config{URL: url, Admin: servertest.AdminName, Password: servertest.AdminPassword,
		Territories: 2, RepsPerTerritory: 2, Customers: 40, Products: 10, Days: 1, Seed: 3})
	require.NoError(t, err)

	out := filepath.Join(t.TempDir(), "out.json")
	var stdout, stderr bytes.Buffer
	err = run(ctx, []string{"-url", url, "-devices", "5", "-reps", "4", "-duration", "3s", "-interval", "400ms",
		"-orders", "0.5", "-photos", "0.3", "-ramp", "0s", "-warmup", "0s", "-json", out}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	t.Log("\n" + stdout.String())

	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	var res Result
	require.NoError(t, json.Unmarshal(raw, &res))
	assert.Equal(t, 5, res.Devices)
	assert.Positive(t, res.Visits)
	assert.Zero(t, res.SyncFails, res.FirstErrors)
	assert.Zero(t, res.Rejected)
	for _, ep := range []string{"login", "push", "pull"} {
		s := res.Endpoints[ep]
		assert.Positive(t, s.Requests, ep)
		assert.Zero(t, s.Errors, ep)
		assert.Positive(t, s.P50Ms, ep)
		assert.LessOrEqual(t, s.P50Ms, s.P95Ms, ep)
		assert.LessOrEqual(t, s.P95Ms, s.P99Ms, ep)
		assert.LessOrEqual(t, s.P99Ms, s.MaxMs, ep)
	}
	assert.Equal(t, 5, res.Endpoints["login"].Requests, "one sign-in per device")
	require.NotNil(t, res.RSS, res.RSSError)
	assert.Positive(t, res.RSS.PeakMB)
	assert.Contains(t, stdout.String(), "ENDPOINT")
}

func TestLoadReadsRSSOfPID(t *testing.T) {
	v, err := procRSS(os.Getpid())
	require.NoError(t, err)
	assert.Positive(t, v)
}

func TestParseGauge(t *testing.T) {
	text := "# HELP process_resident_memory_bytes Resident memory size in bytes.\n" +
		"# TYPE process_resident_memory_bytes gauge\n" +
		"process_resident_memory_bytes_total 1\n" +
		"process_resident_memory_bytes 4.5056e+07\n"
	v, err := parseGauge(strings.NewReader(text), "process_resident_memory_bytes")
	require.NoError(t, err)
	assert.Equal(t, 4.5056e7, v)
	_, err = parseGauge(strings.NewReader("go_goroutines 3\n"), "process_resident_memory_bytes")
	assert.Error(t, err)
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url    string
		remote bool
		ok     bool
	}{
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
		{"http://sync.example.com", false, false},
		{"http://10.0.0.5:8080", false, false},
		{"http://sync.example.com", true, true},
		{"ftp://127.0.0.1", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := checkURL(tt.url, tt.remote)
			assert.Equal(t, tt.ok, err == nil, "got %v", err)
		})
	}
}
