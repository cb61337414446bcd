// Command fieldsync runs the fieldsync sync server. With no settings it
// runs on embedded defaults in ./data: a SQLite record store and a local
// photo folder, listening on 127.0.0.1:8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	// Time zones for reports' tz, on machines without a zone database.
	_ "time/tzdata"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
	"github.com/fieldsync/fieldsync/media/miniostore"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/mongostore"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fieldsync:", err)
		os.Exit(1)
	}
}

// config is every setting, from flags that default to FIELDSYNC_* variables.
type config struct {
	addr, dataDir, mongoURI                        string
	s3Endpoint, s3AccessKey, s3SecretKey, s3Bucket string
	s3Secure                                       bool
	jwtSecret, adminUser, adminPassword, logLevel  string
	shutdownTimeout, photoGrace, photoRedirect     time.Duration
	maxPhotoBytes                                  int64
	pushMaxMutations, pushMaxBytes                 int
	geofenceM                                      float64
	tz, mapTiles                                   string
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var c config
	fs := flag.NewFlagSet("fieldsync", flag.ContinueOnError)
	fs.StringVar(&c.addr, "addr", env("FIELDSYNC_ADDR", "127.0.0.1:8080"), "listen address (FIELDSYNC_ADDR)")
	fs.StringVar(&c.dataDir, "data-dir", env("FIELDSYNC_DATA_DIR", "./data"), "embedded store, photo folder and generated keys (FIELDSYNC_DATA_DIR)")
	fs.StringVar(&c.mongoURI, "mongo-uri", env("FIELDSYNC_MONGO_URI", ""), "use MongoDB instead of the embedded store (FIELDSYNC_MONGO_URI)")
	fs.StringVar(&c.s3Endpoint, "s3-endpoint", env("FIELDSYNC_S3_ENDPOINT", ""), "MinIO/S3 endpoint for photos (FIELDSYNC_S3_ENDPOINT)")
	fs.StringVar(&c.s3AccessKey, "s3-access-key", env("FIELDSYNC_S3_ACCESS_KEY", ""), "S3 access key (FIELDSYNC_S3_ACCESS_KEY)")
	fs.StringVar(&c.s3SecretKey, "s3-secret-key", env("FIELDSYNC_S3_SECRET_KEY", ""), "S3 secret key (FIELDSYNC_S3_SECRET_KEY)")
	fs.StringVar(&c.s3Bucket, "s3-bucket", env("FIELDSYNC_S3_BUCKET", "fieldsync"), "S3 bucket, created if missing (FIELDSYNC_S3_BUCKET)")
	fs.BoolVar(&c.s3Secure, "s3-secure", env("FIELDSYNC_S3_SECURE", "") == "true", "use TLS to reach S3 (FIELDSYNC_S3_SECURE)")
	fs.StringVar(&c.jwtSecret, "jwt-secret", env("FIELDSYNC_JWT_SECRET", ""), "token signing secret; generated in the data dir when empty (FIELDSYNC_JWT_SECRET)")
	fs.StringVar(&c.adminUser, "admin-user", env("FIELDSYNC_ADMIN_USER", ""), "first admin, created when no user exists (FIELDSYNC_ADMIN_USER)")
	fs.StringVar(&c.adminPassword, "admin-password", env("FIELDSYNC_ADMIN_PASSWORD", ""), "first admin's password (FIELDSYNC_ADMIN_PASSWORD)")
	fs.StringVar(&c.logLevel, "log-level", env("FIELDSYNC_LOG_LEVEL", "info"), "debug, info, warn or error (FIELDSYNC_LOG_LEVEL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.Int64Var(&c.maxPhotoBytes, "max-photo-bytes", 25_000_000, "largest photo accepted, in bytes")
	fs.DurationVar(&c.photoGrace, "photo-grace", 7*24*time.Hour, "how long photo bytes no record refers to are kept")
	fs.DurationVar(&c.photoRedirect, "photo-redirect", 0, "answer photo GETs with a redirect to a presigned S3 URL living this long (0: stream through the server)")
	fs.IntVar(&c.pushMaxMutations, "push-max-mutations", 500, "most mutations one push may carry")
	fs.IntVar(&c.pushMaxBytes, "push-max-bytes", 5_000_000, "largest push body, in bytes")
	fs.Float64Var(&c.geofenceM, "geofence-m", 200, "default allowed check-in distance from an outlet, in metres")
	fs.StringVar(&c.mapTiles, "map-tiles", env("FIELDSYNC_MAP_TILES", ""), "console map tile URL with {z}/{x}/{y}; OpenStreetMap's when empty, none for no tiles (FIELDSYNC_MAP_TILES)")
	fs.StringVar(&c.tz, "tz", env("FIELDSYNC_TZ", "UTC"), "time zone in which a check-in falls on a route plan's date (FIELDSYNC_TZ)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return c, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	log, err := newLogger(stdout, cfg.logLevel)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	blobs, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	photos := media.NewPhotos(blobs, cfg.maxPhotoBytes).WithRedirects(cfg.photoRedirect)
	secret, err := server.LoadSecret(cfg.dataDir, cfg.jwtSecret)
	if err != nil {
		return err
	}
	if cfg.adminUser != "" {
		created, err := server.EnsureAdmin(ctx, store, cfg.adminUser, cfg.adminPassword, time.Now())
		if err != nil {
			return err
		}
		if created {
			log.Info("first admin created", slog.String("username", cfg.adminUser))
		}
	}
	loc, err := time.LoadLocation(cfg.tz)
	if err != nil {
		return fmt.Errorf("FIELDSYNC_TZ: %w", err)
	}
	engine, err := sync.New(sync.Config{Store: store, Secret: secret, Logger: log, Photos: server.PhotoFacts(photos),
		GeofenceM: cfg.geofenceM, Location: loc, MaxMutations: cfg.pushMaxMutations, MaxPushBytes: cfg.pushMaxBytes})
	if err != nil {
		return err
	}
	go engine.RunSweeper(ctx, time.Hour)
	go photos.RunSweeper(ctx, time.Hour, cfg.photoGrace, engine.PhotoReferenced, log)
	srv, err := server.New(server.Config{Store: store, Engine: engine, Photos: photos, Secret: secret, Logger: log,
		BodyLimit: max(8<<20, cfg.pushMaxBytes), MapTiles: cfg.mapTiles, Zone: loc})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	log.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("data_dir", cfg.dataDir))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	<-served
	log.Info("stopped")
	return nil
}

// openBlobs opens the photo store: MinIO/S3 when an endpoint is set, else
// the local folder in the data dir.
func openBlobs(ctx context.Context, cfg config) (media.BlobStore, error) {
	if cfg.s3Endpoint == "" {
		return filestore.Open(filepath.Join(cfg.dataDir, "photos"))
	}
	return miniostore.New(ctx, miniostore.Config{
		Endpoint: cfg.s3Endpoint, AccessKey: cfg.s3AccessKey, SecretKey: cfg.s3SecretKey,
		Bucket: cfg.s3Bucket, Secure: cfg.s3Secure,
	})
}

// openStore opens the record store: MongoDB when a URI is set (the
// database named in its path, else "fieldsync"), else SQLite in the data
// dir.
func openStore(ctx context.Context, cfg config) (sync.Store, error) {
	if cfg.mongoURI == "" {
		return sqlitestore.Open(ctx, filepath.Join(cfg.dataDir, "fieldsync.db"))
	}
	u, err := url.Parse(cfg.mongoURI)
	if err != nil {
		return nil, errors.New("FIELDSYNC_MONGO_URI is not a valid URI")
	}
	database := strings.Trim(u.Path, "/")
	if database == "" {
		database = "fieldsync"
	}
	return mongostore.Open(ctx, cfg.mongoURI, database)
}
