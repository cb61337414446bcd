package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// healthz answers while the process runs.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 only when the record store answers and can write,
// and the photo store answers; otherwise it names those that cannot.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	checks := []struct {
		name, what string
		p          Pinger
		writes     *writeProbe // nil: answering is enough
	}{{"records", "the record store", s.store, s.writes}, {"photos", "the photo store", s.photos, nil}}
	status := fiber.Map{}
	var down, names []string
	for _, ch := range checks {
		err := ch.p.Ping(ctx)
		problem := "not answering"
		if err == nil && ch.writes != nil {
			err, problem = ch.writes.check(ctx), "cannot write"
		}
		if err != nil {
			s.log.Warn("not ready", slog.String("check", ch.name), slog.Any("err", err))
			status[ch.name] = "unavailable"
			down = append(down, ch.what+" "+problem)
			names = append(names, ch.name)
			continue
		}
		status[ch.name] = "ok"
	}
	if len(down) > 0 {
		return &schema.Error{Code: schema.CodeUnavailable,
			Message: "not ready: " + strings.Join(down, " and ") + " (" + strings.Join(names, ", ") + ")"}
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": status})
}

// WriteChecker is a record store that can tell whether it takes writes
// now (the embedded store: a full disk or a read-only folder still
// answers reads). Readiness asks it when the store has one.
type WriteChecker interface {
	CheckWrite(ctx context.Context) error
}

// writeProbeEvery is how long a record store found able to write is
// taken to stay so, unless a request meets an unavailable store meanwhile.
const writeProbeEvery = 10 * time.Second

// writeProbe asks a WriteChecker for readiness without writing on every
// probe: a success is trusted for writeProbeEvery, a failure is checked
// again on the next probe, so readiness comes back by itself once the
// store can write, and an unavailable error answered to any request makes
// the next probe check again at once.
type writeProbe struct {
	store WriteChecker
	now   func() time.Time

	suspect atomic.Bool // an unavailable error was answered since the last check

	mu  gosync.Mutex
	at  time.Time // of the last check
	err error     // of the last check
}

// check returns the store's ability to write, checking it again when due.
func (p *writeProbe) check(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	suspect := p.suspect.Swap(false)
	if p.err == nil && !suspect && !p.at.IsZero() && p.now().Sub(p.at) < writeProbeEvery {
		return nil
	}
	p.err, p.at = p.store.CheckWrite(ctx), p.now()
	return p.err
}

// noteError makes the next check ask the store again when err says a
// store was unavailable.
func (p *writeProbe) noteError(err error) {
	if p != nil && errors.Is(err, schema.ErrUnavailable) {
		p.suspect.Store(true)
	}
}
