package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/sync/mongostore"
)

// console is what every subcommand reads and writes besides its flags: the
// environment and the standard streams.
type console struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// envAnnotation names, on a flag, the variable that sets it when the flag
// is not given.
const envAnnotation = "fieldsync_env"

// newRootCommand builds the fieldsync command line. With no subcommand it
// serves; every other subcommand is added here, one constructor each.
func newRootCommand(con console) *cobra.Command {
	var cfg config
	root := &cobra.Command{
		Use:   "fieldsync",
		Short: "fieldsync is the offline-first sync server for mobile field sales",
		Long: `fieldsync is the offline-first sync server for mobile field sales.
With no command it serves (as "fieldsync serve"), on embedded defaults in
./data unless told otherwise. Every flag that names a FIELDSYNC_* variable
takes its value from it when the flag is not given.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serveCommand(cmd, con, &cfg) },
	}
	addServeFlags(root.Flags(), &cfg)
	root.AddCommand(
		newServeCommand(con),
		newUserCommand(con),
		newHealthCommand(con),
		newStoreSizeCommand(con),
		newBackupCommand(con),
		newRestoreCommand(con),
		newExportCommand(con),
	)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		if strings.Contains(err.Error(), "unknown shorthand flag") {
			return fmt.Errorf("%w (long flags take two dashes, as in --addr)", err)
		}
		return err
	})
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetOut(con.stdout)
	root.SetErr(con.stderr)
	root.SetIn(con.stdin)
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}

func newServeCommand(con console) *cobra.Command {
	var cfg config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the sync server (the default command)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return serveCommand(cmd, con, &cfg) },
	}
	addServeFlags(cmd.Flags(), &cfg)
	return cmd
}

// serveCommand fills cfg from the environment, then serves until the
// command's context ends.
func serveCommand(cmd *cobra.Command, con console, cfg *config) error {
	if err := applyEnv(cmd.Flags(), con.getenv); err != nil {
		return err
	}
	return run(cmd.Context(), *cfg, con.stdout)
}

// addStoreFlags declares the flags that choose the record store.
func addStoreFlags(fs *pflag.FlagSet, c *config) {
	envString(fs, &c.dataDir, "data-dir", "./data", "FIELDSYNC_DATA_DIR", "embedded store, photo folder and generated keys")
	envString(fs, &c.mongoURI, "mongo-uri", "", "FIELDSYNC_MONGO_URI", "use MongoDB instead of the embedded store")
	fs.IntVar(&c.mongoMoveBatch, "mongo-move-batch", mongostore.DefaultMoveBatch, "on MongoDB, how many re-stamps of a territory move go out together (bounds the records a move holds in memory)")
}

// addPasswordFlags declares how passwords are hashed.
func addPasswordFlags(fs *pflag.FlagSet, c *config) {
	fs.IntVar(&c.passwordCost, "password-cost", server.DefaultPasswordCost, "bcrypt work factor (4 to 31) of passwords set from now on; each step doubles a sign-in's CPU (FIELDSYNC_PASSWORD_COST)")
	annotateEnv(fs, "password-cost", "FIELDSYNC_PASSWORD_COST")
}

// addServeFlags declares every setting of the server.
func addServeFlags(fs *pflag.FlagSet, c *config) {
	envString(fs, &c.addr, "addr", "127.0.0.1:8080", "FIELDSYNC_ADDR", "listen address")
	addStoreFlags(fs, c)
	addPasswordFlags(fs, c)
	envString(fs, &c.s3Endpoint, "s3-endpoint", "", "FIELDSYNC_S3_ENDPOINT", "MinIO/S3 endpoint for photos (empty: the local photo folder)")
	envString(fs, &c.s3AccessKey, "s3-access-key", "", "FIELDSYNC_S3_ACCESS_KEY", "S3 access key")
	envString(fs, &c.s3SecretKey, "s3-secret-key", "", "FIELDSYNC_S3_SECRET_KEY", "S3 secret key")
	envString(fs, &c.s3Bucket, "s3-bucket", "fieldsync", "FIELDSYNC_S3_BUCKET", "S3 bucket, created if missing")
	fs.BoolVar(&c.s3Secure, "s3-secure", false, "use TLS to reach S3 (FIELDSYNC_S3_SECURE: true/false, 1/0)")
	annotateEnv(fs, "s3-secure", "FIELDSYNC_S3_SECURE")
	envString(fs, &c.jwtSecret, "jwt-secret", "", "FIELDSYNC_JWT_SECRET", "token signing secret, 32+ characters (empty: generated into the data dir)")
	envString(fs, &c.adminUser, "admin-user", "", "FIELDSYNC_ADMIN_USER", "first admin, created when no user exists (needs --admin-password)")
	envString(fs, &c.adminPassword, "admin-password", "", "FIELDSYNC_ADMIN_PASSWORD", "first admin's password, 8 to 72 bytes")
	envString(fs, &c.logLevel, "log-level", "info", "FIELDSYNC_LOG_LEVEL", "debug, info, warn or error")
	envString(fs, &c.tz, "tz", "UTC", "FIELDSYNC_TZ", "time zone in which a check-in falls on a route plan's date")
	envString(fs, &c.mapTiles, "map-tiles", "", "FIELDSYNC_MAP_TILES", "console map tile URL with {z}/{x}/{y}; OpenStreetMap's when empty, none for no tiles")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	fs.Int64Var(&c.maxPhotoBytes, "max-photo-bytes", 25_000_000, "largest photo accepted, in bytes")
	fs.DurationVar(&c.photoGrace, "photo-grace", 7*24*time.Hour, "how long photo bytes no record refers to are kept")
	fs.DurationVar(&c.photoRedirect, "photo-redirect", 0, "answer photo GETs with a redirect to a presigned S3 URL living this long (0: stream through the server)")
	envString(fs, &c.uploadDir, "upload-dir", "", "FIELDSYNC_UPLOAD_DIR", "folder of resumable uploads waiting for their last byte, shared by the instances behind one proxy (empty: uploads in the data dir)")
	fs.DurationVar(&c.uploadTTL, "upload-ttl", 24*time.Hour, "how long a resumable upload that receives no byte is kept (FIELDSYNC_UPLOAD_TTL)")
	annotateEnv(fs, "upload-ttl", "FIELDSYNC_UPLOAD_TTL")
	fs.IntVar(&c.pushMaxMutations, "push-max-mutations", 500, "most mutations one push may carry")
	fs.IntVar(&c.pushMaxBytes, "push-max-bytes", 5_000_000, "largest push body, in bytes")
	fs.Float64Var(&c.geofenceM, "geofence-m", 200, "default allowed check-in distance from an outlet, in metres")
	fs.DurationVar(&c.accessTTL, "access-ttl", 15*time.Minute, "how long an access token lives")
	envString(fs, &c.corsOrigins, "cors-origins", "", "FIELDSYNC_CORS_ORIGINS", "comma-separated origins (scheme://host[:port]) whose browser apps may call the API")
	fs.DurationVar(&c.streamPoll, "stream-poll", 500*time.Millisecond, "how often the store is polled for writes to tell live streams of")
	fs.DurationVar(&c.streamHeartbeat, "stream-heartbeat", 15*time.Second, "how often a live stream sends a ping")
	fs.DurationVar(&c.streamRecheck, "stream-recheck", time.Minute, "how often a live stream rechecks that its caller is still signed in and what it may read")
	fs.IntVar(&c.maxStreams, "max-streams", 10_000, "most live streams open at once on this instance")
	fs.IntVar(&c.maxStreamsPerUser, "max-streams-per-user", 8, "most live streams of one user on this instance; a new one ends the oldest")
	fs.IntVar(&c.limits.MaxInFlight, "max-in-flight", 256, "most requests worked on at once by this instance; more get 503 with Retry-After (-1: no cap) (FIELDSYNC_MAX_IN_FLIGHT)")
	annotateEnv(fs, "max-in-flight", "FIELDSYNC_MAX_IN_FLIGHT")
	fs.Float64Var(&c.limits.DeviceRate, "sync-rate-device", 5, "sync requests (push, pull, stream) per second one device may make in the long run; more get 429 (-1: no limit) (FIELDSYNC_SYNC_RATE_DEVICE)")
	annotateEnv(fs, "sync-rate-device", "FIELDSYNC_SYNC_RATE_DEVICE")
	fs.IntVar(&c.limits.DeviceBurst, "sync-burst-device", 60, "sync requests one device may make at once after a quiet spell (FIELDSYNC_SYNC_BURST_DEVICE)")
	annotateEnv(fs, "sync-burst-device", "FIELDSYNC_SYNC_BURST_DEVICE")
	fs.Float64Var(&c.limits.UserRate, "sync-rate-user", 10, "sync requests per second all of one user's devices may make in the long run; more get 429 (-1: no limit) (FIELDSYNC_SYNC_RATE_USER)")
	annotateEnv(fs, "sync-rate-user", "FIELDSYNC_SYNC_RATE_USER")
	fs.IntVar(&c.limits.UserBurst, "sync-burst-user", 120, "sync requests all of one user's devices may make at once after a quiet spell (FIELDSYNC_SYNC_BURST_USER)")
	annotateEnv(fs, "sync-burst-user", "FIELDSYNC_SYNC_BURST_USER")
	fs.IntVar(&c.limits.SignInSlots, "signin-slots", 0, "sign-ins (password checks) worked on at once; 0: one per core (FIELDSYNC_SIGNIN_SLOTS)")
	annotateEnv(fs, "signin-slots", "FIELDSYNC_SIGNIN_SLOTS")
	fs.IntVar(&c.limits.SignInQueue, "signin-queue", 0, "sign-ins waiting for a slot; more get 503 at once with Retry-After; 0: 16 per slot (FIELDSYNC_SIGNIN_QUEUE)")
	annotateEnv(fs, "signin-queue", "FIELDSYNC_SIGNIN_QUEUE")
}

// envString declares a string flag whose value comes from the variable env
// when the flag is not given. Its help shows the built-in default, never
// the variable's value, so that secrets stay out of it.
func envString(fs *pflag.FlagSet, p *string, name, def, env, usage string) {
	fs.StringVar(p, name, def, usage+" ("+env+")")
	annotateEnv(fs, name, env)
}

func annotateEnv(fs *pflag.FlagSet, name, env string) {
	if err := fs.SetAnnotation(name, envAnnotation, []string{env}); err != nil {
		panic(err) // the flag was declared just before: a programmer error
	}
}

// applyEnv sets every flag that was not given on the command line from its
// variable, when that is set.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		names := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(names) == 0 {
			return
		}
		if v := getenv(names[0]); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", names[0], v, serr)
			}
		}
	})
	return err
}
