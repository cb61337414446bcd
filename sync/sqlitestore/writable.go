package sqlitestore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// writeProbeSize is how many bytes CheckWrite writes: more than what a
// nearly full disk leaves over, less than a small push needs.
const writeProbeSize = 256 << 10

// CheckWrite reports whether the database's folder takes new bytes now, by
// writing a small file beside the database and removing it: a full disk
// or a folder made read-only fails it with an error marked
// schema.ErrUnavailable, where a read (Ping) still works. It writes every
// time it is called; callers decide how often.
func (s *Store) CheckWrite(ctx context.Context) error {
	const op = "sqlitestore.CheckWrite"
	var path string
	if err := s.r.QueryRowContext(ctx, "SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path); err != nil {
		return errorf("%s: %w", op, err)
	}
	if path == "" {
		return nil // an in-memory database
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".write-probe-*")
	if err != nil {
		return unavailableIO(op, err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, writeProbeSize))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return unavailableIO(op, err)
	}
	return nil
}

// unavailableIO marks a file system error schema.ErrUnavailable.
func unavailableIO(op string, err error) error {
	return &unavailableError{fmt.Errorf("%s: %w", op, err)}
}
