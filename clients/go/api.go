package fieldsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/fieldsync/fieldsync/schema"
)

// ResponseError is an answer of the server that is not a success: its HTTP
// status and the contract's error. errors.As finds the *schema.Error
// inside, so schema.ErrorCode(err) gives the stable code.
type ResponseError struct {
	// Op names the request, such as "push" or "media.put".
	Op     string
	Status int
	Err    *schema.Error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %v", e.Op, e.Status, e.Err)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// maxAnswer bounds the body of an answer read into memory.
const maxAnswer = 64 << 20

// api speaks the HTTP contract: it signs in, keeps the tokens in memory
// (never logged), and retries what may be retried.
type api struct {
	base     string
	http     *http.Client
	log      *slog.Logger
	now      func() time.Time
	retry    RetryPolicy
	username string
	password string
	device   string

	mu      gosync.Mutex // guards the tokens and serialises sign-ins
	access  string
	refresh string
	expires time.Time
}

func newAPI(cfg Config) *api {
	return &api{
		base: cfg.BaseURL, http: cfg.HTTPClient, log: cfg.Logger, now: cfg.Now, retry: cfg.Retry,
		username: cfg.Username, password: cfg.Password, device: cfg.DeviceID,
	}
}

// request is one call of the contract.
type request struct {
	op     string
	method string
	path   string
	// body opens the body afresh for each attempt; nil for none.
	body        func() (io.ReadCloser, error)
	size        int64
	contentType string
	// accept lists the statuses other than 2xx that are answers, not errors.
	accept []int
	// public requests carry no token.
	public bool
	// header holds further request headers.
	header map[string]string
}

// jsonRequest is a POST of v as JSON.
func jsonRequest(op, path string, v any) (request, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return request{}, fmt.Errorf("%s: %w", op, err)
	}
	return request{
		op: op, method: http.MethodPost, path: path, size: int64(len(body)), contentType: "application/json",
		body: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}, nil
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends r until it gets an answer. Network errors, timeouts, 408, 429
// and 5xx are retried with backoff up to the policy's attempts; a 401 makes
// it renew the token (refresh, else sign in again) and try once more; any
// other status that is not 2xx or accepted is a *ResponseError.
func (a *api) do(ctx context.Context, r request, rep *SyncReport) (*answer, error) {
	renewed := false
	for attempt := 1; ; {
		token := ""
		if !r.public {
			var err error
			if token, err = a.token(ctx, rep); err != nil {
				return nil, err
			}
		}
		ans, err := a.once(ctx, r, token)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("%s: %w", r.op, ctx.Err())
		case err != nil:
			err = fmt.Errorf("%s: %w", r.op, err)
		case ans.status == http.StatusUnauthorized && !r.public && !renewed:
			renewed = true
			if err := a.renew(ctx, token, rep); err != nil {
				return nil, err
			}
			continue
		case ans.status/100 == 2 || slices.Contains(r.accept, ans.status):
			return ans, nil
		case retryable(ans.status):
			err = responseError(r.op, ans)
		default:
			return nil, responseError(r.op, ans)
		}
		if attempt >= a.retry.MaxAttempts {
			return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		wait, giveUp := a.backoff(attempt, ans)
		if giveUp {
			return nil, fmt.Errorf("the server asks for a pause of %s, longer than the policy's MaxRetryAfter: %w", wait, err)
		}
		a.log.WarnContext(ctx, "request failed; retrying", slog.String("op", r.op), slog.Int("attempt", attempt),
			slog.Duration("wait", wait), slog.String("error", err.Error()))
		rep.Retries++
		attempt++
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%s: %w", r.op, ctx.Err())
		case <-t.C:
		}
	}
}

func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// once sends one attempt and reads its answer.
func (a *api) once(ctx context.Context, r request, token string) (*answer, error) {
	var body io.ReadCloser
	if r.body != nil {
		var err error
		if body, err = r.body(); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, a.base+r.path, body)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	if body != nil {
		req.ContentLength = r.size
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "application/json")
	// Named here, the encodings are ours to decode: Go's transport
	// inflates gzip itself only when it added the header.
	req.Header.Set("Accept-Encoding", acceptEncoding)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := readAnswer(resp)
	if err != nil {
		return nil, err
	}
	a.log.DebugContext(ctx, "request", slog.String("op", r.op), slog.Int("status", resp.StatusCode))
	return &answer{status: resp.StatusCode, header: resp.Header, body: raw}, nil
}

// acceptEncoding is what the client asks answers to be compressed with.
const acceptEncoding = "zstd, gzip"

// readAnswer reads an answer's body, inflated, at most maxAnswer bytes of it.
func readAnswer(resp *http.Response) ([]byte, error) {
	body := io.Reader(resp.Body)
	switch enc := strings.ToLower(resp.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return nil, fmt.Errorf("answer in gzip: %w", err)
		}
		defer zr.Close()
		body = zr
	case "zstd":
		zr, err := zstd.NewReader(resp.Body, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxAnswer))
		if err != nil {
			return nil, fmt.Errorf("answer in zstd: %w", err)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, fmt.Errorf("answer in an encoding not asked for: %q", enc)
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return raw, nil
}

// backoff is the wait before the retry after attempt n: exponential with
// jitter, at most MaxDelay; or, when the server asked with Retry-After for
// a longer pause, that pause plus a random part (up to a tenth of it and
// 100 ms, at most a second) so that devices refused together do not come
// back together: never earlier than asked, whatever MaxDelay. giveUp says
// that the server asked for longer than MaxRetryAfter.
func (a *api) backoff(n int, ans *answer) (wait time.Duration, giveUp bool) {
	d := min(a.retry.BaseDelay<<min(n-1, 20), a.retry.MaxDelay)
	d = d/2 + rand.N(d/2+1)
	if ans == nil {
		return d, false
	}
	asked, ok := retryAfter(ans.header.Get("Retry-After"), a.now())
	if !ok || asked <= d {
		return d, false
	}
	if asked > a.retry.MaxRetryAfter {
		return asked, true
	}
	return asked + rand.N(min(asked/10+100*time.Millisecond, time.Second)), false
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil {
		return time.Duration(max(s, 0)) * time.Second, true
	}
	at, err := http.ParseTime(h)
	if err != nil {
		return 0, false
	}
	return max(at.Sub(now), 0), true
}

// responseError turns a refusal into a *ResponseError.
func responseError(op string, ans *answer) error {
	var body struct {
		Error *schema.Error `json:"error"`
	}
	if json.Unmarshal(ans.body, &body) != nil || body.Error == nil || body.Error.Code == "" {
		body.Error = &schema.Error{Code: codeOfStatus(ans.status), Message: http.StatusText(ans.status)}
	}
	return &ResponseError{Op: op, Status: ans.status, Err: body.Error}
}

// codeOfStatus names a status that came without the contract's error body
// (from a proxy, say).
func codeOfStatus(status int) string {
	code, ok := map[int]string{
		http.StatusUnauthorized:          schema.CodeUnauthorized,
		http.StatusForbidden:             schema.CodeForbidden,
		http.StatusNotFound:              schema.CodeNotFound,
		http.StatusRequestEntityTooLarge: schema.CodePayloadTooLarge,
		http.StatusTooManyRequests:       schema.CodeRateLimited,
		http.StatusServiceUnavailable:    schema.CodeUnavailable,
	}[status]
	switch {
	case ok:
		return code
	case status >= 500:
		return schema.CodeInternal
	}
	return schema.CodeBadRequest
}

// token returns an access token that should still be good, signing in or
// refreshing first when there is none or it has run out.
func (a *api) token(ctx context.Context, rep *SyncReport) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.access != "" && a.now().Before(a.expires) {
		return a.access, nil
	}
	if err := a.signIn(ctx, rep); err != nil {
		return "", err
	}
	return a.access, nil
}

// renew replaces an access token the server refused, unless another
// request already did.
func (a *api) renew(ctx context.Context, refused string, rep *SyncReport) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.access != refused {
		return nil
	}
	a.access = ""
	return a.signIn(ctx, rep)
}

// signIn gets a new token pair: by the refresh token when there is one
// (the server rotates it), else, or when the server refuses it, by the
// password. Called with mu held.
func (a *api) signIn(ctx context.Context, rep *SyncReport) error {
	if refresh := a.refresh; refresh != "" {
		err := a.tokens(ctx, "auth.refresh", "/v1/auth/refresh", schema.RefreshRequest{RefreshToken: refresh}, rep)
		var re *ResponseError
		if err == nil {
			rep.Refreshes++
			return nil
		}
		if !errors.As(err, &re) || re.Status != http.StatusUnauthorized {
			// Not taken: a refusal (429, 503) comes before the token is
			// used, and the next sync tries it again rather than the
			// password, the most expensive request a crowded server gets.
			a.refresh = refresh
			return err
		}
		a.log.InfoContext(ctx, "refresh token refused; signing in again")
	}
	err := a.tokens(ctx, "auth.login", "/v1/auth/login",
		schema.LoginRequest{Username: a.username, Password: a.password, DeviceID: a.device}, rep)
	if err == nil {
		rep.Logins++
	}
	return err
}

// tokens asks login or refresh for a new pair and keeps it.
func (a *api) tokens(ctx context.Context, op, path string, body any, rep *SyncReport) error {
	a.refresh = "" // a refresh token is good once, whatever the answer
	r, err := jsonRequest(op, path, body)
	if err != nil {
		return err
	}
	r.public = true
	start := a.now()
	ans, err := a.do(ctx, r, rep)
	if err != nil {
		return err
	}
	var t schema.TokenResponse
	if err := json.Unmarshal(ans.body, &t); err != nil || t.AccessToken == "" || t.RefreshToken == "" {
		return fmt.Errorf("%s: the answer holds no token pair", op)
	}
	a.access, a.refresh = t.AccessToken, t.RefreshToken
	// Leave a margin, so that a token is renewed before the server would
	// refuse it; without a lifetime, wait for the refusal.
	ttl := time.Duration(t.ExpiresIn) * time.Second
	a.expires = start.Add(ttl - min(ttl/10, 30*time.Second))
	if ttl <= 0 {
		a.expires = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return nil
}

// call sends a JSON request and decodes its answer into out.
func (a *api) call(ctx context.Context, op, path string, in, out any, rep *SyncReport) error {
	r, err := jsonRequest(op, path, in)
	if err != nil {
		return err
	}
	ans, err := a.do(ctx, r, rep)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(ans.body, out); err != nil {
		return fmt.Errorf("%s: bad answer: %w", op, err)
	}
	return nil
}
