package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Pinger is anything readiness depends on: the record store, the photo store.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Config is what a Server is built from. Zero fields take the documented
// defaults.
type Config struct {
	// Store keeps users, logins and records. Required.
	Store sync.Store
	// Engine runs push and pull. Required.
	Engine *sync.Engine
	// Photos keeps photo bytes. Required.
	Photos *media.Photos
	// Secret signs access tokens (HS256) and derives the keys of refresh
	// tokens. At least 32 bytes. Required.
	Secret []byte
	// Logger receives structured logs; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
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
	// BodyLimit is the largest request body read, in bytes; default 8 MiB.
	BodyLimit int
}

// Server is the fieldsync HTTP server.
type Server struct {
	cfg     Config
	store   sync.Store
	engine  *sync.Engine
	photos  *media.Photos
	log     *slog.Logger
	now     func() time.Time
	tokens  *tokenIssuer
	metrics *metrics
	app     *fiber.App
	zip     *compressor
	hashing *hashQueue // one slot per core for password checks
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server.New: no store")
	}
	if cfg.Engine == nil {
		return nil, errors.New("server.New: no sync engine")
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
	if cfg.LoginFailureLimit <= 0 {
		cfg.LoginFailureLimit = 5
	}
	if cfg.LoginFailureWindow <= 0 {
		cfg.LoginFailureWindow = 15 * time.Minute
	}
	if cfg.LoginBackoff <= 0 {
		cfg.LoginBackoff = time.Second
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 8 << 20
	}
	zip, err := newCompressor()
	if err != nil {
		return nil, fmt.Errorf("server.New: %w", err)
	}
	s := &Server{
		zip:     zip,
		cfg:     cfg,
		store:   cfg.Store,
		engine:  cfg.Engine,
		photos:  cfg.Photos,
		log:     cfg.Logger,
		now:     cfg.Now,
		tokens:  newTokenIssuer(cfg.Secret, cfg.AccessTTL, cfg.Now),
		metrics: newMetrics(),
		hashing: newHashQueue(runtime.GOMAXPROCS(0)),
	}
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
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	app := s.app
	app.Use(s.zip.handle, s.observe, recoverPanics, checkFraming, readBody(s.cfg.BodyLimit, s.photos.MaxSize()+1<<20))
	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", s.metrics.handler())

	v1 := app.Group("/v1")
	v1.Post("/auth/login", s.login)
	v1.Post("/auth/refresh", s.refresh)
	v1.Post("/auth/logout", s.authenticate, s.logout)

	v1.Post("/sync/push", s.authenticate, s.push)
	v1.Post("/sync/pull", s.authenticate, s.pull)

	v1.Put("/media/:sha256", s.authenticate, requireRole(schema.RoleRep, schema.RoleAdmin), s.putPhoto)
	v1.Head("/media/:sha256", s.authenticate, s.headPhoto)
	v1.Get("/media/:sha256", s.authenticate, s.getPhoto)
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

// Serve answers requests on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.app.Listener(ln); err != nil {
		return fmt.Errorf("server.Serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections and waits for in-flight requests
// to finish, at most until ctx is done.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.app.ShutdownWithContext(ctx)
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
