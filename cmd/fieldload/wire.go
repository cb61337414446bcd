package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	fieldsync "github.com/fieldsync/fieldsync/clients/go"
	"github.com/fieldsync/fieldsync/schema"
)

// The wire devices of -cycle -wire speak the HTTP contract themselves,
// with nothing of a client's local work: no store, no outbox, no
// resolver. What the load generator spends per cycle is then a JSON
// encoding of one visit, two small requests and the decoding of their
// answers, and the cycles per second measure the server rather than 50
// SDK stores sharing the generator's core.

// wireWatch is told what the wire devices push and pull, for tests that
// check that the load did what it claims.
type wireWatch struct {
	// pushed is called with a visit the server answered applied or
	// merged for.
	pushed func(device int, visitID string)
	// pulled is called with each page a device pulled and the time its
	// request was sent.
	pulled func(device int, sent time.Time, changes []*schema.Envelope)
}

// runWire signs the device in, pulls everything it may read, and then
// cycles until the deadline: one new visit, its push, and a pull from the
// device's checkpoint until the server has no more.
func (d *device) runWire(ctx context.Context, deadline time.Time) {
	username := d.username()
	w := &wireClient{hc: d.hc, base: strings.TrimRight(d.cfg.URL, "/"),
		login: schema.LoginRequest{Username: username, Password: username + d.cfg.PasswordSuffix, DeviceID: d.deviceID()}}
	customers := map[string]outlet{}
	first := func() bool {
		err := d.pullWire(ctx, w, func(env *schema.Envelope) {
			if env.Collection != schema.Customers {
				return
			}
			var cu schema.Customer
			if env.Deleted || json.Unmarshal(env.Data, &cu) != nil || cu.Lat == nil || cu.Lng == nil {
				delete(customers, env.ID)
				return
			}
			customers[env.ID] = outlet{env.ID, *cu.Lat, *cu.Lng}
		})
		return d.tally(0, 0, err)
	}
	if !d.firstSync(ctx, deadline, first) {
		return
	}
	outlets := make([]outlet, 0, len(customers))
	for _, o := range customers {
		outlets = append(outlets, o)
	}
	if len(outlets) == 0 {
		d.fail("first pull", errors.New("no customers to visit"))
		return
	}
	d.cycle(ctx, deadline, func(n int) (bool, error) {
		visitID, v, _ := d.newVisit(n, outlets)
		data, err := json.Marshal(v)
		if err != nil {
			return false, err
		}
		d.mu.Lock()
		d.res.Visits++
		d.mu.Unlock()
		m := schema.Mutation{MutationID: fmt.Sprintf("m-%s-%d-%d", d.runID, d.n+1, n), Collection: schema.Visits,
			ID: visitID, Op: schema.MutationUpsert, Data: data}
		return d.syncWire(ctx, w, m), nil
	})
}

// syncWire pushes m and pulls what changed, counts the sync and reports
// whether it worked. A visit the server took must come back in the pull
// that follows its push: one that does not fails the sync.
func (d *device) syncWire(ctx context.Context, w *wireClient, m schema.Mutation) bool {
	ctx = context.WithoutCancel(ctx) // a sync in flight at the deadline is let finish
	res, err := w.push(ctx, m)
	if err != nil {
		return d.tally(0, 0, fmt.Errorf("push: %w", err))
	}
	rejected, conflicts := 0, 0
	took := res.Status == schema.PushApplied || res.Status == schema.PushMerged
	switch res.Status {
	case schema.PushRejected:
		rejected = 1
	case schema.PushConflict:
		conflicts = 1
	}
	if took && d.cfg.watch != nil && d.cfg.watch.pushed != nil {
		d.cfg.watch.pushed(d.n, m.ID)
	}
	back := false
	err = d.pullWire(ctx, w, func(env *schema.Envelope) {
		back = back || (env.Collection == m.Collection && env.ID == m.ID)
	})
	if err == nil && took && !back {
		err = fmt.Errorf("%s %s was pushed but did not come back in the pull after it", m.Collection, m.ID)
	}
	return d.tally(rejected, conflicts, err)
}

// pullWire pulls from the device's checkpoint until the server has no
// more, handing each change to each.
func (d *device) pullWire(ctx context.Context, w *wireClient, each func(*schema.Envelope)) error {
	return w.pull(ctx, func(sent time.Time, changes []*schema.Envelope) {
		if d.cfg.watch != nil && d.cfg.watch.pulled != nil {
			d.cfg.watch.pulled(d.n, sent, changes)
		}
		for _, env := range changes {
			each(env)
		}
	})
}

// wireClient is one device's side of the HTTP contract: its token pair
// and its pull checkpoint. It is used by one goroutine.
type wireClient struct {
	hc      *http.Client
	base    string
	login   schema.LoginRequest
	access  string
	refresh string
	cursor  string // the checkpoint of the last page pulled
}

// wireAttempts is how often a request is sent in all when the server or
// the network fails it for a passing reason.
const wireAttempts = 3

// statusError is an answer that is not 2xx.
type statusError struct {
	path   string
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.path, e.status, strings.TrimSpace(e.body))
}

// push pushes one mutation and returns the server's answer to it.
func (w *wireClient) push(ctx context.Context, m schema.Mutation) (schema.PushResult, error) {
	req, err := schema.NewPushRequest(w.login.DeviceID, []schema.Mutation{m})
	if err != nil {
		return schema.PushResult{}, err
	}
	var resp schema.PushResponse
	if err := w.post(ctx, "/v1/sync/push", req, &resp); err != nil {
		return schema.PushResult{}, err
	}
	for _, r := range resp.Results {
		if r.MutationID == m.MutationID {
			return r, nil
		}
	}
	return schema.PushResult{}, fmt.Errorf("no answer to mutation %s", m.MutationID)
}

// pull pulls pages from the checkpoint, keeping each page's checkpoint,
// until the server says it has no more; page gets each page's changes and
// the time its request was sent.
func (w *wireClient) pull(ctx context.Context, page func(sent time.Time, changes []*schema.Envelope)) error {
	for {
		sent := time.Now()
		var resp schema.PullResponse
		if err := w.post(ctx, "/v1/sync/pull", schema.PullRequest{Checkpoint: w.cursor, Limit: fieldsync.DefaultPullLimit}, &resp); err != nil {
			return err
		}
		page(sent, resp.Changes)
		before := w.cursor
		w.cursor = resp.Checkpoint
		if !resp.HasMore || resp.Checkpoint == before {
			return nil
		}
	}
}

// post sends in as JSON to path and decodes the answer into out. A request
// that needs a token signs in first when there is none, and renews the
// token once when the server refuses it (401). Network errors, 408, 429
// and 5xx are sent again, up to wireAttempts in all, after the pause the
// answer's Retry-After asks or a short backoff.
func (w *wireClient) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	public := strings.HasPrefix(path, "/v1/auth/")
	renewed := false
	for attempt := 1; ; attempt++ {
		if !public && w.access == "" {
			if err := w.signIn(ctx); err != nil {
				return err
			}
		}
		status, retryAfter, raw, err := w.send(ctx, path, body, public)
		switch {
		case err != nil:
		case status == http.StatusUnauthorized && !public && !renewed:
			renewed = true
			if err := w.renew(ctx); err != nil {
				return err
			}
			attempt--
			continue
		case status/100 == 2:
			if err := json.Unmarshal(raw, out); err != nil {
				return fmt.Errorf("%s: bad answer: %w", path, err)
			}
			return nil
		default:
			err = &statusError{path: path, status: status, body: string(raw)}
			if !retryable(status) {
				return err
			}
		}
		if attempt >= wireAttempts || ctx.Err() != nil {
			return err
		}
		wait := max(retryAfter, 100*time.Millisecond<<attempt)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// send sends one request and reads its answer whole.
func (w *wireClient) send(ctx context.Context, path string, body []byte, public bool) (status int, retryAfter time.Duration, raw []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if !public {
		req.Header.Set("Authorization", "Bearer "+w.access)
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return 0, 0, nil, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, nil, err
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, raw, nil
}

// signIn gets a token pair with the device's password.
func (w *wireClient) signIn(ctx context.Context) error {
	return w.tokens(ctx, "/v1/auth/login", w.login)
}

// renew replaces a refused access token through the refresh token, or by
// signing in again when the server refuses that too.
func (w *wireClient) renew(ctx context.Context) error {
	refresh := w.refresh
	w.access, w.refresh = "", ""
	if refresh != "" {
		err := w.tokens(ctx, "/v1/auth/refresh", schema.RefreshRequest{RefreshToken: refresh})
		var se *statusError
		if !errors.As(err, &se) || se.status != http.StatusUnauthorized {
			if err != nil {
				w.refresh = refresh // refused before it was used (429, 503): still good
			}
			return err
		}
	}
	return w.signIn(ctx)
}

// tokens asks path for a token pair and keeps it.
func (w *wireClient) tokens(ctx context.Context, path string, in any) error {
	var t schema.TokenResponse
	if err := w.post(ctx, path, in, &t); err != nil {
		return err
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return fmt.Errorf("%s: the answer holds no token pair", path)
	}
	w.access, w.refresh = t.AccessToken, t.RefreshToken
	return nil
}

// retryable says whether an answer's status is worth sending the request
// again for.
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}
