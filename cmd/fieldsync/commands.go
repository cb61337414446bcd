package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/fieldsync/fieldsync/cmd/fieldsync/backup"
	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// dataCommands are the commands that take data out and put it back.
var dataCommands = []string{"backup", "restore", "export"}

// runDataCommand runs backup, restore or export with their own flags.
func runDataCommand(ctx context.Context, name string, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fieldsync "+name, flag.ContinueOnError)
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	dataDir := fs.String("data-dir", env("FIELDSYNC_DATA_DIR", "./data"), "the data dir (FIELDSYNC_DATA_DIR)")
	switch name {
	case "backup":
		out := fs.String("out", "", "archive to write (required)")
		if err := fs.Parse(args); err != nil {
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
		fmt.Fprintf(stdout, "backup %s: store at seq %d, %d photos\n", *out, m.Watermark, m.Photos)
		return nil
	case "restore":
		in := fs.String("in", "", "archive to restore (required)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *in == "" {
			return errors.New("restore: -in FILE is required")
		}
		if err := backup.Restore(ctx, *in, *dataDir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored %s into %s\n", *in, *dataDir)
		return nil
	case "export":
		out := fs.String("out", "", "folder to write (required)")
		format := fs.String("format", backup.FormatJSONL, "jsonl or csv")
		mongoURI := fs.String("mongo-uri", env("FIELDSYNC_MONGO_URI", ""), "export from MongoDB instead of the embedded store (FIELDSYNC_MONGO_URI)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *out == "" {
			return errors.New("export: -out DIR is required")
		}
		store, err := openStore(ctx, config{dataDir: *dataDir, mongoURI: *mongoURI})
		if err != nil {
			return err
		}
		defer store.Close()
		counts, err := backup.Export(ctx, store, *out, *format)
		if err != nil {
			return err
		}
		for _, c := range schema.Collections {
			fmt.Fprintf(stdout, "%s: %d\n", c, counts[c])
		}
		return nil
	}
	return fmt.Errorf("unknown command %q", name)
}

// isDataCommand reports whether args name one of dataCommands.
func isDataCommand(args []string) bool {
	return len(args) > 0 && slices.Contains(dataCommands, args[0])
}
