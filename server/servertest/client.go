package servertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
)

// Client calls a fieldsync server over HTTP the way tests do: it signs in,
// sends JSON, and decodes answers, with every exchange checked against the
// OpenAPI document.
type Client struct {
	URL  string
	HTTP *http.Client
}

// Connect returns a client of the fieldsync server at url that the test
// did not start itself (the binary, a server behind a proxy), checking
// every exchange with it as Start's client does.
func Connect(tb testing.TB, url string) *Client {
	return &Client{URL: url, HTTP: &http.Client{Transport: NewContract(tb).Transport(tb, url, nil)}}
}

// Response is an answer read whole: its status and headers, the raw body,
// and the body decoded when it is JSON.
type Response struct {
	Status int
	Header http.Header
	Close  bool // the server closes the connection after it
	Body   map[string]any
	Raw    []byte
}

// ErrorCode returns the contract error's code, or "".
func (r Response) ErrorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// Call sends a request with an optional bearer token and body: a string or
// []byte is sent as is, anything else as its JSON, and nil sends none.
func (c *Client) Call(tb testing.TB, method, path, token string, body any) Response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		require.NoError(tb, err)
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, c.URL+path, rd)
	require.NoError(tb, err)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return c.Do(tb, req)
}

// Do sends a request made by hand (other headers, another Content-Type)
// and reads its answer as Call does.
func (c *Client) Do(tb testing.TB, req *http.Request) Response {
	tb.Helper()
	resp, err := c.HTTP.Do(req)
	require.NoError(tb, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Close: resp.Close, Raw: raw}
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoErrorf(tb, json.Unmarshal(raw, &r.Body), "body %s", raw)
	}
	return r
}

// Session is a signed-in caller.
type Session struct {
	Access, Refresh string
	UserID          string
}

// Login signs a user in on a device and requires it to succeed.
func (c *Client) Login(tb testing.TB, username, password, device string) Session {
	tb.Helper()
	r := c.Call(tb, http.MethodPost, "/v1/auth/login", "", schema.LoginRequest{Username: username, Password: password, DeviceID: device})
	require.Equalf(tb, http.StatusOK, r.Status, "login %s: %s", username, r.Raw)
	return SessionOf(tb, r)
}

// SessionOf reads the tokens of a login or refresh answer.
func SessionOf(tb testing.TB, r Response) Session {
	tb.Helper()
	var t schema.TokenResponse
	require.NoError(tb, json.Unmarshal(r.Raw, &t))
	require.NotEmpty(tb, t.AccessToken)
	require.NotEmpty(tb, t.RefreshToken)
	require.NotNil(tb, t.User)
	return Session{Access: t.AccessToken, Refresh: t.RefreshToken, UserID: t.User.ID}
}

// CreateUser makes a user through the admin API and returns its id.
func (c *Client) CreateUser(tb testing.TB, adminToken string, user map[string]any) string {
	tb.Helper()
	r := c.Call(tb, http.MethodPost, "/v1/admin/users", adminToken, user)
	require.Equalf(tb, http.StatusCreated, r.Status, "create user: %s", r.Raw)
	id, _ := r.Body["id"].(string)
	return id
}

// Push sends mutations from a device and requires a 200.
func (c *Client) Push(tb testing.TB, token, deviceID string, mutations ...schema.Mutation) []schema.PushResult {
	tb.Helper()
	req, err := schema.NewPushRequest(deviceID, mutations)
	require.NoError(tb, err)
	r := c.Call(tb, http.MethodPost, "/v1/sync/push", token, req)
	require.Equalf(tb, http.StatusOK, r.Status, "push: %s", r.Raw)
	var resp schema.PushResponse
	require.NoError(tb, json.Unmarshal(r.Raw, &resp))
	require.Len(tb, resp.Results, len(mutations))
	return resp.Results
}

// Pull asks for one page of changes and requires a 200.
func (c *Client) Pull(tb testing.TB, token string, req schema.PullRequest) *schema.PullResponse {
	tb.Helper()
	r := c.Call(tb, http.MethodPost, "/v1/sync/pull", token, req)
	require.Equalf(tb, http.StatusOK, r.Status, "pull: %s", r.Raw)
	var resp schema.PullResponse
	require.NoError(tb, json.Unmarshal(r.Raw, &resp))
	return &resp
}
