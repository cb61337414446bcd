// Command fieldsync runs the fieldsync sync server. With no settings it
// runs on embedded defaults in ./data: a SQLite record store and a local
// photo folder, listening on 127.0.0.1:8080.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	// Time zones for reports' tz, on machines without a zone database.
	_ "time/tzdata"

	"github.com/fieldsync/fieldsync/media"
	"github.com/fieldsync/fieldsync/media/filestore"
	"github.com/fieldsync/fieldsync/media/miniostore"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/mongostore"
	"github.com/fieldsync/fieldsync/sync/report"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

func main() {
	if n := procs(runtime.GOMAXPROCS(0), os.Getenv("GOMAXPROCS")); n != runtime.GOMAXPROCS(0) {
		runtime.GOMAXPROCS(n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	con := console{getenv: os.Getenv, stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr}
	if err := newRootCommand(con).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fieldsync:", err)
		os.Exit(1)
	}
}

// procs is how many goroutines the server runs at once (Go's Ps), given
// the runtime's choice and the GOMAXPROCS variable: at least two unless the
// variable says otherwise. The embedded store's writer blocks in fsync when
// it checkpoints the WAL, and a goroutine in a system call keeps its P until
// the runtime's monitor takes it back, up to 10 ms later: with one P (one
// core, or a server pinned to one) no other request runs meanwhile, which
// made the slowest pulls of the N = 50 cycle load. With two, the other
// requests go on while the writer waits for the disk, on one core too.
func procs(current int, setting string) int {
	if setting != "" {
		return current
	}
	return max(current, 2)
}

// config is every setting, from flags that default to FIELDSYNC_* variables
// (see addServeFlags).
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
	accessTTL, streamPoll, streamHeartbeat         time.Duration
	streamRecheck                                  time.Duration
	maxStreams, maxStreamsPerUser                  int
	corsOrigins, uploadDir                         string
	uploadTTL                                      time.Duration
	passwordCost, mongoMoveBatch                   int
	limits                                         server.Limits
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// isTerminal reports whether f is a file that is a terminal.
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	st, err := file.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// run serves with cfg until ctx ends.
func run(ctx context.Context, cfg config, stdout io.Writer) error {
	if err := checkAdmin(cfg); err != nil {
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
	loc, err := time.LoadLocation(cfg.tz)
	if err != nil {
		return fmt.Errorf("FIELDSYNC_TZ: %w", err)
	}
	engine, err := sync.New(sync.Config{Store: store, Secret: secret, Logger: log, Photos: photos,
		GeofenceM: cfg.geofenceM, Location: loc, MaxMutations: cfg.pushMaxMutations})
	if err != nil {
		return err
	}
	go engine.RunSweeper(ctx, time.Hour)
	go photos.RunSweeper(ctx, time.Hour, cfg.photoGrace, engine.PhotoReferenced, log)
	srv, err := server.New(server.Config{Store: store, Engine: engine, Reports: report.New(store, nil), Photos: photos,
		Secret: secret, Logger: log, MaxPushBytes: cfg.pushMaxBytes, AccessTTL: cfg.accessTTL, PasswordCost: cfg.passwordCost,
		StreamPoll: cfg.streamPoll, StreamHeartbeat: cfg.streamHeartbeat, StreamRecheck: cfg.streamRecheck,
		MaxStreams: cfg.maxStreams, MaxStreamsPerUser: cfg.maxStreamsPerUser, CORSOrigins: strings.Split(cfg.corsOrigins, ","),
		MapTiles: cfg.mapTiles, Zone: loc, UploadDir: uploadDir(cfg), UploadTTL: cfg.uploadTTL, Limits: cfg.limits})
	if err != nil {
		return err
	}
	ln, err := listen(cfg.addr)
	if err != nil {
		return err
	}
	// The first admin is written only once the address is ours, so that a
	// start that cannot listen changes nothing.
	if err := firstAdmin(ctx, store, cfg, log); err != nil {
		ln.Close()
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

// listen binds addr, saying in one line what to do when it is taken.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s is already in use, perhaps by another fieldsync: stop it, or listen elsewhere with --addr or FIELDSYNC_ADDR", addr)
	}
	return ln, err
}

// checkAdmin refuses a first admin that could never sign in.
func checkAdmin(cfg config) error {
	switch {
	case cfg.adminUser != "" && cfg.adminPassword == "":
		return errors.New("FIELDSYNC_ADMIN_USER is set without FIELDSYNC_ADMIN_PASSWORD: the first admin needs a password (8 to 72 bytes)")
	case cfg.adminUser == "" && cfg.adminPassword != "":
		return errors.New("FIELDSYNC_ADMIN_PASSWORD is set without FIELDSYNC_ADMIN_USER")
	case cfg.adminUser != "":
		if _, err := server.NewUser(cfg.adminUser, cfg.adminPassword, schema.RoleAdmin, nil, "", time.Now(), cfg.passwordCost); err != nil {
			return fmt.Errorf("first admin: %w", err)
		}
	}
	return nil
}

// firstAdmin creates the configured first admin when no user exists, and
// says how to get one when there is none.
func firstAdmin(ctx context.Context, store server.FirstUserStore, cfg config, log *slog.Logger) error {
	if cfg.adminUser != "" {
		created, err := server.EnsureAdmin(ctx, store, cfg.adminUser, cfg.adminPassword, time.Now(), cfg.passwordCost)
		if err != nil {
			return err
		}
		if created {
			log.Info("first admin created", slog.String("username", cfg.adminUser))
			return nil
		}
		log.Info("users exist, so FIELDSYNC_ADMIN_USER and FIELDSYNC_ADMIN_PASSWORD change nothing; to reset a password run: fieldsync user set-password " + cfg.adminUser)
		return nil
	}
	n, err := store.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n == 0 {
		log.Warn(noUserHint)
	}
	return nil
}

// noUserHint is what a first run without users logs.
const noUserHint = "no user yet: create an admin with `fieldsync user create admin --role admin` (it asks for a password), " +
	"or start with FIELDSYNC_ADMIN_USER and FIELDSYNC_ADMIN_PASSWORD set"

// uploadDir is where resumable uploads wait for their last byte: the
// setting, else a folder in the data dir.
func uploadDir(cfg config) string {
	if cfg.uploadDir != "" {
		return cfg.uploadDir
	}
	return filepath.Join(cfg.dataDir, "uploads")
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

// recordStore is what each record store adapter provides to the pieces
// main wires.
type recordStore interface {
	sync.Store
	server.Store
	report.Store
	Close() error
}

// openStore opens the record store: MongoDB when a URI is set, else SQLite
// in the data dir.
func openStore(ctx context.Context, cfg config) (recordStore, error) {
	if cfg.mongoURI == "" {
		return sqlitestore.Open(ctx, filepath.Join(cfg.dataDir, "fieldsync.db"))
	}
	s, err := mongostore.Open(ctx, cfg.mongoURI)
	if err != nil {
		return nil, err
	}
	s.MoveBatch = cfg.mongoMoveBatch
	return s, nil
}
