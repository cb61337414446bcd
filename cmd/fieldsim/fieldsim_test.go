package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/stretchr/testify/assert"
)

const adminPassword = "admin-password"

// startServer runs a real fieldsync server in the test and returns its URL.
func startServer(t *testing.T) string {
	t.Helper()
	return servertest.Start(t, servertest.Options{AdminPassword: adminPassword}).URL
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runSim runs a short simulation with faults on and checks it passed.
func runSim(t *testing.T, seed uint64) (Config, *Result) {
	t.Helper()
	cfg := Config{URL: startServer(t), Admin: "admin", Password: adminPassword,
		Reps: 3, Seed: seed, OfflineRate: 0.3, FaultRate: 0.25, Dir: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // -race makes bcrypt logins slow
	defer cancel()
	var out bytes.Buffer
	res, err := Run(ctx, cfg, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return cfg, res
}

func TestDayVerifies(t *testing.T) {
	t.Parallel()
	_, res := runSim(t, 1)
	nf := 0
	for _, n := range res.Faults {
		nf += n
	}
	if nf == 0 {
		t.Error("no fault was injected")
	}
	if res.Created[schema.Visits] == 0 || res.Created[schema.Photos] == 0 || res.Created[schema.Orders] == 0 {
		t.Errorf("created too little: %v", res.Created)
	}
	if res.Confirmed != 1 {
		t.Errorf("the manager confirmed %d orders, want 1", res.Confirmed)
	}
	if len(res.Replicas) != 3+2 {
		t.Errorf("%d replicas checked, want 5 (3 reps, manager, distributor)", len(res.Replicas))
	}
	if res.Devices != 3+2+1 {
		t.Errorf("%d devices, want 6 (one reinstall)", res.Devices)
	}
}

func TestVerifyCatchesLoss(t *testing.T) {
	t.Parallel()
	cfg, res := runSim(t, 2)
	ctx := context.Background()
	var victim *Expected
	for _, e := range res.Expected {
		if e.Collection == schema.Visits {
			victim = e
			break
		}
	}
	if victim == nil {
		t.Fatal("the run created no visit")
	}
	// Delete it behind the devices' backs, as the admin.
	admin, err := fieldsync.Open(ctx, fieldsync.Config{BaseURL: cfg.URL, Username: "admin", Password: adminPassword,
		DeviceID: "loss", StorePath: filepath.Join(t.TempDir(), "admin.db")})
	must(t, err)
	defer admin.Close()
	_, err = admin.Sync(ctx)
	must(t, err)
	must(t, admin.Delete(ctx, schema.Visits, victim.ID))
	rep, err := admin.Sync(ctx)
	must(t, err)
	if rep.Applied != 1 {
		t.Fatalf("the delete was not applied: %+v", rep)
	}
	err = Verify(ctx, cfg, res)
	if err == nil {
		t.Fatal("Verify missed a deleted visit")
	}
	if !strings.Contains(err.Error(), "visits/"+victim.ID+" (by "+victim.Username+"): deleted on the server") {
		t.Errorf("Verify did not name the lost visit: %v", err)
	}
	if !strings.Contains(err.Error(), "visits/"+victim.ID+" v") {
		t.Errorf("Verify did not notice the device still holding the visit: %v", err)
	}
}

func TestHelpAndMissingPassword(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr), "-h exits 0")
	first, _, _ := strings.Cut(stderr.String(), "\n")
	assert.Equal(t, "fieldsim simulates a field-sales day against a running fieldsync server and checks that nothing was lost or duplicated.", first)
	for _, want := range []string{"Usage:\n  fieldsim -password", `(default "http://127.0.0.1:8080")`, "(default 3)", "(default 0.15)"} {
		assert.Contains(t, stderr.String(), want)
	}
	assert.NotContains(t, stderr.String(), "go-build", "no temporary build path")

	stderr.Reset()
	assert.Equal(t, 1, run(nil, &stdout, &stderr))
	assert.Equal(t, "fieldsim: -password is required\n", stderr.String())
	assert.Equal(t, 2, run([]string{"-bogus"}, &stdout, &stderr), "a bad flag")
}
