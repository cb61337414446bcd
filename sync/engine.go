package sync

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// PhotoChecker tells the engine what the photo store knows of the bytes
// of a photo, so that a photo record's server-owned fields can be set.
type PhotoChecker interface {
	PhotoFacts(ctx context.Context, sha256 string) (schema.PhotoFacts, error)
}

// Config is what an Engine is built from; zero fields take the documented
// defaults.
type Config struct {
	// Store keeps users and records. Required.
	Store Store
	// Secret keys the MAC of checkpoints. At least 32 bytes. Required.
	Secret []byte
	// Photos, when set, tells what the photo store holds of bytes that a
	// user uploaded (PhotoArrived), read before the upload is recorded.
	Photos PhotoChecker
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxMutations is the most mutations one push may carry; default 500.
	MaxMutations int
	// DecideAheadFrom is the fewest mutations a push carries for it to be
	// decided ahead of the store's write lock, on a snapshot (see
	// PushDecisions); default 32. A smaller push holds the lock briefly
	// anyway, and deciding it ahead costs a read transaction and the
	// reads it confirms.
	DecideAheadFrom int
	// MaxPullBytes is how much record data a pull page carries: the page
	// ends with the change that reaches it; default 1 MiB.
	MaxPullBytes int
	// HistoryDepth is how many recent versions a record keeps to decide
	// merges and replays; default 10.
	HistoryDepth int
	// AnswerTTL is how long answers to mutations are kept; default 30 days.
	AnswerTTL time.Duration
	// GeofenceM is the default allowed check-in distance from an outlet in
	// metres; default 200.
	GeofenceM float64
	// FutureSkew is how far ahead of the server's clock a reported event
	// time may be; default 24 hours.
	FutureSkew time.Duration
	// Location is the time zone in which a visit's check-in falls on a
	// route plan's date; default UTC.
	Location *time.Location
	// AuditRetention is how long audit entries are kept; default 400 days.
	AuditRetention time.Duration
}

// Engine runs push and pull. It keeps no state of its own between calls,
// so any number of engines may share one store.
type Engine struct {
	store        Store
	photos       PhotoChecker
	log          *slog.Logger
	now          func() time.Time
	cpKey        []byte
	maxMutations int
	aheadFrom    int
	maxPullBytes int
	historyDepth int
	answerTTL    time.Duration
	geofenceM    float64
	futureSkew   time.Duration
	location     *time.Location
	notes        deviceNotes
	decisions    pushDecisions

	auditRetention time.Duration
}

// New builds an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("sync.New: no store")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("sync.New: secret shorter than 32 bytes")
	}
	e := &Engine{
		store: cfg.Store, photos: cfg.Photos, log: cfg.Logger, now: cfg.Now,
		cpKey:        deriveKey(cfg.Secret, "fieldsync checkpoint"),
		maxMutations: orDefault(cfg.MaxMutations, 500),
		aheadFrom:    orDefault(cfg.DecideAheadFrom, 32),
		maxPullBytes: orDefault(cfg.MaxPullBytes, 1<<20),
		historyDepth: orDefault(cfg.HistoryDepth, 10),
		answerTTL:    orDefault(cfg.AnswerTTL, 30*24*time.Hour),
		geofenceM:    orDefault(cfg.GeofenceM, 200),
		futureSkew:   orDefault(cfg.FutureSkew, 24*time.Hour),

		auditRetention: orDefault(cfg.AuditRetention, 400*24*time.Hour),
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.location = cfg.Location; e.location == nil {
		e.location = time.UTC
	}
	return e, nil
}

func orDefault[T int | float64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// SweepAnswers removes answers older than the configured TTL.
func (e *Engine) SweepAnswers(ctx context.Context) (int, error) {
	n, err := e.store.SweepAnswers(ctx, e.now().Add(-e.answerTTL))
	if err != nil {
		return 0, fmt.Errorf("sync.SweepAnswers: %w", err)
	}
	return n, nil
}

// RunSweeper sweeps old answers and audit entries every interval until
// ctx ends. Running it on several instances at once is harmless.
func (e *Engine) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := e.SweepAnswers(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Error("sweeping answers", slog.Any("err", err))
		case n > 0:
			e.log.Info("swept answers", slog.Int("removed", n))
		}
		n, err = e.SweepAudit(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Error("sweeping audit entries", slog.Any("err", err))
		case n > 0:
			e.log.Info("swept audit entries", slog.Int("removed", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
