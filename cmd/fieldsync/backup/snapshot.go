package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"modernc.org/sqlite"

	"github.com/fieldsync/fieldsync/sync/sqlitestore"
)

// Method is how Backup copies the embedded store.
type Method string

const (
	// PageCopy copies the store file's pages as they are with SQLite's
	// online backup API, inside one read transaction held from the first
	// page to the last: the copy is the store at the moment that
	// transaction began, whatever writers commit meanwhile, and the copy
	// never restarts. It costs a read and a write of every page, about
	// half VacuumInto's CPU, so it is the default; its pages are as the
	// store left them, partly filled, so its archive is about a quarter
	// larger.
	PageCopy Method = "page-copy"
	// VacuumInto rebuilds the store into a new, compacted file with
	// SQLite's VACUUM INTO, also in one read transaction. It decodes and
	// re-inserts every row and index entry, about twice PageCopy's CPU;
	// its copy holds full pages and no free ones.
	VacuumInto Method = "vacuum-into"
)

// copyStepPages is how many pages a step of PageCopy copies (16 MB of
// 4 KiB pages) before it looks at its context again.
const copyStepPages = 4096

// snapshot writes a consistent copy of the store in dataDir to dst,
// which must not exist, by method, and returns the feed seq of the copy.
func snapshot(ctx context.Context, method Method, store *sqlitestore.Store, dataDir, dst string) (int64, error) {
	switch method {
	case PageCopy:
		n, _, err := copyPages(ctx, filepath.Join(dataDir, DatabaseName), dst, copyStepPages)
		return n, err
	case VacuumInto:
		return store.Snapshot(ctx, dst)
	default:
		return 0, fmt.Errorf("backup.snapshot: unknown backup method %q", method)
	}
}

// pageCopier is what copyPages needs of the SQLite driver's connection.
type pageCopier interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// copyPages copies the database file src page by page into dst, which
// must not exist, stepPages pages a step, while other connections (this
// process's store, or other processes) go on writing to src. It returns
// the feed seq of the copy and the number of steps it took.
//
// SQLite restarts a backup whose source another connection changes
// between two steps, when the step opens its own read transaction; a
// store that takes writes without a pause would restart it forever. So
// the read transaction is opened first, here, and held until the last
// page: every step reads the same snapshot (WAL mode lets writers commit
// meanwhile), nothing restarts, and the feed seq read in that transaction
// is the copy's.
func copyPages(ctx context.Context, src, dst string, stepPages int32) (seq int64, steps int, err error) {
	const op = "backup.copyPages"
	if _, err := os.Stat(src); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	// mode=rw: never create a missing store.
	db, err := sql.Open("sqlite", fileURI(src)+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	defer func() {
		_, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		if err == nil && rerr != nil {
			err = fmt.Errorf("%s: %w", op, rerr)
		}
	}()
	// The first read opens the transaction the whole copy reads in.
	if err := conn.QueryRowContext(ctx, "SELECT seq FROM feed WHERE one = 1").Scan(&seq); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	err = conn.Raw(func(dc any) error {
		pc, ok := dc.(pageCopier)
		if !ok {
			return fmt.Errorf("the SQLite driver's connection %T has no backup API", dc)
		}
		// The copy is a scratch file until it is archived (and the archive
		// synced): a rollback journal and syncs would only slow it down.
		bk, err := pc.NewBackup(fileURI(dst) + "?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)")
		if err != nil {
			return err
		}
		for more := true; more; {
			if err := ctx.Err(); err != nil {
				return errors.Join(err, bk.Finish())
			}
			steps++
			if more, err = bk.Step(stepPages); err != nil {
				return errors.Join(err, bk.Finish())
			}
		}
		return bk.Finish()
	})
	if err != nil {
		return 0, steps, fmt.Errorf("%s: %w", op, err)
	}
	return seq, steps, nil
}

// fileURI is path as an SQLite URI filename, its URI characters escaped.
func fileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(path))
}
