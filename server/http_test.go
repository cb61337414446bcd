package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/servertest"
	"github.com/fieldsync/fieldsync/sync"
)

// rawExchange writes request, as is, on a new connection to ts and reads
// one response.
func (ts *testServer) rawExchange(tb testing.TB, request string) response {
	tb.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	require.NoError(tb, err)
	defer conn.Close()
	require.NoError(tb, conn.SetDeadline(time.Now().Add(30*time.Second)))
	_, err = io.WriteString(conn, request)
	require.NoError(tb, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(tb, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(tb, err)
	r := response{Status: resp.StatusCode, Header: resp.Header, Close: resp.Close, Raw: raw}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoErrorf(tb, json.Unmarshal(raw, &r.Body), "body %s", raw)
	}
	return r
}

func TestTokensStaySmallWhateverTheScope(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	territories := make([]string, schema.MaxTerritories)
	for i := range territories {
		territories[i] = fmt.Sprintf("t-%03d-%s", i, strings.Repeat("x", schema.MaxIDLength-6))
	}
	ts.createUser(t, admin, map[string]any{"username": "wide", "password": "wide-pass-1", "role": "manager", "territories": territories})
	wide := ts.login(t, "wide", "wide-pass-1", "d-wide")

	assert.Less(t, len(wide.Access), 1024, "an access token names no territories")
	assert.NotContains(t, claimsOf(t, wide.Access), "territories")
	r := ts.call(t, "POST", "/v1/sync/pull", wide.Access, nil)
	assert.Equal(t, http.StatusOK, r.Status, "the scope comes from the store: %.300s", r.Raw)
}

func TestOversizedRequestHeadsAnswer431(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	big := strings.Repeat("a", 32<<10)
	// Sent in one write, so that the whole request is on its way before
	// the server answers and closes.
	tests := []struct{ name, request string }{
		{"header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + big + "\r\n\r\n"},
		{"bearer token", "POST /v1/sync/pull HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin.Access + big + "\r\nContent-Length: 0\r\n\r\n"},
		{"query string", "GET /v1/reports/unvisited?days=30&territory_id=" + big + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin.Access + "\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inputAssertError(t, ts.rawExchange(t, tt.request), http.StatusRequestHeaderFieldsTooLarge, "headers_too_large")
		})
	}
	assert.Equal(t, http.StatusOK, ts.call(t, "GET", "/healthz", "", nil).Status, "the server keeps serving")
}

func TestJSONEndpointsRefuseOtherContentTypes(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	login := `{"username":"admin","password":"` + adminPassword + `","device_id":"d"}`
	tests := []struct {
		name, path, token, body, contentType string
	}{
		{"login as a form", "/v1/auth/login", "", login, "application/x-www-form-urlencoded"},
		{"login as text", "/v1/auth/login", "", login, "text/plain"},
		{"push as text", "/v1/sync/push", admin.Access, inputBatch(inputTerritory("m-1", "t-1")), "text/plain;charset=UTF-8"},
		{"pull as a form", "/v1/sync/pull", admin.Access, `{"checkpoint":""}`, "multipart/form-data; boundary=x"},
		{"new user as xml", "/v1/admin/users", admin.Access, `{"username":"u-1","password":"long-enough","role":"admin"}`, "application/xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", ts.URL+tt.path, strings.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", tt.contentType)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			raw, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			inputAssertError(t, response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, http.StatusUnsupportedMediaType, "unsupported_media_type")
		})
	}
	records, _ := inputRecords(t, ts, admin.Access)
	assert.NotContains(t, records, "territories/t-1", "a refused push writes nothing")

	for _, contentType := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", ""} {
		req, err := http.NewRequest("POST", ts.URL+"/v1/auth/login", strings.NewReader(login))
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equalf(t, http.StatusOK, resp.StatusCode, "Content-Type %q is JSON", contentType)
	}
}

func TestConflictingContentLengthsAreRefused(t *testing.T) {
	ts := startServer(t)
	body := `{"username":"admin","password":"` + adminPassword + `","device_id":"d"}`
	r := ts.rawExchange(t, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 5\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body)
	inputAssertError(t, r, http.StatusBadRequest, "bad_request")
	assert.True(t, r.Close, "the connection is closed after an ambiguous body")

	r = ts.rawExchange(t, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+fmt.Sprint(len(body))+"\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\n\r\n"+body)
	assert.Equal(t, http.StatusOK, r.Status, "repeating the same length is not a conflict: %s", r.Raw)
}

func TestPullWithNothingNewListsNoChanges(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	for _, body := range []map[string]any{{"checkpoint": ""}, {}} {
		r := ts.call(t, "POST", "/v1/sync/pull", admin.Access, body)
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		assert.Contains(t, string(r.Raw), `"changes":[]`)
		if body != nil {
			body["checkpoint"] = r.Body["checkpoint"]
			r = ts.call(t, "POST", "/v1/sync/pull", admin.Access, body)
			require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
			assert.Contains(t, string(r.Raw), `"changes":[]`, "nothing new after a checkpoint")
		}
	}
}

func TestOverflowingQuantityIsReportedOnTheQuantity(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	r, results := inputPush(t, ts, admin.Access, inputBatch(
		inputTerritory("m-seed-t", "t-1"),
		`{"mutation_id":"m-seed-c","collection":"customers","id":"c-1","op":"upsert","base_version":0,"data":{"code":"C-1","name":"Shop","territory_id":"t-1","grade":"A","lat":52.5,"lng":13.4}}`,
		`{"mutation_id":"m-seed-p","collection":"products","id":"p-1","op":"upsert","base_version":0,"data":{"sku":"S-1","name":"Cola","unit":"case","price":1299,"active":true}}`,
	))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	for _, res := range results {
		require.Equal(t, schema.PushApplied, res.Status, string(r.Raw))
	}
	order := func(mid, id, unitPrice string) string {
		return `{"mutation_id":"` + mid + `","collection":"orders","id":"` + id + `","op":"upsert","base_version":0,"data":` +
			`{"customer_id":"c-1","status":"draft","lines":[{"product_id":"p-1","quantity":3,"unit_price":1299},` +
			`{"product_id":"p-1","quantity":9000000000000000000,"unit_price":` + unitPrice + `}]}}`
	}
	r, results = inputPush(t, ts, admin.Access, inputBatch(
		order("m-1", "o-1", "1299"), // overflows at the client's price
		order("m-2", "o-2", "0"),    // overflows at the server's price
	))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Len(t, results, 2)
	for _, res := range results {
		assert.Equal(t, schema.PushRejected, res.Status, string(r.Raw))
		require.NotNil(t, res.Error, string(r.Raw))
		assert.Equal(t, "validation_failed", res.Error.Code)
		assert.Equal(t, "lines[1].quantity", res.Error.Field, res.Error.Message)
	}
}

func TestChunkedPhotoUploadAnswersWhenTheBodyEnds(t *testing.T) {
	ts := startServer(t)
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	photo := jpeg(300 << 10)
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	// The connection stays open after the last chunk, as a kept-alive
	// client's does. The server's read timeout is minutes; the answer must
	// come long before it.
	require.NoError(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PUT /v1/media/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n",
		sum(photo), admin.Access)
	for rest := photo; len(rest) > 0; {
		n := min(len(rest), 64<<10)
		fmt.Fprintf(w, "%x\r\n%s\r\n", n, rest[:n])
		rest = rest[n:]
	}
	io.WriteString(w, "0\r\n\r\n")
	require.NoError(t, w.Flush())

	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "an answer before the read timeout")
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusCreated, resp.StatusCode, string(raw))
	// HEAD answers only for photos a record grants reading; uploading the
	// same bytes again says whether they were kept.
	again := ts.upload(t, admin.Access, sum(photo), "image/jpeg", bytes.NewReader(photo), int64(len(photo)))
	assert.Equal(t, http.StatusOK, again.Status, "already stored: %s", again.Raw)
}

func TestPullPagesStopAtTheByteLimit(t *testing.T) {
	const maxPullBytes = 16 << 10
	srv := servertest.Start(t, servertest.Options{AdminPassword: adminPassword, Engine: func(c *sync.Config) { c.MaxPullBytes = maxPullBytes }})
	ts := &testServer{URL: srv.URL, Dir: srv.Dir, Secret: srv.Secret, Store: srv.Store, client: srv.Client(), HTTP: srv.HTTP}
	admin := ts.login(t, adminName, adminPassword, "d-admin")
	mutations := []string{inputTerritory("m-t", "t-1")}
	for i := range 40 {
		mutations = append(mutations, fmt.Sprintf(`{"mutation_id":"m-%d","collection":"customers","id":"c-%02d","op":"upsert","base_version":0,"data":`+
			`{"code":"C-%d","name":"Shop","territory_id":"t-1","grade":"A","lat":52.5,"lng":13.4,"notes":%q}}`, i, i, i, strings.Repeat("n", 3000)))
	}
	r, results := inputPush(t, ts, admin.Access, inputBatch(mutations...))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	for _, res := range results {
		require.Equal(t, schema.PushApplied, res.Status, string(r.Raw))
	}

	seen := map[string]bool{}
	cp, pages := "", 0
	for {
		r := ts.call(t, "POST", "/v1/sync/pull", admin.Access, map[string]any{"checkpoint": cp, "limit": 1000})
		require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
		var page struct {
			Changes []struct {
				Collection, ID string
				Data           json.RawMessage
			} `json:"changes"`
			Checkpoint string `json:"checkpoint"`
			HasMore    bool   `json:"has_more"`
		}
		require.NoError(t, json.Unmarshal(r.Raw, &page))
		pages++
		size := 0
		for i, ch := range page.Changes {
			assert.Less(t, size, maxPullBytes, "change %d comes after the page reached its bytes", i)
			size += len(ch.Data)
			seen[ch.Collection+"/"+ch.ID] = true
		}
		if page.HasMore {
			assert.GreaterOrEqual(t, size, maxPullBytes, "a page with more to come is full")
		}
		cp = page.Checkpoint
		if !page.HasMore {
			break
		}
		require.Less(t, pages, 100, "the pull ends")
	}
	assert.Len(t, seen, 41, "every record arrives")
	assert.Greater(t, pages, 5, "40 records of about 3 KB come in pages of about 16 KB")
}
