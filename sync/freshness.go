package sync

import (
	"context"
	"fmt"
	gosync "sync"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// noteEvery is how often one instance records the same device's pushes or
// pulls: sync freshness is read in minutes, and a write per pull would
// cost more than it tells.
const noteEvery = 30 * time.Second

// deviceNotes remembers when this instance last recorded each device's
// push or pull. It only saves writes; nothing depends on it.
type deviceNotes struct {
	mu   gosync.Mutex
	last map[string]time.Time
}

// noteSync records that p's device pushed or pulled, at most once per
// noteEvery per instance.
func (e *Engine) noteSync(ctx context.Context, p schema.Principal, push bool) {
	if p.DeviceID == "" {
		return
	}
	now := e.now().UTC()
	key := fmt.Sprintf("%s\x00%s\x00%t", p.UserID, p.DeviceID, push)
	e.notes.mu.Lock()
	if e.notes.last == nil {
		e.notes.last = map[string]time.Time{}
	}
	if now.Sub(e.notes.last[key]) < noteEvery {
		e.notes.mu.Unlock()
		return
	}
	e.notes.last[key] = now
	e.notes.mu.Unlock()
	if err := e.store.NoteDeviceSync(ctx, p.UserID, p.DeviceID, push, now); err != nil {
		e.log.Warn("noting a device sync", "err", err)
	}
}
