package fieldsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	gosync "sync"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Defaults of the Config fields left zero.
const (
	DefaultBatchSize      = 500
	DefaultPullLimit      = 500
	DefaultMaxAttempts    = 5
	DefaultBaseDelay      = 500 * time.Millisecond
	DefaultMaxDelay       = 30 * time.Second
	DefaultMaxRetryAfter  = 5 * time.Minute
	DefaultRequestTimeout = 2 * time.Minute
	DefaultResumableAbove = 1 << 20
)

// Config is what a Client is opened with. Zero optional fields take the
// documented defaults.
type Config struct {
	// BaseURL is the server's address, such as https://sync.example.com; required.
	BaseURL string
	// Username and Password sign the device in; required. The password is
	// kept in memory only, to sign in again when a refresh token is refused.
	Username string
	Password string
	// DeviceID names this device to the server (1 to 128 letters, digits
	// or . _ : -); required.
	DeviceID string
	// StorePath is the SQLite file of the local store; required. It is
	// created when missing.
	StorePath string
	// PhotoDir is where photo bytes wait for their upload; default the
	// folder beside the store named after it ("app.db" → "app-photos").
	PhotoDir string
	// HTTPClient sends the requests; default a client whose requests time
	// out after DefaultRequestTimeout.
	HTTPClient *http.Client
	// Resolver settles conflicts; default ServerWins.
	Resolver Resolver
	// Logger receives structured logs; default none. Tokens and passwords
	// are never logged.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// BatchSize is the most mutations pushed in one request; default
	// DefaultBatchSize.
	BatchSize int
	// PullLimit is the page size asked of pull; default DefaultPullLimit.
	PullLimit int
	// ResumableAbove is the size in bytes above which a photo is sent
	// through a resumable upload (tus), which goes on from the last byte
	// the server holds after a cut, rather than one PUT; the upload's
	// address is kept in the local store, so it goes on after the app
	// restarts too. Default DefaultResumableAbove, below 0 never.
	ResumableAbove int64
	// Retry says how requests that failed for a passing reason are tried
	// again.
	Retry RetryPolicy
}

// RetryPolicy bounds the retries of a request that failed with a network
// error, a timeout, 408, 429 or a 5xx. The wait before retry n is about
// BaseDelay·2ⁿ⁻¹ (with jitter, at most MaxDelay), or the pause the server
// asks for with Retry-After when that is longer (with jitter on top,
// never less than asked).
type RetryPolicy struct {
	// MaxAttempts counts the first try too; default DefaultMaxAttempts.
	MaxAttempts int
	// BaseDelay is the first wait; default DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the client's own backoff, not a pause the server
	// asks for; default DefaultMaxDelay.
	MaxDelay time.Duration
	// MaxRetryAfter is the longest pause asked by the server that the
	// client waits out; a request asked to wait longer fails with the
	// server's error at once. Default DefaultMaxRetryAfter, the longest
	// fieldsync asks for (a sign-in in a crowd of them): an app that fails
	// at once instead comes back at once, and a crowd of such apps keeps
	// the server busy refusing them.
	MaxRetryAfter time.Duration
}

// ErrNotFound is returned by Get and Delete for a record the local store
// does not have (or has as deleted).
var ErrNotFound = errors.New("fieldsync: record not found")

// ErrOtherOwner is returned by Open when the local store was filled for
// another user or another server.
var ErrOtherOwner = errors.New("fieldsync: the local store belongs to another user or server")

// Client is one device's view of fieldsync: a local store of the records
// it may read, an outbox of its own changes, and the means to sync them.
// Its methods are safe for concurrent use; one Sync runs at a time.
type Client struct {
	cfg      Config
	db       *store
	api      *api
	log      *slog.Logger
	now      func() time.Time
	resolve  Resolver
	photoDir string

	syncMu  gosync.Mutex // held by Sync and Close
	photoMu gosync.Mutex // held while photo files come and go
}

// Open opens (or creates) the local store at cfg.StorePath and returns a
// client for it. It does not touch the network: a device may open its store
// and work offline.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	const op = "fieldsync.Open"
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	cfg.defaults()
	db, err := openStore(ctx, cfg.StorePath, cfg.Now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := db.claim(ctx, strings.TrimRight(cfg.BaseURL, "/")+" "+cfg.Username); err != nil {
		db.close()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	c := &Client{
		cfg:      cfg,
		db:       db,
		log:      cfg.Logger,
		now:      cfg.Now,
		resolve:  cfg.Resolver,
		photoDir: cfg.PhotoDir,
		api:      newAPI(cfg),
	}
	return c, nil
}

// Close closes the local store, after a Sync in progress ends. Pending
// changes stay in the store for the next Open.
func (c *Client) Close() error {
	c.syncMu.Lock()
	defer c.syncMu.Unlock()
	return c.db.close()
}

func (cfg *Config) check() error {
	switch {
	case cfg.BaseURL == "":
		return errors.New("no BaseURL")
	case cfg.Username == "" || cfg.Password == "":
		return errors.New("no Username or Password")
	case !schema.CheckID(cfg.DeviceID):
		return fmt.Errorf("DeviceID must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
	case cfg.StorePath == "":
		return errors.New("no StorePath")
	}
	return nil
}

func (cfg *Config) defaults() {
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.PhotoDir == "" {
		cfg.PhotoDir = strings.TrimSuffix(cfg.StorePath, filepath.Ext(cfg.StorePath)) + "-photos"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultRequestTimeout}
	}
	if cfg.Resolver == nil {
		cfg.Resolver = ServerWins
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.PullLimit <= 0 {
		cfg.PullLimit = DefaultPullLimit
	}
	if cfg.ResumableAbove == 0 {
		cfg.ResumableAbove = DefaultResumableAbove
	}
	if cfg.Retry.MaxAttempts <= 0 {
		cfg.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Retry.BaseDelay <= 0 {
		cfg.Retry.BaseDelay = DefaultBaseDelay
	}
	if cfg.Retry.MaxDelay <= 0 {
		cfg.Retry.MaxDelay = DefaultMaxDelay
	}
	if cfg.Retry.MaxRetryAfter <= 0 {
		cfg.Retry.MaxRetryAfter = DefaultMaxRetryAfter
	}
}
