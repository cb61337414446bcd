package sync

import (
	"context"
	"fmt"
	"slices"

	"github.com/fieldsync/fieldsync/schema"
)

// Pull limits.
const (
	DefaultPullLimit = 500
	MaxPullLimit     = 1000
)

// maxExtraScopes bounds how many interrupted scopes a checkpoint carries;
// past it the oldest are merged away by a full removal pass.
const maxExtraScopes = 4

// Pull returns the next page of changes p may read after the checkpoint:
// each record at its current version, tombstones for deletes, and
// removals for records that left p's scope. When p's scope has changed
// since the checkpoint was made, the pages first add what p may now read
// and remove what it no longer may.
func (e *Engine) Pull(ctx context.Context, p schema.Principal, req *schema.PullRequest) (*schema.PullResponse, error) {
	limit := req.Limit
	switch {
	case limit == 0:
		limit = DefaultPullLimit
	case limit < 0 || limit > MaxPullLimit:
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "limit", "limit must be between 1 and %d", MaxPullLimit)
	}
	cols, err := CollectionSet("collections", req.Collections)
	if err != nil {
		return nil, err
	}
	now := scopeOf(p)
	cp := &checkpoint{User: p.UserID, Have: now, Cols: cols}
	if req.Checkpoint != "" {
		if cp, err = e.decodeCheckpoint(req.Checkpoint, p.UserID); err != nil {
			return nil, err
		}
		if !slices.Equal(cp.Cols, cols) {
			return nil, errOtherCollections
		}
	}
	switch {
	case cp.Fill == nil && !cp.Have.equal(now):
		cp.Fill = &backfill{Target: now}
	case cp.Fill != nil && !cp.Fill.Target.equal(now):
		// The scope moved again mid-way: the client may hold some of the
		// abandoned target's records, so they are removed if unreadable.
		cp.Extra = append(cp.Extra, cp.Fill.Target)
		if len(cp.Extra) > maxExtraScopes {
			cp.Extra = cp.Extra[len(cp.Extra)-maxExtraScopes:]
		}
		cp.Fill = &backfill{Target: now}
	}

	pg := &page{e: e, user: p.UserID, readable: cp.tokens(now), budget: limit, bytes: e.maxPullBytes, out: []*schema.Envelope{}}
	for !pg.full() {
		done, err := pg.step(ctx, cp)
		if err != nil {
			return nil, fmt.Errorf("sync.Pull: %w", err)
		}
		if done {
			break
		}
	}
	token, err := e.encodeCheckpoint(cp)
	if err != nil {
		return nil, fmt.Errorf("sync.Pull: %w", err)
	}
	e.noteSync(ctx, p, false)
	if pg.out == nil {
		pg.out = []*schema.Envelope{} // an empty page is an empty list, not null
	}
	return &schema.PullResponse{Changes: pg.out, Checkpoint: token, HasMore: pg.full()}, nil
}

// page gathers one pull's changes.
type page struct {
	e        *Engine
	user     string
	readable []string // the caller's tokens now
	budget   int      // feed entries left to read in this page
	bytes    int      // record data left to read in this page
	out      []*schema.Envelope
}

// full reports whether the page has read as many feed entries or as much
// record data as it may.
func (pg *page) full() bool { return pg.budget <= 0 || pg.bytes <= 0 }

// step advances cp by one store read and reports whether the caller is
// fully caught up.
func (pg *page) step(ctx context.Context, cp *checkpoint) (done bool, err error) {
	if cp.Fill == nil {
		wm, err := pg.e.store.Watermark(ctx)
		if err != nil {
			return false, err
		}
		chs, err := pg.read(ctx, pg.readable, cp.Seq, wm)
		if err != nil {
			return false, err
		}
		for _, ch := range chs {
			pg.emit(ch, true)
		}
		if len(chs) > 0 && pg.full() {
			cp.Seq = chs[len(chs)-1].Seq
			return false, nil
		}
		cp.Seq = max(cp.Seq, wm)
		return true, nil
	}

	f := cp.Fill
	switch f.Phase {
	case phaseAdd:
		gained := minus(cp.tokens(f.Target), cp.tokens(cp.Have))
		chs, err := pg.read(ctx, gained, f.After, cp.Seq)
		if err != nil {
			return false, err
		}
		for _, ch := range chs {
			if !ch.Gone {
				pg.emit(ch, false)
			}
		}
		if len(chs) > 0 && pg.full() {
			f.After = chs[len(chs)-1].Seq
			return false, nil
		}
		f.Phase, f.After = phaseRemove, 0
	case phaseRemove:
		held := cp.tokens(cp.Have)
		for _, s := range cp.Extra {
			held = union(held, cp.tokens(s))
		}
		lost := minus(held, cp.tokens(f.Target))
		wm, err := pg.e.store.Watermark(ctx)
		if err != nil {
			return false, err
		}
		chs, err := pg.read(ctx, lost, f.After, wm)
		if err != nil {
			return false, err
		}
		for _, ch := range chs {
			if !schema.Intersects(ch.Record.Tokens, pg.readable) {
				pg.out = append(pg.out, leftScope(ch.Record))
			}
		}
		if len(chs) > 0 && pg.full() {
			f.After = chs[len(chs)-1].Seq
			return false, nil
		}
		cp.Have, cp.Extra, cp.Fill = f.Target, nil, nil
	}
	return false, nil
}

// read takes up to the page's budget of feed entries and record data.
func (pg *page) read(ctx context.Context, tokens []string, after, upto int64) ([]Change, error) {
	if len(tokens) == 0 || upto <= after {
		return nil, nil
	}
	chs, err := pg.e.store.Changes(ctx, tokens, after, upto, pg.budget, pg.bytes)
	if err != nil {
		return nil, err
	}
	// The store stops where the budget runs out, so the page is full
	// exactly when the store cut the answer short.
	pg.budget -= len(chs)
	for _, ch := range chs {
		pg.bytes -= len(ch.Record.Data)
	}
	return chs, nil
}

// emit adds a change as the caller should see it: the record if it may
// read it now, a removal if the change is a loss of a token and it may not.
func (pg *page) emit(ch Change, removals bool) {
	switch {
	case schema.Intersects(ch.Record.Tokens, pg.readable):
		pg.out = append(pg.out, envelopeOf(ch.Record))
	case removals:
		pg.out = append(pg.out, leftScope(ch.Record))
	}
}

// minus returns the sorted tokens of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, t := range a {
		if _, found := slices.BinarySearch(b, t); !found {
			out = append(out, t)
		}
	}
	return out
}

// union returns the sorted tokens of a and b.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
