package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
)

// Each wire shape has a golden file in schema/testdata/wire, read by this
// test and by the Go client's. Request files are sent to a real server as
// they are; its answers must equal the answer files but for volatile
// values (tokens, times, made-up ids; see servertest.MatchWire). Every
// file is also checked against the OpenAPI document on its own, so that
// the golden files, the server and docs/openapi.yaml cannot drift apart.
func TestWireGolden(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{AdminPassword: adminPassword})
	c := srv.Client()
	contract := servertest.NewContract(t)

	// exchange sends a request (the golden file req, when named, else
	// body) and matches the answer with the golden file ans.
	type exchange struct {
		method, path, token, contentType string
		req                              string
		body                             any
		status                           int
		ans                              string
	}
	run := func(t *testing.T, x exchange) servertest.Response {
		t.Helper()
		body := x.body
		if x.req != "" {
			body = servertest.Wire(t, x.req)
		}
		var r servertest.Response
		if x.contentType == "" {
			r = c.Call(t, x.method, x.path, x.token, body)
		} else {
			r = callAs(t, c, x.method, x.path, x.token, x.contentType, body.(string))
		}
		require.Equalf(t, x.status, r.Status, "%s %s: %s", x.method, x.path, r.Raw)
		servertest.MatchWire(t, x.ans, r.Raw)
		// The golden files themselves must be what the document describes.
		var sent []byte
		switch b := body.(type) {
		case []byte:
			sent = b
		case string:
			sent = []byte(b)
		}
		checkGoldenAgainstDocument(t, contract, x.method, x.path, x.token != "", sent, x.status, servertest.Wire(t, x.ans))
		return r
	}

	login := run(t, exchange{method: http.MethodPost, path: "/v1/auth/login", req: "login-request.json", status: http.StatusOK, ans: "token-response.json"})
	admin := servertest.SessionOf(t, login)
	t.Run("refresh", func(t *testing.T) {
		var req schema.RefreshRequest
		require.NoError(t, json.Unmarshal(servertest.Wire(t, "refresh-request.json"), &req))
		req.RefreshToken = admin.Refresh
		raw, err := json.Marshal(req)
		require.NoError(t, err)
		servertest.MatchWire(t, "refresh-request.json", raw)
		r := run(t, exchange{method: http.MethodPost, path: "/v1/auth/refresh", body: raw, status: http.StatusOK, ans: "token-response.json"})
		admin = servertest.SessionOf(t, r)
	})

	// Before the push of the golden file: c-17 at version 2 (grade B
	// from another device) and c-18 at version 1.
	territory := json.RawMessage(`{"name":"North","region":"East"}`)
	corner := `{"code":"C017","name":"Corner Shop","territory_id":"t-north","grade":"%s","lat":52.52,"lng":13.405,"credit_limit":500000}`
	results := c.Push(t, admin.Access, "laptop-1",
		schema.Mutation{MutationID: "m-1", Collection: schema.Territories, ID: "t-north", Op: schema.MutationUpsert, Data: territory},
		schema.Mutation{MutationID: "m-2", Collection: schema.Customers, ID: "c-17", Op: schema.MutationUpsert, Data: json.RawMessage(fmt.Sprintf(corner, "A"))},
		schema.Mutation{MutationID: "m-3", Collection: schema.Customers, ID: "c-18", Op: schema.MutationUpsert,
			Data: json.RawMessage(`{"code":"C018","name":"Market Hall","territory_id":"t-north","grade":"B","lat":52.53,"lng":13.41,"credit_limit":0}`)},
	)
	results = append(results, c.Push(t, admin.Access, "phone-a",
		schema.Mutation{MutationID: "m-4", Collection: schema.Customers, ID: "c-17", Op: schema.MutationUpsert, BaseVersion: 1, Data: json.RawMessage(fmt.Sprintf(corner, "B"))})...)
	for _, r := range results {
		require.Equalf(t, schema.PushApplied, r.Status, "setup %+v", r)
	}

	run(t, exchange{method: http.MethodPost, path: "/v1/sync/push", token: admin.Access, req: "push-request.json", status: http.StatusOK, ans: "push-response.json"})
	run(t, exchange{method: http.MethodPost, path: "/v1/sync/pull", token: admin.Access, req: "pull-request.json", status: http.StatusOK, ans: "pull-response.json"})

	c.CreateUser(t, admin.Access, map[string]any{"username": "rita", "password": "rita-password", "role": "rep", "territories": []string{"t-north"}})
	rita := c.Login(t, "rita", "rita-password", "phone-rita")
	for _, x := range []exchange{
		{method: http.MethodPost, path: "/v1/sync/pull", body: `{"checkpoint":"","limit":10}`, status: http.StatusUnauthorized, ans: "error-unauthorized.json"},
		{method: http.MethodPost, path: "/v1/sync/push", token: admin.Access, body: `{"device_id":`, status: http.StatusBadRequest, ans: "error-bad-request.json"},
		{method: http.MethodPost, path: "/v1/sync/pull", token: admin.Access, body: `{"checkpoint":"","limit":-1}`, status: http.StatusUnprocessableEntity, ans: "error-validation-failed.json"},
		{method: http.MethodGet, path: "/v1/admin/users", token: rita.Access, status: http.StatusForbidden, ans: "error-forbidden.json"},
		{method: http.MethodGet, path: "/v1/admin/users/u-nobody", token: admin.Access, status: http.StatusNotFound, ans: "error-not-found.json"},
		{method: http.MethodGet, path: "/v1/sync/push", token: admin.Access, status: http.StatusMethodNotAllowed, ans: "error-method-not-allowed.json"},
		{method: http.MethodPost, path: "/v1/admin/users", token: admin.Access, body: map[string]any{"username": "rita", "password": "rita-password", "role": "rep", "territories": []string{"t-north"}},
			status: http.StatusConflict, ans: "error-conflict.json"},
		{method: http.MethodPost, path: "/v1/sync/pull", token: admin.Access, contentType: "text/plain", body: `{"checkpoint":"","limit":10}`,
			status: http.StatusUnsupportedMediaType, ans: "error-unsupported-media-type.json"},
	} {
		t.Run(x.ans, func(t *testing.T) { run(t, x) })
	}
}

// callAs sends body with a Content-Type of choice; the exchange is checked
// against the OpenAPI document like every other.
func callAs(t *testing.T, c *servertest.Client, method, path, token, contentType, body string) servertest.Response {
	t.Helper()
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.Do(t, req)
}

// checkGoldenAgainstDocument checks a golden request (nil: none) and its
// golden answer against the OpenAPI document, as if they had been sent.
func checkGoldenAgainstDocument(t *testing.T, contract *servertest.Contract, method, path string, auth bool, body []byte, status int, answer []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://fieldsync.test"+path, bytes.NewReader(body))
	require.NoError(t, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		req.Header.Set("Authorization", "Bearer golden")
	}
	resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}}, Request: req,
		Body: io.NopCloser(bytes.NewReader(answer))}
	assert.Empty(t, contract.Check(req, body, resp, answer), "golden files %s %s against docs/openapi.yaml", method, path)
}
