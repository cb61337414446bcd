package servertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	gosync "sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/helpers"
	"github.com/stretchr/testify/require"

	"github.com/fieldsync/fieldsync/docs"
	"github.com/fieldsync/fieldsync/schema"
)

// Contract checks HTTP exchanges with a fieldsync server against the
// OpenAPI document (docs/openapi.yaml):
//
//   - every answer must be one the document describes for its route, status
//     and content;
//   - a request the document calls invalid must be refused by the server
//     too: a 4xx, or, for a push, a rejected result for the mutations the
//     document refuses (one bad mutation does not spoil its batch);
//   - a route the document lacks fails the test.
type Contract struct {
	mu gosync.Mutex
	v  validator.Validator
}

// NewContract reads the OpenAPI document; a document that does not build
// fails the test.
func NewContract(tb testing.TB) *Contract {
	tb.Helper()
	doc, err := libopenapi.NewDocument(docs.OpenAPI())
	require.NoError(tb, err, "docs/openapi.yaml")
	v, errs := validator.NewValidator(doc)
	require.Empty(tb, errs, "docs/openapi.yaml")
	return &Contract{v: v}
}

// Transport wraps base (nil: http.DefaultTransport) so that every exchange
// with the server at baseURL is checked; requests elsewhere (a presigned
// photo URL) pass unchecked.
func (c *Contract) Transport(tb testing.TB, baseURL string, base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &checkedTransport{tb: tb, c: c, base: base, prefix: baseURL}
}

type checkedTransport struct {
	tb     testing.TB
	c      *Contract
	base   http.RoundTripper
	prefix string
}

func (t *checkedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(req.URL.String(), t.prefix) {
		return t.base.RoundTrip(req)
	}
	// Photo bytes stream through unread, so that tests of flat memory stay
	// true; the document describes them as binary, with nothing to check.
	var body []byte
	if req.Body != nil && isJSON(req.Header) {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	var answer []byte
	if isJSON(resp.Header) {
		answer, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(answer))
	}
	if problems := t.c.Check(req, body, resp, answer); len(problems) > 0 {
		t.tb.Errorf("%s %s answered %d breaks docs/openapi.yaml:\n%s", req.Method, req.URL.Path, resp.StatusCode, strings.Join(problems, "\n"))
	}
	return resp, nil
}

// Check returns what in one exchange disagrees with the document: req was
// sent with body and answered by resp with answer.
func (c *Contract) Check(req *http.Request, body []byte, resp *http.Response, answer []byte) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	clone := func() *http.Request {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		return r
	}
	var problems []string
	reqOK, reqErrs := c.v.ValidateHttpRequestSync(clone())
	for _, e := range reqErrs {
		if e.ValidationType == helpers.PathValidation && (e.ValidationSubType == helpers.ValidationMissing || e.ValidationSubType == helpers.ValidationMissingOperation) {
			// A route the document lacks must be one the server lacks.
			if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				return []string{"the document has no such route, yet the server answered it: " + e.Message}
			}
			return nil
		}
	}
	r := *resp
	r.Body = io.NopCloser(bytes.NewReader(answer))
	if req.Method == http.MethodHead {
		r.Body = http.NoBody
	}
	if ok, errs := c.v.ValidateHttpResponse(clone(), &r); !ok {
		for _, e := range errs {
			problems = append(problems, "answer: "+describe(e.Message, e.Reason, e.SchemaValidationErrors))
		}
	}
	if !reqOK && !refused(req, resp.StatusCode, answer) {
		for _, e := range reqErrs {
			problems = append(problems, "request the document refuses, yet the server accepted it: "+describe(e.Message, e.Reason, e.SchemaValidationErrors))
		}
	}
	return problems
}

// isJSON reports whether a message's body is JSON, or text, or none.
func isJSON(h http.Header) bool {
	ct := h.Get("Content-Type")
	return ct == "" || strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "text/")
}

// refused reports whether the server refused a request: a 4xx, or a push
// answered with at least one rejected mutation.
func refused(req *http.Request, status int, answer []byte) bool {
	if status >= 400 && status < 500 {
		return true
	}
	if status != http.StatusOK || req.URL.Path != "/v1/sync/push" {
		return false
	}
	var resp schema.PushResponse
	if json.Unmarshal(answer, &resp) != nil {
		return false
	}
	for _, r := range resp.Results {
		if r.Status == schema.PushRejected {
			return true
		}
	}
	return false
}

func describe(message, reason string, details any) string {
	s := message
	if reason != "" {
		s += ": " + reason
	}
	if d := fmt.Sprint(details); d != "[]" && d != "<nil>" {
		s += " " + d
	}
	return s
}
