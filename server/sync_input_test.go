package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

// These tests send bad input to /v1/sync/push and /v1/sync/pull over HTTP
// and check that every answer has the contract's shape, that none is a
// 500, and that nothing is written for what is refused.

// inputState is what a pull says of one record.
type inputState struct {
	Version int64
	Deleted bool
}

// inputPush pushes body (a string is sent as is) and decodes the results
// of a 200.
func inputPush(tb testing.TB, ts *testServer, token string, body any) (response, []schema.PushResult) {
	tb.Helper()
	r := ts.call(tb, "POST", "/v1/sync/push", token, body)
	if r.Status != http.StatusOK {
		return r, nil
	}
	var resp struct {
		Results []schema.PushResult `json:"results"`
	}
	require.NoErrorf(tb, json.Unmarshal(r.Raw, &resp), "push answer %s", r.Raw)
	return r, resp.Results
}

// inputBatch is a push body with the given raw mutations.
func inputBatch(mutations ...string) string {
	return `{"device_id":"d-1","mutations":[` + strings.Join(mutations, ",") + `]}`
}

// inputTerritory is a valid creation of territory id.
func inputTerritory(mutationID, id string) string {
	return fmt.Sprintf(`{"mutation_id":%q,"collection":"territories","id":%q,"op":"upsert","base_version":0,"data":{"name":"T","region":"R"}}`, mutationID, id)
}

// inputRecords pulls everything the caller may read from the beginning and
// returns each record's state by "collection/id", and the last checkpoint.
func inputRecords(tb testing.TB, ts *testServer, token string) (map[string]inputState, string) {
	tb.Helper()
	out := map[string]inputState{}
	cp := ""
	for range 1000 {
		r := ts.call(tb, "POST", "/v1/sync/pull", token, map[string]any{"checkpoint": cp, "limit": 1000})
		require.Equalf(tb, http.StatusOK, r.Status, "pull: %s", r.Raw)
		var page struct {
			Changes []struct {
				Collection string `json:"collection"`
				ID         string `json:"id"`
				Version    int64  `json:"version"`
				Deleted    bool   `json:"deleted"`
			} `json:"changes"`
			Checkpoint string `json:"checkpoint"`
			HasMore    bool   `json:"has_more"`
		}
		require.NoError(tb, json.Unmarshal(r.Raw, &page))
		for _, ch := range page.Changes {
			out[ch.Collection+"/"+ch.ID] = inputState{Version: ch.Version, Deleted: ch.Deleted}
		}
		require.NotEmpty(tb, page.Checkpoint)
		cp = page.Checkpoint
		if !page.HasMore {
			return out, cp
		}
	}
	tb.Fatal("pull never caught up")
	return nil, ""
}

// inputInternals matches what an error message must never show: Go type and
// package names ("schema.Mutation", "[]json.RawMessage", "must be int64"),
// driver words, file paths, stack traces.
var inputInternals = regexp.MustCompile(`\b(json|sync|schema|sqlite|sqlitestore|fiber|fasthttp|reflect|strconv)\.[A-Za-z]|RawMessage|` +
	`\bmust be (\[\]|\*|map\[|u?int(8|16|32|64)?\b|float(32|64)\b|string\b|bool\b)|goroutine|\.go:\d|/work/|/tmp/|SQL|sqlite|panic`)

// inputAssertError checks a whole-request failure: the status, and a body
// of exactly {"error":{"code","message"[,"field"][,"problems"]}}.
func inputAssertError(tb testing.TB, r response, status int, code string) {
	tb.Helper()
	assert.NotEqual(tb, http.StatusInternalServerError, r.Status, "never a 500: %s", r.Raw)
	assert.Equalf(tb, status, r.Status, "status; body %.300s", r.Raw)
	assert.Truef(tb, strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "content type %q", r.Header.Get("Content-Type"))
	var body map[string]map[string]any
	if !assert.NoErrorf(tb, json.Unmarshal(r.Raw, &body), "error body %.300s", r.Raw) {
		return
	}
	assert.Len(tb, body, 1, "only error at the top: %.300s", r.Raw)
	e, ok := body["error"]
	if !assert.True(tb, ok, "error object: %.300s", r.Raw) {
		return
	}
	assert.Equal(tb, code, e["code"], "error.code")
	msg, _ := e["message"].(string)
	assert.NotEmpty(tb, msg, "error.message")
	inputAssertNoInternals(tb, msg)
	for k := range e {
		assert.Contains(tb, []string{"code", "message", "field", "problems"}, k, "error member")
	}
}

func inputAssertNoInternals(tb testing.TB, msg string) {
	tb.Helper()
	assert.Falsef(tb, inputInternals.MatchString(msg), "message shows internals: %q", msg)
}

// inputAnyField stands for "whatever field the engine names, if any".
const inputAnyField = "*"

func TestPushRefusesMalformedRequestsWhole(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")
	good := inputTerritory("m-whole-good", "t-whole-good")
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	deepObj := strings.Repeat(`{"a":`, 100_000) + "1" + strings.Repeat("}", 100_000)
	deepData := `{"mutation_id":"m-deep","collection":"territories","id":"t-deep","op":"upsert","base_version":0,"data":{"name":` + deep + `}}`

	tests := []struct {
		name   string
		body   string
		status int
		code   string
		field  string
	}{
		{"empty body", ``, 400, "bad_request", ""},
		{"malformed JSON", `{"device_id":"d-1","mutations":[` + good, 400, "bad_request", ""},
		{"truncated mid-string", `{"device_id":"d-1","mutations":[{"mutation_id":"m-x`, 400, "bad_request", ""},
		{"trailing garbage", inputBatch(good) + ` {}`, 400, "bad_request", ""},
		{"two objects", inputBatch(good) + inputBatch(good), 400, "bad_request", ""},
		{"body is an array", `[` + inputBatch(good) + `]`, 400, "bad_request", ""},
		{"body is a string", `"mutations"`, 400, "bad_request", ""},
		{"body is a number", `42`, 400, "bad_request", ""},
		{"body is null", `null`, 400, "bad_request", ""},
		{"body is true", `true`, 400, "bad_request", ""},
		{"mutations is an object", `{"device_id":"d-1","mutations":{"0":` + good + `}}`, 400, "bad_request", ""},
		{"mutations is a string", `{"device_id":"d-1","mutations":"` + strings.ReplaceAll(good, `"`, `\"`) + `"}`, 400, "bad_request", ""},
		{"mutations is a number", `{"device_id":"d-1","mutations":3}`, 400, "bad_request", ""},
		{"mutations is null", `{"device_id":"d-1","mutations":null}`, 400, "bad_request", ""},
		{"mutations missing", `{"device_id":"d-1"}`, 400, "bad_request", ""},
		{"empty object", `{}`, 400, "bad_request", ""},
		{"device_id is a number", `{"device_id":7,"mutations":[` + good + `]}`, 400, "bad_request", ""},
		{"device_id is an object", `{"device_id":{},"mutations":[` + good + `]}`, 400, "bad_request", ""},
		{"device_id with spaces", `{"device_id":"my phone","mutations":[` + good + `]}`, 400, "bad_request", "device_id"},
		{"device_id too long", `{"device_id":"` + strings.Repeat("d", 200) + `","mutations":[` + good + `]}`, 400, "bad_request", "device_id"},
		{"device_id unicode", `{"device_id":"dévice","mutations":[` + good + `]}`, 400, "bad_request", "device_id"},
		{"device_id path", `{"device_id":"../../etc","mutations":[` + good + `]}`, 400, "bad_request", "device_id"},
		{"100k nested arrays in data", inputBatch(good, deepData), 400, "bad_request", ""},
		{"100k nested arrays at the top", deep, 400, "bad_request", ""},
		{"100k nested objects at the top", deepObj, 400, "bad_request", ""},
		{"100k nested arrays as mutations", `{"device_id":"d-1","mutations":` + deep + `}`, 400, "bad_request", ""},
		{"body over the push limit", inputBatch(good, fmt.Sprintf(`{"mutation_id":"m-big","collection":"territories","id":"t-big","op":"upsert","base_version":0,"data":{"name":"%s","region":"R"}}`, strings.Repeat("n", 5_100_000))), 413, "payload_too_large", ""},
		{"body over the server's body limit", inputBatch(good, fmt.Sprintf(`{"mutation_id":"m-huge","collection":"territories","id":"t-huge","op":"upsert","base_version":0,"data":{"name":"%s","region":"R"}}`, strings.Repeat("n", 9<<20))), 413, "payload_too_large", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := inputRecords(t, ts, admin.Access)
			r := ts.call(t, "POST", "/v1/sync/push", admin.Access, tt.body)
			t.Logf("%d %.300s", r.Status, r.Raw)
			inputAssertError(t, r, tt.status, tt.code)
			if tt.field != "" {
				assert.Equal(t, tt.field, r.Body["error"].(map[string]any)["field"], "error.field")
			}
			after, _ := inputRecords(t, ts, admin.Access)
			assert.Equal(t, before, after, "nothing written")
		})
	}

	t.Run("empty mutations list", func(t *testing.T) {
		r, results := inputPush(t, ts, admin.Access, `{"device_id":"d-1","mutations":[]}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		assert.JSONEq(t, `{"results":[]}`, string(r.Raw))
		assert.Empty(t, results)
	})

	t.Run("none of the good mutations of a refused batch was applied", func(t *testing.T) {
		// Sent alone now, the good mutation is new: created at version 1,
		// not a replay.
		r, results := inputPush(t, ts, admin.Access, inputBatch(good))
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		require.Len(t, results, 1)
		assert.Equal(t, schema.PushApplied, results[0].Status)
		assert.Equal(t, int64(1), results[0].Version)
		state, _ := inputRecords(t, ts, admin.Access)
		assert.Equal(t, inputState{Version: 1}, state["territories/t-whole-good"])
		for _, id := range []string{"t-deep", "t-big", "t-huge"} {
			assert.NotContains(t, state, "territories/"+id)
		}
	})
}

func TestPushRefusesTooManyMutationsWhole(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")
	before, _ := inputRecords(t, ts, admin.Access)

	mutations := make([]string, 501)
	for i := range mutations {
		mutations[i] = inputTerritory(fmt.Sprintf("m-many-%d", i), fmt.Sprintf("t-many-%d", i))
	}
	r := ts.call(t, "POST", "/v1/sync/push", admin.Access, inputBatch(mutations...))
	inputAssertError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")
	after, _ := inputRecords(t, ts, admin.Access)
	assert.Equal(t, before, after, "nothing written")

	t.Run("the valid mutations were not applied nor answered", func(t *testing.T) {
		r, results := inputPush(t, ts, admin.Access, inputBatch(mutations[:500]...))
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		require.Len(t, results, 500)
		for i, res := range results {
			assert.Equalf(t, schema.PushApplied, res.Status, "result %d", i)
			assert.Equalf(t, int64(1), res.Version, "result %d is a first write", i)
		}
	})
}

func TestPushRejectsBadMutationsAlone(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")

	customer := `{"code":"C-1","name":"Corner Shop","territory_id":"t-1","grade":"A","lat":52.5,"lng":13.4,"contacts":[{"name":"Ann"}],"credit_limit":1000}`
	order := `{"customer_id":"c-1","status":"draft","lines":[{"product_id":"p-1","quantity":2,"unit_price":100}]}`
	visit := `{"customer_id":"c-1","check_in":{"at":"2025-01-01T10:00:00Z","lat":52.5,"lng":13.4}}`
	r, results := inputPush(t, ts, admin.Access, inputBatch(
		inputTerritory("m-seed-t", "t-1"),
		`{"mutation_id":"m-seed-c","collection":"customers","id":"c-1","op":"upsert","base_version":0,"data":`+customer+`}`,
		`{"mutation_id":"m-seed-p","collection":"products","id":"p-1","op":"upsert","base_version":0,"data":{"sku":"S-1","name":"Cola","unit":"case","price":1299,"active":true}}`,
	))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	for _, res := range results {
		require.Equal(t, schema.PushApplied, res.Status, string(r.Raw))
	}

	// with returns the JSON object obj with member key set to value.
	with := func(obj, key, value string) string {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(obj), &m))
		m[key] = json.RawMessage(value)
		out, err := json.Marshal(m)
		require.NoError(t, err)
		return string(out)
	}
	// upsert is a creation of $ID in collection c with data.
	upsert := func(c, data string) string {
		return `{"mutation_id":"$MID","collection":"` + c + `","id":"$ID","op":"upsert","base_version":0,"data":` + data + `}`
	}
	territory := `{"name":"T","region":"R"}`
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	list := func(n int, item string) string {
		items := make([]string, n)
		for i := range items {
			items[i] = strings.ReplaceAll(item, "$N", fmt.Sprint(i))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	const envelope = `"mutation_id":"$MID","collection":"territories","id":"$ID"`

	tests := []struct {
		name     string
		mutation string // $MID and $ID stand for a fresh mutation and record id
		code     string
		field    string
	}{
		// The envelope.
		{"unknown envelope field", `{` + envelope + `,"op":"upsert","base_version":0,"data":` + territory + `,"extra":1}`, "validation_failed", inputAnyField},
		{"unknown collection", upsert("users", territory), "validation_failed", "collection"},
		{"collection empty", upsert("", territory), "validation_failed", "collection"},
		{"collection in capitals", upsert("Territories", territory), "validation_failed", "collection"},
		{"collection missing", `{"mutation_id":"$MID","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "collection"},
		{"collection a number", `{"mutation_id":"$MID","collection":1,"id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", inputAnyField},
		{"id missing", `{"mutation_id":"$MID","collection":"territories","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id empty", `{"mutation_id":"$MID","collection":"territories","id":"","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id too long", `{"mutation_id":"$MID","collection":"territories","id":"` + strings.Repeat("i", 200) + `","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id with a space", `{"mutation_id":"$MID","collection":"territories","id":"a b","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id a path", `{"mutation_id":"$MID","collection":"territories","id":"../x","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id unicode", `{"mutation_id":"$MID","collection":"territories","id":"tërritory","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id with a NUL", `{"mutation_id":"$MID","collection":"territories","id":"t\u0000x","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "id"},
		{"id a number", `{"mutation_id":"$MID","collection":"territories","id":5,"op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", inputAnyField},
		{"mutation_id missing", `{"collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "mutation_id"},
		{"mutation_id empty", `{"mutation_id":"","collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "mutation_id"},
		{"mutation_id too long", `{"mutation_id":"` + strings.Repeat("m", 200) + `","collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "mutation_id"},
		{"mutation_id with a space", `{"mutation_id":"a b","collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "mutation_id"},
		{"mutation_id a path", `{"mutation_id":"../x","collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "mutation_id"},
		{"mutation_id unicode", `{"mutation_id":"mütation","collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", "mutation_id"},
		{"mutation_id a number", `{"mutation_id":12,"collection":"territories","id":"$ID","op":"upsert","base_version":0,"data":` + territory + `}`, "validation_failed", inputAnyField},
		{"op unknown", `{` + envelope + `,"op":"insert","base_version":0,"data":` + territory + `}`, "validation_failed", "op"},
		{"op in capitals", `{` + envelope + `,"op":"UPSERT","base_version":0,"data":` + territory + `}`, "validation_failed", "op"},
		{"op missing", `{` + envelope + `,"base_version":0,"data":` + territory + `}`, "validation_failed", "op"},
		{"base_version negative", `{` + envelope + `,"op":"upsert","base_version":-1,"data":` + territory + `}`, "validation_failed", "base_version"},
		{"base_version a string", `{` + envelope + `,"op":"upsert","base_version":"0","data":` + territory + `}`, "validation_failed", inputAnyField},
		{"base_version a float", `{` + envelope + `,"op":"upsert","base_version":1.5,"data":` + territory + `}`, "validation_failed", inputAnyField},
		{"base_version too large", `{` + envelope + `,"op":"upsert","base_version":1e30,"data":` + territory + `}`, "validation_failed", inputAnyField},
		{"base_version ahead of the server", `{"mutation_id":"$MID","collection":"customers","id":"c-1","op":"upsert","base_version":5,"data":` + customer + `}`, "validation_failed", "base_version"},
		{"data missing", `{` + envelope + `,"op":"upsert","base_version":0}`, "validation_failed", "data"},
		{"data null", `{` + envelope + `,"op":"upsert","base_version":0,"data":null}`, "validation_failed", "data"},
		{"data an array", upsert("territories", `[`+territory+`]`), "validation_failed", "data"},
		{"data a string", upsert("territories", `"T"`), "validation_failed", "data"},
		{"data a number", upsert("territories", `1`), "validation_failed", "data"},
		{"data true", upsert("territories", `true`), "validation_failed", "data"},
		{"data nested 5000 deep", upsert("territories", `{"name":`+nested(5000)+`}`), "validation_failed", "data"},
		{"data nested 40 deep", upsert("territories", `{"name":`+nested(40)+`}`), "validation_failed", "data"},
		{"delete with base_version 0", `{` + envelope + `,"op":"delete","base_version":0}`, "validation_failed", "base_version"},
		{"delete without base_version", `{` + envelope + `,"op":"delete"}`, "validation_failed", "base_version"},
		{"delete of a missing record", `{` + envelope + `,"op":"delete","base_version":1}`, "not_found", "id"},
		{"mutation is a number", `42`, "validation_failed", inputAnyField},
		{"mutation is a string", `"x"`, "validation_failed", inputAnyField},
		{"mutation is an array", `[]`, "validation_failed", inputAnyField},
		{"mutation is null", `null`, "validation_failed", inputAnyField},
		{"mutation is an empty object", `{}`, "validation_failed", "mutation_id"},

		// The record.
		{"empty record", upsert("territories", `{}`), "validation_failed", "name"},
		{"credit_limit a string", upsert("customers", with(customer, "credit_limit", `"100"`)), "validation_failed", "credit_limit"},
		{"credit_limit fractional", upsert("customers", with(customer, "credit_limit", `1.5`)), "validation_failed", "credit_limit"},
		{"credit_limit with an exponent", upsert("customers", with(customer, "credit_limit", `1e3`)), "validation_failed", "credit_limit"},
		{"credit_limit beyond int64", upsert("customers", with(customer, "credit_limit", `99999999999999999999`)), "validation_failed", "credit_limit"},
		{"credit_limit negative", upsert("customers", with(customer, "credit_limit", `-1`)), "validation_failed", "credit_limit"},
		{"lat a string", upsert("customers", with(customer, "lat", `"north"`)), "validation_failed", "lat"},
		{"lat out of range", upsert("customers", with(customer, "lat", `91`)), "validation_failed", "lat"},
		{"contacts an object", upsert("customers", with(customer, "contacts", `{}`)), "validation_failed", "contacts"},
		{"contacts unknown nested field", upsert("customers", with(customer, "contacts", `[{"name":"Ann","email":"ann@example.com"}]`)), "validation_failed", "contacts[0].email"},
		{"too many contacts", upsert("customers", with(customer, "contacts", list(21, `{"name":"C$N"}`))), "validation_failed", "contacts"},
		{"too many tags", upsert("customers", with(customer, "tags", list(51, `"tag$N"`))), "validation_failed", "tags"},
		{"grade unknown", upsert("customers", with(customer, "grade", `"Z"`)), "validation_failed", "grade"},
		{"unknown field", upsert("customers", with(customer, "color", `"red"`)), "validation_failed", "color"},
		{"territory that does not exist", upsert("customers", with(customer, "territory_id", `"t-nowhere"`)), "validation_failed", "territory_id"},
		{"price fractional", upsert("products", `{"sku":"S","name":"N","unit":"each","price":12.99,"active":true}`), "validation_failed", "price"},
		{"quantity a string", upsert("orders", with(order, "lines", `[{"product_id":"p-1","quantity":"2","unit_price":100}]`)), "validation_failed", "lines[0].quantity"},
		{"unit_price fractional", upsert("orders", with(order, "lines", `[{"product_id":"p-1","quantity":2,"unit_price":1.5}]`)), "validation_failed", "lines[0].unit_price"},
		{"line unknown field", upsert("orders", with(order, "lines", `[{"product_id":"p-1","quantity":2,"unit_price":100,"sku":"S"}]`)), "validation_failed", "lines[0].sku"},
		{"too many lines", upsert("orders", with(order, "lines", list(501, `{"product_id":"p-1","quantity":1,"unit_price":1}`))), "validation_failed", "lines"},
		{"no lines", upsert("orders", with(order, "lines", `[]`)), "validation_failed", "lines"},
		{"order total overflows", upsert("orders", with(order, "lines", `[{"product_id":"p-1","quantity":9223372036854775807,"unit_price":2}]`)), "validation_failed", "lines[0].quantity"},
		{"order status unknown", upsert("orders", with(order, "status", `"shipped-ish"`)), "validation_failed", "status"},
		{"order for a missing customer", upsert("orders", with(order, "customer_id", `"c-nowhere"`)), "validation_failed", "customer_id"},
		{"check_in unknown nested field", upsert("visits", with(visit, "check_in", `{"at":"2025-01-01T10:00:00Z","lat":52.5,"lng":13.4,"altitude":3}`)), "validation_failed", "check_in.altitude"},
		{"check_in time not RFC 3339", upsert("visits", with(visit, "check_in", `{"at":"yesterday","lat":52.5,"lng":13.4}`)), "validation_failed", "check_in.at"},
		{"check_in far in the future", upsert("visits", with(visit, "check_in", `{"at":"2999-01-01T10:00:00Z","lat":52.5,"lng":13.4}`)), "validation_failed", "check_in.at"},
		{"check_in before 2000", upsert("visits", with(visit, "check_in", `{"at":"1999-12-31T23:59:59Z","lat":52.5,"lng":13.4}`)), "validation_failed", "check_in.at"},
		{"check_in at the epoch of an unset clock", upsert("visits", with(visit, "check_in", `{"at":"1970-01-01T00:00:00Z","lat":52.5,"lng":13.4}`)), "validation_failed", "check_in.at"},
		{"photo taken before 2000", upsert("photos", `{"visit_id":"v-nowhere","sha256":"`+strings.Repeat("a", 64)+`","content_type":"image/jpeg","size":10,"taken_at":"1980-01-01T00:00:00Z"}`), "validation_failed", "taken_at"},
		{"name of 1000 characters", upsert("territories", `{"name":"`+strings.Repeat("n", 1000)+`","region":"R"}`), "validation_failed", "name"},
		{"notes of 5000 characters", upsert("customers", with(customer, "notes", `"`+strings.Repeat("x", 5000)+`"`)), "validation_failed", "notes"},
		{"name of 1 MB", upsert("territories", `{"name":"`+strings.Repeat("n", 1<<20)+`","region":"R"}`), "validation_failed", "data"},
		{"notes of 1 MB", upsert("customers", with(customer, "notes", `"`+strings.Repeat("x", 1<<20)+`"`)), "validation_failed", "data"},
		{"a visit with 10000 unknown fields", upsert("visits", `{"customer_id":"c-1"`+strings.Repeat(`,"x":1`, 1)+unknownFields(10000)+`}`), "validation_failed", "data"},
		{"photo sha256 malformed", upsert("photos", `{"visit_id":"v-nowhere","sha256":"XYZ","content_type":"image/jpeg","size":10}`), "validation_failed", "sha256"},
		{"route plan for a missing rep", upsert("route_plans", `{"rep_id":"u-nobody","date":"2025-01-01"}`), "validation_failed", "rep_id"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mid, id := fmt.Sprintf("m-bad-%d", i), fmt.Sprintf("x-bad-%d", i)
			bad := strings.NewReplacer("$MID", mid, "$ID", id).Replace(tt.mutation)
			goods := [2]string{fmt.Sprintf("t-good-%d-a", i), fmt.Sprintf("t-good-%d-b", i)}
			before, _ := inputRecords(t, ts, admin.Access)

			r, results := inputPush(t, ts, admin.Access, inputBatch(
				inputTerritory(fmt.Sprintf("m-good-%d-a", i), goods[0]), bad,
				inputTerritory(fmt.Sprintf("m-good-%d-b", i), goods[1])))
			assert.NotEqual(t, http.StatusInternalServerError, r.Status, "never a 500")
			require.Equalf(t, http.StatusOK, r.Status, "push: %.500s", r.Raw)
			require.Len(t, results, 3)
			for _, k := range []int{0, 2} {
				assert.Equalf(t, schema.PushApplied, results[k].Status, "good mutation %d: %+v", k, results[k])
				assert.Equalf(t, int64(1), results[k].Version, "good mutation %d", k)
			}

			got := results[1]
			t.Logf("%+v", got.Error)
			assert.Equal(t, schema.PushRejected, got.Status)
			assert.Zero(t, got.Version, "a rejection has no version")
			assert.Empty(t, got.Record, "a rejection shows no record")
			if strings.Contains(tt.mutation, "$MID") {
				assert.Equal(t, mid, got.MutationID, "the result names the mutation")
			} else {
				assert.Empty(t, got.MutationID, "no usable mutation id to echo")
			}
			if assert.NotNil(t, got.Error) {
				assert.Equal(t, tt.code, got.Error.Code, "error.code; message %q", got.Error.Message)
				if tt.field != inputAnyField {
					assert.Equal(t, tt.field, got.Error.Field, "error.field; message %q", got.Error.Message)
				}
				assert.NotEmpty(t, got.Error.Message)
				assert.LessOrEqual(t, len(got.Error.Message), 1000, "the message does not echo the input")
				inputAssertNoInternals(t, got.Error.Message)
			}

			after, _ := inputRecords(t, ts, admin.Access)
			want := maps.Clone(before)
			want["territories/"+goods[0]] = inputState{Version: 1}
			want["territories/"+goods[1]] = inputState{Version: 1}
			assert.Equal(t, want, after, "only the good mutations were written")
		})
	}
}

func TestPullRejectsBadInput(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")
	r, _ := inputPush(t, ts, admin.Access, inputBatch(inputTerritory("m-pull-1", "t-1"), inputTerritory("m-pull-2", "t-2")))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	_, cp := inputRecords(t, ts, admin.Access)
	ts.createUser(t, admin, map[string]any{"username": "admin2", "password": "admin2-password", "role": "admin"})
	other := ts.login(t, "admin2", "admin2-password", "d")
	_, otherCP := inputRecords(t, ts, other.Access)
	require.NotEqual(t, cp, otherCP)

	body, mac, ok := strings.Cut(cp, ".")
	require.True(t, ok, "checkpoint %q is body.mac", cp)
	swap := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cpBody := func(s string) string { return `{"checkpoint":"` + s + `"}` }

	tests := []struct {
		name   string
		token  string
		body   string
		status int
		code   string
		field  string
	}{
		{"malformed JSON", admin.Access, `{"checkpoint":`, 400, "bad_request", ""},
		{"trailing garbage", admin.Access, `{"checkpoint":""}}`, 400, "bad_request", ""},
		{"body an array", admin.Access, `[]`, 400, "bad_request", ""},
		{"body a string", admin.Access, `"x"`, 400, "bad_request", ""},
		{"limit negative", admin.Access, `{"checkpoint":"","limit":-1}`, 422, "validation_failed", "limit"},
		{"limit over 1000", admin.Access, `{"checkpoint":"","limit":1001}`, 422, "validation_failed", "limit"},
		{"limit huge", admin.Access, `{"checkpoint":"","limit":9223372036854775807}`, 422, "validation_failed", "limit"},
		{"limit beyond int64", admin.Access, `{"checkpoint":"","limit":99999999999999999999}`, 400, "bad_request", ""},
		{"limit a string", admin.Access, `{"checkpoint":"","limit":"10"}`, 400, "bad_request", ""},
		{"limit fractional", admin.Access, `{"checkpoint":"","limit":1.5}`, 400, "bad_request", ""},
		{"checkpoint a number", admin.Access, `{"checkpoint":5}`, 400, "bad_request", ""},
		{"checkpoint an object", admin.Access, `{"checkpoint":{}}`, 400, "bad_request", ""},
		{"checkpoint garbage", admin.Access, cpBody("garbage"), 400, "bad_request", "checkpoint"},
		{"checkpoint only a dot", admin.Access, cpBody("."), 400, "bad_request", "checkpoint"},
		{"checkpoint without a MAC", admin.Access, cpBody(body), 400, "bad_request", "checkpoint"},
		{"checkpoint with an empty MAC", admin.Access, cpBody(body + "."), 400, "bad_request", "checkpoint"},
		{"checkpoint body tampered", admin.Access, cpBody(swap(body, len(body)/2) + "." + mac), 400, "bad_request", "checkpoint"},
		{"checkpoint MAC tampered", admin.Access, cpBody(body + "." + swap(mac, 3)), 400, "bad_request", "checkpoint"},
		{"checkpoint truncated by one", admin.Access, cpBody(cp[:len(cp)-1]), 400, "bad_request", "checkpoint"},
		{"checkpoint truncated by half", admin.Access, cpBody(cp[:len(cp)/2]), 400, "bad_request", "checkpoint"},
		{"checkpoint with a space appended", admin.Access, cpBody(cp + " "), 400, "bad_request", "checkpoint"},
		{"checkpoint twice", admin.Access, cpBody(cp + "." + cp), 400, "bad_request", "checkpoint"},
		{"checkpoint of 1 MB", admin.Access, cpBody(strings.Repeat("a", 1<<20) + "." + mac), 400, "bad_request", "checkpoint"},
		{"another user's checkpoint", admin.Access, cpBody(otherCP), 400, "bad_request", "checkpoint"},
		{"a checkpoint given to another user", other.Access, cpBody(cp), 400, "bad_request", "checkpoint"},
		{"collections not a list", admin.Access, `{"collections":"customers"}`, 400, "bad_request", "collections"},
		{"collections of numbers", admin.Access, `{"collections":[1]}`, 400, "bad_request", ""},
		{"an unknown collection", admin.Access, `{"collections":["customers","t-1s"]}`, 400, "bad_request", "collections[1]"},
		{"a checkpoint for all collections with a set", admin.Access, `{"checkpoint":"` + cp + `","collections":["customers"]}`, 400, "bad_request", "collections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.call(t, "POST", "/v1/sync/pull", tt.token, tt.body)
			t.Logf("%d %.300s", r.Status, r.Raw)
			inputAssertError(t, r, tt.status, tt.code)
			if tt.field != "" {
				assert.Equal(t, tt.field, r.Body["error"].(map[string]any)["field"], "error.field")
			}
			assert.NotContains(t, string(r.Raw), "changes", "never data")
			assert.NotContains(t, string(r.Raw), "t-1", "never data")
		})
	}

	t.Run("the real checkpoints still work", func(t *testing.T) {
		for _, s := range []struct {
			token, cp string
		}{{admin.Access, cp}, {other.Access, otherCP}} {
			r := ts.call(t, "POST", "/v1/sync/pull", s.token, map[string]any{"checkpoint": s.cp})
			require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
			assert.Empty(t, r.Body["changes"], "caught up")
		}
	})
}

func TestPushReplayAnswersTheSame(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")
	customer := `{"code":"C-1","name":"Corner Shop","territory_id":"t-1","grade":"A"}`
	r, _ := inputPush(t, ts, admin.Access, inputBatch(
		inputTerritory("m-seed-t", "t-1"),
		`{"mutation_id":"m-seed-c","collection":"customers","id":"c-1","op":"upsert","base_version":0,"data":`+customer+`}`))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	batch := inputBatch(
		// Applied.
		inputTerritory("m-replay-1", "t-replay"),
		// Conflict: t-1 exists.
		inputTerritory("m-replay-2", "t-1"),
		// Applied, version 2.
		`{"mutation_id":"m-replay-3","collection":"customers","id":"c-1","op":"upsert","base_version":1,"data":{"code":"C-1","name":"Renamed","territory_id":"t-1","grade":"B"}}`,
		// Rejected with problems.
		`{"mutation_id":"m-replay-4","collection":"customers","id":"c-2","op":"upsert","base_version":0,"data":{"code":"","credit_limit":1.5}}`,
		// Rejected: not_found.
		`{"mutation_id":"m-replay-5","collection":"territories","id":"t-gone","op":"delete","base_version":1}`,
		// Rejected: collection.
		`{"mutation_id":"m-replay-6","collection":"nothing","id":"x","op":"upsert","base_version":0,"data":{}}`,
		// Applied: deletes t-replay.
		`{"mutation_id":"m-replay-7","collection":"territories","id":"t-replay","op":"delete","base_version":1}`,
	)
	first, results := inputPush(t, ts, admin.Access, batch)
	require.Equal(t, http.StatusOK, first.Status, string(first.Raw))
	require.Len(t, results, 7)
	wantStatus := []schema.PushStatus{schema.PushApplied, schema.PushConflict, schema.PushApplied, schema.PushRejected, schema.PushRejected, schema.PushRejected, schema.PushApplied}
	for i, res := range results {
		require.Equalf(t, wantStatus[i], res.Status, "result %d: %s", i, first.Raw)
	}
	state, cp := inputRecords(t, ts, admin.Access)

	t.Run("same bytes", func(t *testing.T) {
		again, _ := inputPush(t, ts, admin.Access, batch)
		require.Equal(t, http.StatusOK, again.Status, string(again.Raw))
		assert.Equal(t, string(first.Raw), string(again.Raw))
	})
	t.Run("nothing advanced", func(t *testing.T) {
		r := ts.call(t, "POST", "/v1/sync/pull", admin.Access, map[string]any{"checkpoint": cp})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		assert.Empty(t, r.Body["changes"])
		assert.Equal(t, false, r.Body["has_more"])
		now, _ := inputRecords(t, ts, admin.Access)
		assert.Equal(t, state, now)
	})
	t.Run("same answer after the records moved on", func(t *testing.T) {
		r, res := inputPush(t, ts, admin.Access, inputBatch(
			`{"mutation_id":"m-replay-8","collection":"customers","id":"c-1","op":"upsert","base_version":2,"data":{"code":"C-1","name":"Renamed again","territory_id":"t-1","grade":"C"}}`))
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		require.Equal(t, schema.PushApplied, res[0].Status)
		again, _ := inputPush(t, ts, admin.Access, batch)
		assert.Equal(t, string(first.Raw), string(again.Raw))
	})
	t.Run("a mutation id repeated within a batch is applied once", func(t *testing.T) {
		r, res := inputPush(t, ts, admin.Access, inputBatch(inputTerritory("m-twice", "t-twice-a"), inputTerritory("m-twice", "t-twice-b")))
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		require.Len(t, res, 2)
		assert.Equal(t, res[0], res[1], "the second gets the first's answer")
		now, _ := inputRecords(t, ts, admin.Access)
		assert.Contains(t, now, "territories/t-twice-a")
		assert.NotContains(t, now, "territories/t-twice-b")
	})
}

func TestPushInflatesNoMoreThanTheLimit(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d")
	// 64 MB of JSON whitespace inside a valid batch, gzipped to ~64 KB:
	// well under the body limit on the wire, far over the push limit once
	// inflated.
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, err := w.Write([]byte(`{"device_id":"d-1","mutations":[` + inputTerritory("m-gz", "t-gz")))
	require.NoError(t, err)
	spaces := bytes.Repeat([]byte(" "), 1<<20)
	for range 64 {
		_, err = w.Write(spaces)
		require.NoError(t, err)
	}
	_, err = w.Write([]byte(`]}`))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	require.Less(t, gz.Len(), 1<<20)

	req, err := http.NewRequest("POST", ts.URL+"/v1/sync/push", bytes.NewReader(gz.Bytes()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "Bearer "+admin.Access)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	runtime.ReadMemStats(&after)

	r := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	assert.Contains(t, []int{http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType}, r.Status, "refused: %.300s", raw)
	assert.NotEqual(t, http.StatusInternalServerError, r.Status)
	allocated := after.TotalAlloc - before.TotalAlloc
	// Inflating the whole body would allocate at least its 64 MB; the race
	// detector's own bookkeeping adds about 10 MB to what the read costs.
	assert.Lessf(t, allocated, uint64(48<<20), "the server allocated %d MB to read a %d KB body", allocated>>20, gz.Len()>>10)
	state, _ := inputRecords(t, ts, admin.Access)
	assert.NotContains(t, state, "territories/t-gz", "nothing written")
}

// A write that is answered "rejected" must leave no trace, even when the
// refusal comes after the record itself was put: moving a customer to
// another territory re-stamps its visits, orders and price lists, and a
// dependent whose own references have since gone must not leave the move
// half done.
func TestPushRejectionAfterAWriteLeavesNothing(t *testing.T) {
	tests := []struct {
		name  string
		setup []string // pushed as the admin, each must be applied
	}{
		{"an order whose visit was deleted", []string{
			`{"mutation_id":"m-p","collection":"products","id":"p-1","op":"upsert","base_version":0,"data":{"sku":"S1","name":"Soap","unit":"each","price":100,"active":true}}`,
			`{"mutation_id":"m-v","collection":"visits","id":"v-1","op":"upsert","base_version":0,"data":{"customer_id":"c-1","check_in":{"at":"2025-01-01T10:00:00Z","lat":1,"lng":1}}}`,
			`{"mutation_id":"m-o","collection":"orders","id":"o-1","op":"upsert","base_version":0,"data":{"customer_id":"c-1","visit_id":"v-1","lines":[{"product_id":"p-1","quantity":1,"unit_price":100}],"status":"draft"}}`,
			`{"mutation_id":"m-vd","collection":"visits","id":"v-1","op":"delete","base_version":1}`,
		}},
		{"a price list naming a deleted customer", []string{
			`{"mutation_id":"m-c2","collection":"customers","id":"c-2","op":"upsert","base_version":0,"data":{"code":"C-2","name":"Other","territory_id":"t-1","grade":"B"}}`,
			`{"mutation_id":"m-pl","collection":"price_lists","id":"pl-1","op":"upsert","base_version":0,"data":{"name":"Winter","customer_ids":["c-1","c-2"]}}`,
			`{"mutation_id":"m-c2d","collection":"customers","id":"c-2","op":"delete","base_version":1}`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t)
			admin := ts.login(t, adminName, adminPassword, "d")
			setup := append([]string{
				inputTerritory("m-t1", "t-1"), inputTerritory("m-t2", "t-2"),
				`{"mutation_id":"m-c1","collection":"customers","id":"c-1","op":"upsert","base_version":0,"data":{"code":"C-1","name":"Corner","territory_id":"t-1","grade":"A"}}`,
			}, tt.setup...)
			r, results := inputPush(t, ts, admin.Access, inputBatch(setup...))
			require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
			for i, res := range results {
				require.Equalf(t, schema.PushApplied, res.Status, "setup %d: %s", i, r.Raw)
			}
			before, _ := inputRecords(t, ts, admin.Access)

			r, results = inputPush(t, ts, admin.Access, inputBatch(
				`{"mutation_id":"m-move","collection":"customers","id":"c-1","op":"upsert","base_version":1,"data":{"code":"C-1","name":"Corner","territory_id":"t-2","grade":"A"}}`))
			assert.NotEqual(t, http.StatusInternalServerError, r.Status, "never a 500")
			require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
			require.Len(t, results, 1)
			after, _ := inputRecords(t, ts, admin.Access)
			switch got := results[0]; got.Status {
			case "applied":
				assert.Equal(t, inputState{Version: 2}, after["customers/c-1"], "the move is written")
			case "rejected":
				assert.Equalf(t, before, after, "rejected with %+v, yet written", got.Error)
			default:
				t.Errorf("answered %s: %s", got.Status, r.Raw)
			}
		})
	}
}

// unknownFields returns n members named f0, f1… as JSON object text, each
// after a comma.
func unknownFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"f%d":1`, i)
	}
	return b.String()
}
