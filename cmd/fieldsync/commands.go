package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// The data commands take their flags as the HTTP contract writes them,
// with one dash (-out FILE) or two (--out FILE): cobra does not parse
// them, the standard flag package does.

func newBackupCommand(con console) *cobra.Command {
	return dataCommand(con, "backup", "Back up the running embedded store and its photo folder into one archive",
		`fieldsync backup -out FILE [-data-dir DIR] takes a consistent copy of the embedded
store (SQLite's online backup API, page by page in one read transaction, while the
server runs and takes writes), then of the photo
folder and the signing secret, into one tar.gz archive.`,
		func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			out := fs.String("out", "", "archive to write (required)")
			dataDir := fs.String("data-dir", "./data", "the data dir (FIELDSYNC_DATA_DIR)")
			if err := parseDataFlags(fs, args, con.getenv); err != nil {
				return err
			}
			if *out == "" {
				return errors.New("backup: -out FILE is required")
			}
			store, err := sqlitestore.Open(ctx, filepath.Join(*dataDir, backup.DatabaseName))
			if err != nil {
				return err
			}
			defer store.Close()
			m, err := backup.Backup(ctx, store, *dataDir, *out)
			if err != nil {
				return err
			}
			fmt.Fprintf(con.stdout, "backup %s: store at seq %d, %d photos\n", *out, m.Watermark, m.Photos)
			return nil
		})
}

func newRestoreCommand(con console) *cobra.Command {
	return dataCommand(con, "restore", "Restore a backup into an empty data dir",
		`fieldsync restore -in FILE -data-dir DIR unpacks a backup made by fieldsync backup into
DIR, which must be empty or missing, and checks that the store in it opens.`,
		func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			in := fs.String("in", "", "archive to restore (required)")
			dataDir := fs.String("data-dir", "./data", "the empty data dir to restore into (FIELDSYNC_DATA_DIR)")
			if err := parseDataFlags(fs, args, con.getenv); err != nil {
				return err
			}
			if *in == "" {
				return errors.New("restore: -in FILE is required")
			}
			if err := backup.Restore(ctx, *in, *dataDir); err != nil {
				return err
			}
			fmt.Fprintf(con.stdout, "restored %s into %s\n", *in, *dataDir)
			return nil
		})
}

func newExportCommand(con console) *cobra.Command {
	return dataCommand(con, "export", "Export every collection's current records as JSON Lines or CSV",
		`fieldsync export -out DIR [-format jsonl|csv] writes one file per collection with every
record's current state, from the embedded store or (-mongo-uri) from MongoDB.`,
		func(ctx context.Context, fs *flag.FlagSet, args []string) error {
			out := fs.String("out", "", "folder to write (required)")
			format := fs.String("format", backup.FormatJSONL, "jsonl or csv")
			var cfg config
			fs.StringVar(&cfg.dataDir, "data-dir", "./data", "the data dir (FIELDSYNC_DATA_DIR)")
			fs.StringVar(&cfg.mongoURI, "mongo-uri", "", "export from MongoDB instead of the embedded store (FIELDSYNC_MONGO_URI)")
			if err := parseDataFlags(fs, args, con.getenv); err != nil {
				return err
			}
			if *out == "" {
				return errors.New("export: -out DIR is required")
			}
			store, err := openStore(ctx, cfg)
			if err != nil {
				return err
			}
			defer store.Close()
			counts, err := backup.Export(ctx, store, *out, *format)
			if err != nil {
				return err
			}
			for _, c := range schema.Collections() {
				fmt.Fprintf(con.stdout, "%s: %d\n", c, counts[c])
			}
			return nil
		})
}

// dataCommand is a subcommand whose flags run parses.
func dataCommand(con console, name, short, long string, run func(context.Context, *flag.FlagSet, []string) error) *cobra.Command {
	return &cobra.Command{
		Use:                name + " [flags]",
		Short:              short,
		Long:               long,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := flag.NewFlagSet("fieldsync "+name, flag.ContinueOnError)
			fs.SetOutput(con.stdout)
			fs.Usage = func() {
				fmt.Fprintln(con.stdout, long)
				fmt.Fprintln(con.stdout)
				fs.PrintDefaults()
			}
			err := run(cmd.Context(), fs, args)
			if errors.Is(err, flag.ErrHelp) {
				return nil
			}
			return err
		},
	}
}

// dataEnv names the variable behind each data command flag.
var dataEnv = map[string]string{"data-dir": "FIELDSYNC_DATA_DIR", "mongo-uri": "FIELDSYNC_MONGO_URI"}

// parseDataFlags parses args, then sets each flag not given from its
// variable, when that is set (help shows the built-in defaults only).
func parseDataFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if env := dataEnv[f.Name]; env != "" && !given[f.Name] && getenv(env) != "" && err == nil {
			err = fs.Set(f.Name, getenv(env))
		}
	})
	return err
}
