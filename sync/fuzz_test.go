package sync_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// fuzzSeeds are single mutations for FuzzPush to start from: a valid write
// of each collection, updates and deletes of the seeded records, and every
// class of malformed mutation the HTTP tests send.
var fuzzSeeds = []string{
	// Valid creations, one per collection.
	`{"mutation_id":"s-t","collection":"territories","id":"s-t","op":"upsert","base_version":0,"data":{"name":"South","region":"EU"}}`,
	`{"mutation_id":"s-c","collection":"customers","id":"s-c","op":"upsert","base_version":0,"data":{"code":"C-9","name":"Kiosk","territory_id":"t-1","lat":52.5,"lng":13.4,"grade":"B","contacts":[{"name":"Ann","role":"owner","phone":"+49 1"}],"credit_limit":5000,"tags":["a"],"geofence_m":100}}`,
	`{"mutation_id":"s-p","collection":"products","id":"s-p","op":"upsert","base_version":0,"data":{"sku":"S-9","name":"Water","unit":"case","price":499,"active":true}}`,
	`{"mutation_id":"s-pl","collection":"price_lists","id":"s-pl","op":"upsert","base_version":0,"data":{"name":"Winter","customer_ids":["c-1"],"valid_from":"2025-01-01","valid_to":"2025-03-31","items":[{"product_id":"p-1","price":999,"min_quantity":10}]}}`,
	`{"mutation_id":"s-rp","collection":"route_plans","id":"s-rp","op":"upsert","base_version":0,"data":{"rep_id":"u-rep","date":"2025-01-02","stops":[{"customer_id":"c-1","position":0,"status":"planned","window_start":"09:00","window_end":"10:00"}]}}`,
	`{"mutation_id":"s-v","collection":"visits","id":"s-v","op":"upsert","base_version":0,"data":{"customer_id":"c-1","route_plan_id":"rp-1","check_in":{"at":"2025-01-01T10:00:00Z","lat":52.5001,"lng":13.4001,"accuracy":5},"check_out":{"at":"2025-01-01T10:20:00Z","lat":52.5,"lng":13.4},"notes":"ok","outcome":"order"}}`,
	`{"mutation_id":"s-o","collection":"orders","id":"s-o","op":"upsert","base_version":0,"data":{"customer_id":"c-1","visit_id":"v-1","lines":[{"product_id":"p-1","quantity":3,"unit_price":1299,"discount":100}],"status":"submitted","requested_delivery_date":"2025-01-05"}}`,
	`{"mutation_id":"s-ph","collection":"photos","id":"s-ph","op":"upsert","base_version":0,"data":{"visit_id":"v-1","sha256":"` + strings.Repeat("ab", 32) + `","content_type":"image/jpeg","size":1024,"taken_at":"2025-01-01T10:05:00Z","lat":52.5,"lng":13.4}}`,
	// Updates of the seeded records, current and stale.
	`{"mutation_id":"s-cu","collection":"customers","id":"c-1","op":"upsert","base_version":1,"data":{"code":"C-1","name":"Corner Shop","territory_id":"t-1","lat":52.5,"lng":13.4,"grade":"A","notes":"side door"}}`,
	`{"mutation_id":"s-cm","collection":"customers","id":"c-2","op":"upsert","base_version":1,"data":{"code":"C-2","name":"Far Shop","territory_id":"t-1","grade":"C"}}`,
	`{"mutation_id":"s-rpu","collection":"route_plans","id":"rp-1","op":"upsert","base_version":1,"data":{"rep_id":"u-rep","date":"2025-01-01","stops":[{"customer_id":"c-1","position":0,"status":"done"}]}}`,
	`{"mutation_id":"s-ou","collection":"orders","id":"o-1","op":"upsert","base_version":1,"data":{"customer_id":"c-1","lines":[{"product_id":"p-1","quantity":9,"unit_price":1299}],"status":"submitted"}}`,
	`{"mutation_id":"s-vu","collection":"visits","id":"v-1","op":"upsert","base_version":1,"data":{"customer_id":"c-1","check_in":{"at":"2025-01-01T09:00:00Z","lat":0,"lng":0}}}`,
	// Deletes.
	`{"mutation_id":"s-d1","collection":"products","id":"p-del","op":"delete","base_version":1}`,
	`{"mutation_id":"s-d2","collection":"territories","id":"t-del","op":"delete","base_version":7}`,
	`{"mutation_id":"s-d3","collection":"orders","id":"o-nowhere","op":"delete","base_version":1}`,
	`{"mutation_id":"s-d4","collection":"territories","id":"t-del","op":"delete","base_version":0}`,
	`{"mutation_id":"s-d5","collection":"visits","id":"v-del","op":"delete","base_version":1}`,
	// Malformed envelopes.
	`{"mutation_id":"s-e1","collection":"territories","id":"s-e1","op":"upsert","base_version":0,"data":{"name":"N","region":"R"},"extra":1}`,
	`{"mutation_id":"s-e2","collection":"users","id":"s-e2","op":"upsert","base_version":0,"data":{}}`,
	`{"mutation_id":"s-e3","collection":"territories","id":"a b","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e4","collection":"territories","id":"../x","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e5","collection":"territories","id":"tërritory","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e6","collection":"territories","id":"` + strings.Repeat("i", 200) + `","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"","collection":"territories","id":"s-e7","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"collection":"territories","id":"s-e8","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"a b","collection":"territories","id":"s-e9","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":12,"collection":"territories","id":"s-e10","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e11","collection":"territories","id":"s-e11","op":"insert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e12","collection":"territories","id":"s-e12","op":"upsert","base_version":-1,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e13","collection":"territories","id":"s-e13","op":"upsert","base_version":"1","data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e14","collection":"territories","id":"s-e14","op":"upsert","base_version":1.5,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e15","collection":"territories","id":"s-e15","op":"upsert","base_version":0}`,
	`{"mutation_id":"s-e16","collection":"territories","id":"s-e16","op":"upsert","base_version":0,"data":null}`,
	`{"mutation_id":"s-e17","collection":"territories","id":"s-e17","op":"upsert","base_version":0,"data":[1]}`,
	`{"mutation_id":"s-e18","collection":"territories","id":"s-e18","op":"upsert","base_version":0,"data":"x"}`,
	`{"mutation_id":"s-e19","collection":"territories","id":"s-e19","op":"upsert","base_version":0,"data":7}`,
	`{"mutation_id":"s-e20","collection":"territories","id":"s-e20","op":"upsert","base_version":0,"data":{"name":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`,
	`{"mutation_id":"s-e21","collection":"customers","id":"c-1","op":"upsert","base_version":99,"data":{"code":"C-1","name":"N","territory_id":"t-1","grade":"A"}}`,
	`42`, `"x"`, `[]`, `null`, `{}`, `true`, ``, `{`, `{"mutation_id":"s-e22"} trailing`,
	// Malformed records.
	`{"mutation_id":"s-r1","collection":"customers","id":"s-r1","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","credit_limit":"100"}}`,
	`{"mutation_id":"s-r2","collection":"customers","id":"s-r2","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","lat":"north","lng":1}}`,
	`{"mutation_id":"s-r3","collection":"customers","id":"s-r3","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","contacts":{}}}`,
	`{"mutation_id":"s-r4","collection":"customers","id":"s-r4","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","contacts":[{"name":"Ann","email":"a@b"}]}}`,
	`{"mutation_id":"s-r5","collection":"customers","id":"s-r5","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","credit_limit":1.5}}`,
	`{"mutation_id":"s-r6","collection":"orders","id":"s-r6","op":"upsert","base_version":0,"data":{"customer_id":"c-1","status":"draft","lines":[{"product_id":"p-1","quantity":"2","unit_price":1}]}}`,
	`{"mutation_id":"s-r7","collection":"orders","id":"s-r7","op":"upsert","base_version":0,"data":{"customer_id":"c-1","status":"draft","lines":[{"product_id":"p-1","quantity":9223372036854775807,"unit_price":9223372036854775807}]}}`,
	`{"mutation_id":"s-r8","collection":"orders","id":"s-r8","op":"upsert","base_version":0,"data":{"customer_id":"c-1","status":"draft","lines":[{"product_id":"p-1","quantity":4611686018427387904,"unit_price":1},{"product_id":"p-1","quantity":4611686018427387904,"unit_price":1}]}}`,
	`{"mutation_id":"s-r9","collection":"visits","id":"s-r9","op":"upsert","base_version":0,"data":{"customer_id":"c-1","check_in":{"at":"2999-01-01T00:00:00Z","lat":1,"lng":1}}}`,
	`{"mutation_id":"s-r10","collection":"visits","id":"s-r10","op":"upsert","base_version":0,"data":{"customer_id":"c-1","check_in":{"at":"2025-01-01T10:00:00+14:00","lat":-90,"lng":180},"check_out":{"at":"0001-01-01T00:00:00Z","lat":1,"lng":1}}}`,
	`{"mutation_id":"s-r11","collection":"territories","id":"s-r11","op":"upsert","base_version":0,"data":{"name":"` + strings.Repeat("n", 300) + `","region":"R","x":{"y":[1,{"z":null}]}}}`,
	`{"mutation_id":"s-r12","collection":"route_plans","id":"s-r12","op":"upsert","base_version":0,"data":{"rep_id":"u-admin","date":"2025-02-30","stops":[{"customer_id":"c-1","position":-1,"status":"maybe"},{"customer_id":"c-1","position":0,"status":"done"}]}}`,
	`{"mutation_id":"s-r13","collection":"photos","id":"s-r13","op":"upsert","base_version":0,"data":{"visit_id":"v-1","sha256":"XYZ","content_type":"text/html","size":0,"uploaded":true,"rep_id":"u-admin"}}`,
	`{"mutation_id":"s-r14","collection":"price_lists","id":"s-r14","op":"upsert","base_version":0,"data":{"name":"P","customer_ids":["c-1","c-1","c-nowhere"],"valid_from":"2025-03-01","valid_to":"2025-01-01"}}`,
	`{"mutation_id":"s-r15","collection":"customers","id":"s-r15","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","lat":1e400,"lng":-0}}`,
	`{"mutation_id":"s-r16","collection":"products","id":"s-r16","op":"upsert","base_version":0,"data":{"sku":"\ud800","name":"\u0000","unit":"   ","price":-0,"active":"yes"}}`,
	`{"mutation_id":"s-r17","collection":"customers","id":"s-r17","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","contacts":[` + strings.Repeat(`{"name":"C"},`, 20) + `{"name":"C"}]}}`,
	`{"mutation_id":"s-r18","collection":"customers","id":"s-r18","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"t-1","grade":"A","color":"red","notes":"` + strings.Repeat("x", 5000) + `"}}`,
	`{"mutation_id":"s-r19","collection":"territories","id":"s-r19","op":"upsert","base_version":0,"data":{}}`,
	`{"mutation_id":"s-e23","collection":"territories","id":"s-e23","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"mütation","collection":"territories","id":"s-e24","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"mutation_id":"s-e25","collection":"territories","id":"t\u0000x","op":"upsert","base_version":0,"data":{"name":"N","region":"R"}}`,
	`{"MUTATION_ID":"s-e26","Collection":"territories","ID":"s-e26","Op":"upsert","Base_Version":0,"Data":{"NAME":"N","region":"R"}}`,
}

// fuzzAllowedCode reports whether a rejected mutation may carry code.
func fuzzAllowedCode(code string) bool {
	switch code {
	case schema.CodeValidationFailed, schema.CodeForbidden, schema.CodeNotFound, schema.CodeConflict,
		schema.CodeInvalidTransition, schema.CodeCreditLimitExceeded, schema.CodeBadRequest:
		return true
	}
	return false
}

// FuzzPush pushes one arbitrary mutation between two good ones, as a rep
// and as an admin, into a real SQLite store, and checks that the engine
// answers every mutation, applies the good ones, never fails with anything
// but a *schema.Error, and writes nothing for what it does not apply.
func FuzzPush(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	ctx := context.Background()
	store, err := sqlitestore.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"))
	require.NoError(f, err)
	f.Cleanup(func() { store.Close() })
	engine, err := sync.New(sync.Config{
		Store: store, Secret: []byte("fuzz-secret-fuzz-secret-fuzz-secret!"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(f, err)

	admin := schema.Principal{UserID: "u-admin", Role: schema.RoleAdmin}
	now := time.Now().UTC()
	require.NoError(f, store.CreateUser(ctx, &schema.User{ID: "u-rep", Username: "rep", PasswordHash: "-", Role: schema.RoleRep,
		Territories: []string{"t-1"}, Active: true, CreatedAt: now, UpdatedAt: now}))
	fuzzSeed(f, engine, admin,
		`{"collection":"territories","id":"t-1","data":{"name":"North","region":"EU"}}`,
		`{"collection":"territories","id":"t-2","data":{"name":"West","region":"EU"}}`,
		`{"collection":"territories","id":"t-del","data":{"name":"Gone soon","region":"EU"}}`,
		`{"collection":"customers","id":"c-1","data":{"code":"C-1","name":"Corner Shop","territory_id":"t-1","lat":52.5,"lng":13.4,"grade":"A","credit_limit":100000}}`,
		`{"collection":"customers","id":"c-2","data":{"code":"C-2","name":"Far Shop","territory_id":"t-2","grade":"C"}}`,
		`{"collection":"products","id":"p-1","data":{"sku":"S-1","name":"Cola","unit":"case","price":1299,"active":true}}`,
		`{"collection":"products","id":"p-del","data":{"sku":"S-D","name":"Old","unit":"each","price":1,"active":false}}`,
		`{"collection":"route_plans","id":"rp-1","data":{"rep_id":"u-rep","date":"2025-01-01","stops":[{"customer_id":"c-1","position":0,"status":"planned"}]}}`,
	)
	rep := schema.Principal{UserID: "u-rep", Role: schema.RoleRep, Territories: []string{"t-1"}}
	fuzzSeed(f, engine, rep,
		`{"collection":"visits","id":"v-1","data":{"customer_id":"c-1","check_in":{"at":"2025-01-01T10:00:00Z","lat":52.5,"lng":13.4}}}`,
		`{"collection":"visits","id":"v-del","data":{"customer_id":"c-1","check_in":{"at":"2025-01-01T11:00:00Z","lat":52.5,"lng":13.4},"check_out":{"at":"2025-01-01T11:20:00Z","lat":52.5,"lng":13.4}}}`,
		`{"collection":"orders","id":"o-1","data":{"customer_id":"c-1","visit_id":"v-1","lines":[{"product_id":"p-1","quantity":1,"unit_price":1299}],"status":"draft"}}`,
	)

	// Good mutations get ids no fuzzed input can guess.
	var nonce [4]byte
	_, err = rand.Read(nonce[:])
	require.NoError(f, err)
	prefix := "g" + hex.EncodeToString(nonce[:])
	n := 0

	f.Fuzz(func(t *testing.T, raw []byte) {
		n++
		g := fmt.Sprintf("%s-%d", prefix, n)
		// The admin's good mutations create a territory and a customer of
		// this iteration only, which the rep's good mutations then use, so
		// that a fuzzed delete or move of the seeded records cannot fail
		// them.
		iterRep := rep
		iterRep.Territories = []string{"t-1", g + "-t"}
		goods := map[schema.Role][2]string{
			schema.RoleAdmin: {
				`{"mutation_id":"` + g + `-admin-a","collection":"territories","id":"` + g + `-t","op":"upsert","base_version":0,"data":{"name":"T","region":"R"}}`,
				`{"mutation_id":"` + g + `-admin-b","collection":"customers","id":"` + g + `-c","op":"upsert","base_version":0,"data":{"code":"C","name":"N","territory_id":"` + g + `-t","grade":"B"}}`,
			},
			schema.RoleRep: {
				`{"mutation_id":"` + g + `-rep-a","collection":"visits","id":"` + g + `-v","op":"upsert","base_version":0,"data":{"customer_id":"` + g + `-c","check_in":{"at":"2025-01-01T10:00:00Z","lat":1,"lng":1},"check_out":{"at":"2025-01-01T10:10:00Z","lat":1,"lng":1}}}`,
				`{"mutation_id":"` + g + `-rep-b","collection":"orders","id":"` + g + `-o","op":"upsert","base_version":0,"data":{"customer_id":"` + g + `-c","lines":[{"product_id":"p-1","quantity":2,"unit_price":1299}],"status":"draft"}}`,
			},
		}
		target, hasTarget := fuzzTarget(raw)
		for _, p := range []schema.Principal{admin, iterRep} {
			before := fuzzRecord(t, store, target, hasTarget)
			good := goods[p.Role]
			req := &schema.PushRequest{DeviceID: "d-fuzz", Mutations: []json.RawMessage{
				json.RawMessage(good[0]), json.RawMessage(raw), json.RawMessage(good[1])}}
			resp, err := engine.Push(ctx, p, req)
			if err != nil {
				var se *schema.Error
				if !errors.As(err, &se) {
					t.Fatalf("%s: Push failed with a non-schema error (a 500): %v\nmutation: %q", p.Role, err, raw)
				}
				t.Fatalf("%s: Push refused a batch of 3 whole: %v\nmutation: %q", p.Role, err, raw)
			}
			if len(resp.Results) != 3 {
				t.Fatalf("%s: %d results, want 3\nmutation: %q", p.Role, len(resp.Results), raw)
			}
			for _, k := range []int{0, 2} {
				if res := resp.Results[k]; res.Status != schema.PushApplied || res.Version != 1 {
					t.Errorf("%s: good mutation %d answered %s %d %v, want applied 1\nmutation: %q", p.Role, k, res.Status, res.Version, res.Error, raw)
				}
			}
			res := resp.Results[1]
			fuzzCheckResult(t, p.Role, res, raw)
			if res.Status != schema.PushApplied && res.Status != schema.PushMerged {
				if after := fuzzRecord(t, store, target, hasTarget); after != before {
					t.Errorf("%s: %s answered %s, yet the record changed from %q to %q\nmutation: %q", p.Role, target, res.Status, before, after, raw)
				}
			}
		}
	})
}

// fuzzCheckResult checks one answer to a fuzzed mutation.
func fuzzCheckResult(t *testing.T, role schema.Role, res schema.PushResult, raw []byte) {
	t.Helper()
	switch res.Status {
	case schema.PushApplied:
		if res.Version <= 0 || res.Error != nil {
			t.Errorf("%s: applied with version %d and error %v\nmutation: %q", role, res.Version, res.Error, raw)
		}
	case schema.PushMerged:
		if res.Version <= 0 || res.Record == nil || res.Error != nil {
			t.Errorf("%s: merged with version %d, record %v, error %v\nmutation: %q", role, res.Version, res.Record, res.Error, raw)
		}
	case schema.PushConflict:
		if res.Record == nil || res.Error != nil {
			t.Errorf("%s: conflict with record %v and error %v\nmutation: %q", role, res.Record, res.Error, raw)
		}
	case schema.PushRejected:
		switch {
		case res.Error == nil:
			t.Errorf("%s: rejected without an error\nmutation: %q", role, raw)
		case !fuzzAllowedCode(res.Error.Code):
			t.Errorf("%s: rejected with code %q (%s)\nmutation: %q", role, res.Error.Code, res.Error.Message, raw)
		case res.Error.Message == "":
			t.Errorf("%s: rejected with code %q and no message\nmutation: %q", role, res.Error.Code, raw)
		}
		if res.Version != 0 || res.Record != nil {
			t.Errorf("%s: rejected with version %d and record %v\nmutation: %q", role, res.Version, res.Record, raw)
		}
	default:
		t.Errorf("%s: status %q\nmutation: %q", role, res.Status, raw)
	}
}

// fuzzSeed creates records as p, each given as {"collection","id","data"}.
func fuzzSeed(tb testing.TB, engine *sync.Engine, p schema.Principal, records ...string) {
	tb.Helper()
	req := &schema.PushRequest{DeviceID: "d-seed"}
	for _, r := range records {
		var m map[string]json.RawMessage
		require.NoError(tb, json.Unmarshal([]byte(r), &m))
		m["mutation_id"] = m["id"]
		m["op"] = json.RawMessage(`"upsert"`)
		m["base_version"] = json.RawMessage(`0`)
		raw, err := json.Marshal(m)
		require.NoError(tb, err)
		req.Mutations = append(req.Mutations, raw)
	}
	resp, err := engine.Push(context.Background(), p, req)
	require.NoError(tb, err)
	for i, res := range resp.Results {
		require.Equalf(tb, schema.PushApplied, res.Status, "seed %s: %v", records[i], res.Error)
	}
}

// fuzzTarget names the record a fuzzed mutation addresses, when it reads
// as one.
func fuzzTarget(raw []byte) (string, bool) {
	var m struct {
		Collection string `json:"collection"`
		ID         string `json:"id"`
	}
	if json.Unmarshal(raw, &m) != nil || !schema.Collection(m.Collection).Valid() || m.ID == "" {
		return "", false
	}
	return m.Collection + "/" + m.ID, true
}

// fuzzRecord describes the stored record at target ("collection/id"):
// its version, deletion and data, or "absent".
func fuzzRecord(t *testing.T, store sync.Store, target string, ok bool) string {
	t.Helper()
	if !ok {
		return ""
	}
	c, id, _ := strings.Cut(target, "/")
	var out string
	err := store.View(context.Background(), func(tx sync.RecordTx) error {
		r, err := tx.Record(context.Background(), schema.Collection(c), id)
		if errors.Is(err, sync.ErrNotFound) {
			out = "absent"
			return nil
		}
		if err != nil {
			return err
		}
		out = fmt.Sprintf("v%d deleted=%t %s", r.Version, r.Deleted, r.Data)
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", target, err)
	}
	return out
}
