//go:build !unix

package filestore

import (
	"os"
	"time"
)

// holdLock does nothing where file locks are not available.
func holdLock(*os.File) error { return nil }

// abandoned reports whether a temporary file has not been written to for
// an hour, which no Put in progress does.
func abandoned(name string) bool {
	info, err := os.Stat(name)
	return err == nil && time.Since(info.ModTime()) > time.Hour
}
