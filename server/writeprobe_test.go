package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/fieldsync/fieldsync/schema"
)

// checkCounter answers CheckWrite with err and counts the calls.
type checkCounter struct {
	calls int
	err   error
}

func (c *checkCounter) CheckWrite(context.Context) error { c.calls++; return c.err }

// Readiness does not write on every probe: a store found able to write is
// trusted for a while, one that could not is asked again on every probe,
// and an unavailable error answered to a request makes the next probe ask.
func TestWriteProbeAsksOnlyWhenDue(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	store := &checkCounter{}
	p := &writeProbe{store: store, now: func() time.Time { return now }}
	ctx := context.Background()

	assert.NoError(t, p.check(ctx))
	assert.NoError(t, p.check(ctx))
	assert.Equal(t, 1, store.calls, "a success is trusted")
	now = now.Add(writeProbeEvery)
	assert.NoError(t, p.check(ctx))
	assert.Equal(t, 2, store.calls, "and asked again when due")

	full := fmt.Errorf("disk full: %w", schema.ErrUnavailable)
	store.err = full
	p.noteError(errors.New("a bad request"))
	assert.NoError(t, p.check(ctx), "other errors do not make it ask")
	p.noteError(full)
	assert.ErrorIs(t, p.check(ctx), full, "a request met an unavailable store: asked at once")
	assert.ErrorIs(t, p.check(ctx), full)
	assert.Equal(t, 4, store.calls, "a failure is asked again on every probe")
	store.err = nil
	assert.NoError(t, p.check(ctx), "ready again once it writes")
	assert.Equal(t, 5, store.calls)
}
