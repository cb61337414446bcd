package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	gosync "sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

// Pinger is anything readiness depends on: the record store, the photo store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is what a Server is built from. Zero fields take the documented
// defaults.
type Config struct {
	// Store keeps users and logins, and answers readiness checks.
	// Required.
	Store Store
	// Engine runs push and pull. Required.
	Engine *sync.Engine
	// Reports reads the managers' reports. Required.
	Reports *report.Reports
	// Photos keeps photo bytes. Required.
	Photos *media.Photos
	// Secret signs access tokens (HS256) and derives the keys of refresh
	// tokens. At least 32 bytes. Required.
	Secret []byte
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// PasswordCost is the bcrypt work factor of the passwords the server
	// sets; default DefaultPasswordCost.
	PasswordCost int
	// AccessTTL is how long an access token lives; default 15 minutes.
	AccessTTL time.Duration
	// LoginFailureLimit failed sign-ins of one username from one client
	// address within LoginFailureWindow are answered at once; after them
	// that pair slows down, its next attempts allowed LoginBackoff, then
	// 3, 7, 15… × LoginBackoff after the window opened, never later than
	// its end. Other addresses are not slowed. Defaults 5, 15 minutes and
	// 1 second.
	LoginFailureLimit  int
	LoginFailureWindow time.Duration
	LoginBackoff       time.Duration
	// MaxPushBytes is the largest push body, in bytes; a larger push is
	// refused whole with 413. Default 5 MB.
	MaxPushBytes int
	// BodyLimit is the largest request body read, in bytes; default 8 MiB
	// or MaxPushBytes, whichever is larger.
	BodyLimit int
	// ImportLimit is the largest CSV file an import streams, in bytes;
	// default 1 GiB.
	ImportLimit int64
	// MapTiles is the console's map tile URL template; OpenStreetMap's
	// when empty, no tiles when "none".
	MapTiles string
	// Zone is the time zone of the console's dates; default UTC.
	Zone *time.Location
	// StreamPoll is how often the server's watcher of the change feed
	// polls the store for live streams; default 500 ms.
	StreamPoll time.Duration
	// StreamHeartbeat is how often a live stream sends a ping comment;
	// default 15 seconds.
	StreamHeartbeat time.Duration
	// StreamRecheck is how often a live stream rechecks its caller's
	// login and user (a store read each), ending the stream of a user
	// signed out or deactivated and following a change of scope; default
	// one minute.
	StreamRecheck time.Duration
	// MaxStreams is how many live streams the server holds open at once;
	// more are refused with 503. Default 10,000.
	MaxStreams int
	// MaxStreamsPerUser is how many live streams one user holds open at
	// once; a new one past it ends that user's oldest. Default 8.
	MaxStreamsPerUser int
	// UploadDir is the folder that keeps resumable uploads (tus) until
	// their last byte arrives; several instances behind one proxy share
	// it. Empty: resumable uploads answer 404 and PUT is the only way in.
	UploadDir string
	// UploadTTL is how long a resumable upload that receives no byte is
	// kept before it is swept; default 24 hours.
	UploadTTL time.Duration
	// UploadSweep is how often uploads past their TTL are swept; default
	// half the TTL, at least a second and at most ten minutes.
	UploadSweep time.Duration
	// Limits guard the instance against overload: a cap on requests in
	// flight and rate limits on sync per device and per user.
	Limits Limits
	// CORSOrigins are the origins (scheme://host[:port]) whose browser
	// apps may call the API; none when empty.
	CORSOrigins []string
}

// Server is the fieldsync HTTP server.
type Server struct {
	cfg     Config
	store   Store
	engine  *sync.Engine
	reports *report.Reports
	photos  *media.Photos
	log     *slog.Logger
	now     func() time.Time
	tokens  *tokenIssuer
	metrics *metrics
	app     *fiber.App
	zip     *compressor
	signIns *signInGate
	writes  *writeProbe // nil when the record store cannot tell whether it writes
	// dummyHash is checked when a username is unknown.
	dummyHash []byte
	watcher   *sync.Watcher
	streams   *streams
	guard     *guard
	// serving is what Serve started and Shutdown stops.
	serving struct {
		gosync.Mutex
		stopped   bool
		ln        *trackingListener
		stopWatch context.CancelFunc
	}
	openAPI []byte   // the OpenAPI document as JSON
	uploads *uploads // nil when resumable uploads are off
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	var err error
	if cfg.Store == nil {
		return nil, errors.New("server.New: no store")
	}
	if cfg.Engine == nil {
		return nil, errors.New("server.New: no sync engine")
	}
	if cfg.Reports == nil {
		return nil, errors.New("server.New: no reports")
	}
	if cfg.Photos == nil {
		return nil, errors.New("server.New: no photo store")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("server.New: secret shorter than 32 bytes")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.AccessTTL <= 0 {
		cfg.AccessTTL = 15 * time.Minute
	}
	if cfg.PasswordCost, err = checkPasswordCost(cfg.PasswordCost); err != nil {
		return nil, fmt.Errorf("server.New: %w", err)
	}
	// Compared against when a username is unknown, so that an unknown
	// user and a wrong password take the same time.
	dummyHash, err := bcrypt.GenerateFromPassword([]byte("fieldsync-no-such-user"), cfg.PasswordCost)
	if err != nil {
		return nil, fmt.Errorf("server.New: %w", err)
	}
	if cfg.LoginFailureLimit <= 0 {
		cfg.LoginFailureLimit = 5
	}
	if cfg.LoginFailureWindow <= 0 {
		cfg.LoginFailureWindow = 15 * time.Minute
	}
	if cfg.MaxPushBytes <= 0 {
		cfg.MaxPushBytes = 5_000_000
	}
	if cfg.LoginBackoff <= 0 {
		cfg.LoginBackoff = time.Second
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = max(8<<20, cfg.MaxPushBytes)
	}
	openAPI, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	if cfg.ImportLimit <= 0 {
		cfg.ImportLimit = 1 << 30
	}
	if cfg.StreamHeartbeat <= 0 {
		cfg.StreamHeartbeat = defaultHeartbeat
	}
	if cfg.StreamRecheck <= 0 {
		cfg.StreamRecheck = defaultRecheck
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = defaultMaxStreams
	}
	if cfg.MaxStreamsPerUser <= 0 {
		cfg.MaxStreamsPerUser = defaultMaxStreamsPerUser
	}
	origins, err := checkOrigins(cfg.CORSOrigins)
	if err != nil {
		return nil, err
	}
	zip, err := newCompressor()
	if err != nil {
		return nil, fmt.Errorf("server.New: %w", err)
	}
	s := &Server{
		zip:       zip,
		dummyHash: dummyHash,
		openAPI:   openAPI,
		cfg:       cfg,
		store:     cfg.Store,
		engine:    cfg.Engine,
		reports:   cfg.Reports,
		photos:    cfg.Photos,
		log:       cfg.Logger,
		now:       cfg.Now,
		tokens:    newTokenIssuer(cfg.Secret, cfg.AccessTTL, cfg.Now),
		metrics:   newMetrics(),
		watcher:   sync.NewWatcher(sync.WatcherConfig{Store: cfg.Store, Interval: cfg.StreamPoll, Logger: cfg.Logger}),
		streams:   &streams{max: cfg.MaxStreams, perUser: cfg.MaxStreamsPerUser, byUser: map[string][]*liveStream{}},
	}
	if wc, ok := cfg.Store.(WriteChecker); ok {
		s.writes = &writeProbe{store: wc, now: cfg.Now}
	}
	cfg.Limits = cfg.Limits.withDefaults()
	s.guard = newGuard(cfg.Limits, cfg.Now, s.metrics.reg)
	s.signIns = newSignInGate(cfg.Limits.SignInSlots, cfg.Limits.SignInQueue, cfg.Now, s.metrics.reg)
	s.metrics.watchCommitGroups(cfg.Store)
	s.metrics.watchPushDecisions(cfg.Engine)
	s.app = fiber.New(fiber.Config{
		AppName:               "fieldsync",
		DisableStartupMessage: true,
		BodyLimit:             cfg.BodyLimit,
		StreamRequestBody:     true,
		// No endpoint takes a form: a multipart body is JSON's to refuse
		// (415), not the HTTP layer's to parse.
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  2 * time.Minute,
		WriteTimeout:                 2 * time.Minute,
		IdleTimeout:                  2 * time.Minute,
		ErrorHandler:                 s.handleError,
		JSONEncoder:                  json.Marshal,
		JSONDecoder:                  json.Unmarshal,
	})
	if cfg.UploadDir != "" {
		if cfg.UploadTTL <= 0 {
			cfg.UploadTTL = 24 * time.Hour
		}
		if cfg.UploadSweep <= 0 {
			cfg.UploadSweep = min(max(cfg.UploadTTL/2, time.Second), 10*time.Minute)
		}
		if s.uploads, err = newUploads(s, cfg.UploadDir, cfg.UploadTTL, cfg.UploadSweep); err != nil {
			return nil, err
		}
	}
	c, err := s.newConsole(cfg.MapTiles, cfg.Zone)
	if err != nil {
		return nil, err
	}
	s.routes(origins)
	c.Mount(s.app)
	return s, nil
}

func (s *Server) routes(origins []string) {
	app := s.app
	app.Use(s.zip.handle, s.observe, recoverPanics, s.admit)
	if len(origins) > 0 {
		// Browser apps send their bearer token themselves: no cookies, so
		// no credentials mode.
		app.Use(cors.New(cors.Config{
			AllowOrigins:  strings.Join(origins, ","),
			AllowMethods:  "GET,POST,PUT,PATCH,HEAD,DELETE",
			AllowHeaders:  "Authorization,Content-Type,Content-Encoding,Tus-Resumable,Upload-Length,Upload-Offset,Upload-Metadata",
			ExposeHeaders: "Retry-After,WWW-Authenticate,Location,Tus-Resumable,Upload-Offset,Upload-Length",
			MaxAge:        600,
		}))
	}
	app.Use(checkFraming, readBody(s.cfg.BodyLimit, s.photos.MaxSize()+1<<20))
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", s.metrics.handler())

	v1 := app.Group("/v1")
	v1.Get("/openapi.json", s.openAPIDocument)
	v1.Post("/auth/login", s.login)
	v1.Post("/auth/refresh", s.refresh)
	v1.Post("/auth/logout", s.authenticate, s.logout)

	v1.Post("/sync/push", s.authenticate, s.limitSync, s.push)
	v1.Post("/sync/pull", s.authenticate, s.limitSync, s.pull)
	v1.Get("/sync/stream", s.authenticate, s.limitSync, s.stream)

	v1.Put("/media/:sha256", s.authenticate, requireRole(schema.RoleRep, schema.RoleAdmin), s.putPhoto)
	v1.Head("/media/:sha256", s.authenticate, s.headPhoto)
	v1.Get("/media/:sha256", s.authenticate, s.getPhoto)
	v1.Post("/uploads", s.authenticate, requireRole(schema.RoleRep, schema.RoleAdmin), s.upload)
	v1.Head("/uploads/:id", s.authenticate, s.upload)
	v1.Patch("/uploads/:id", s.authenticate, s.upload)
	v1.Delete("/uploads/:id", s.authenticate, s.upload)
	s.planRoutes(v1)
	reports := v1.Group("/reports", s.authenticate, requireRole(schema.RoleManager, schema.RoleAdmin))
	reports.Get("/coverage", s.coverage)
	reports.Get("/unvisited", s.unvisited)
	reports.Get("/devices", s.devices)
	reports.Get("/photos/missing", s.missingPhotos)

	admin := v1.Group("/admin", s.authenticate, requireRole(schema.RoleAdmin))
	admin.Post("/users", s.createUser)
	admin.Get("/users", s.listUsers)
	admin.Get("/users/:id", s.showUser)
	admin.Patch("/users/:id", s.updateUser)
}

// Serve answers requests on ln until Shutdown, and watches the change
// feed for live streams meanwhile. After Shutdown it returns at once.
func (s *Server) Serve(ln net.Listener) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sv := &s.serving
	sv.Lock()
	if sv.stopped {
		sv.Unlock()
		return ln.Close()
	}
	tl := trackConns(ln)
	sv.ln, sv.stopWatch = tl, cancel
	sv.Unlock()
	go s.watcher.Run(ctx)
	if s.uploads != nil {
		go s.uploads.runSweeper(ctx)
	}
	if err := s.app.Listener(tl); err != nil {
		sv.Lock()
		stopped := sv.stopped
		sv.Unlock()
		if stopped { // ln closed by Shutdown before Fiber knew it
			return nil
		}
		return fmt.Errorf("server.Serve: %w", err)
	}
	return nil
}

// Shutdown ends live streams, stops accepting connections and waits for
// in-flight requests to finish, at most until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	s.streams.shutdown()
	sv := &s.serving
	sv.Lock()
	sv.stopped = true
	if sv.stopWatch != nil {
		sv.stopWatch()
	}
	ln := sv.ln
	sv.Unlock()
	// fasthttp waits for a connection that has not sent its first request
	// as if that request were being read: closing such connections while
	// it drains keeps a client's spare connection from holding it up.
	done := make(chan struct{})
	defer close(done)
	if ln != nil {
		go func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					ln.closeSilent()
				}
			}
		}()
	}
	err := s.app.ShutdownWithContext(ctx)
	// Serve may have handed ln to Fiber after Fiber looked for it.
	sv.Lock()
	if sv.ln != nil {
		sv.ln.Close()
	}
	sv.Unlock()
	return err
}

// observe is the outermost middleware: it turns errors into responses so
// that the status is known, then counts, times and logs the request.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	if err := c.Next(); err != nil {
		if werr := s.handleError(c, err); werr != nil {
			return werr
		}
	}
	elapsed := time.Since(start)
	route, status := routeOf(c), c.Response().StatusCode()
	s.metrics.observe(c.Method(), route, status, elapsed)
	s.log.Debug("request", slog.String("method", c.Method()), slog.String("route", route),
		slog.Int("status", status), slog.Duration("duration", elapsed))
	return nil
}

// decodeJSON reads the request body as JSON into v.
func decodeJSON(c *fiber.Ctx, v any) error {
	if !isJSON(c.Get(fiber.HeaderContentType)) {
		return schema.Errorf(schema.CodeUnsupportedMedia, "Content-Type must be application/json")
	}
	body := c.Body()
	if len(body) == 0 {
		return badRequest("request body must be a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return jsonProblem("request body", err)
	}
	return nil
}

// isJSON reports whether a request's Content-Type says JSON; a request
// that names none is taken as JSON.
func isJSON(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	mediaType = strings.TrimSpace(mediaType)
	return mediaType == "" || strings.EqualFold(mediaType, fiber.MIMEApplicationJSON)
}

// jsonProblem turns a JSON decoding error into a bad_request that names
// the field at fault, if any, and echoes neither the input nor Go's names.
func jsonProblem(what string, err error) *schema.Error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syn):
		return badRequest("%s is not valid JSON: syntax error at byte %d", what, syn.Offset)
	case errors.As(err, &typ) && typ.Field != "":
		return schema.FieldErrorf(schema.CodeBadRequest, typ.Field, "%s must be %s", typ.Field, schema.JSONKind(typ.Type))
	case errors.As(err, &typ):
		return badRequest("%s must be %s", what, schema.JSONKind(typ.Type))
	}
	return badRequest("%s is not valid JSON", what)
}

// checkOrigins validates CORS origins: each scheme://host[:port], http or
// https, with nothing else. It returns them lower-cased.
func checkOrigins(origins []string) ([]string, error) {
	var out []string
	for _, o := range origins {
		o = strings.ToLower(strings.TrimSpace(o))
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" ||
			u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") {
			return nil, fmt.Errorf("server.New: CORS origin %q is not scheme://host[:port]", o)
		}
		out = append(out, o)
	}
	return out, nil
}
