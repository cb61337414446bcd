//go:build unix

package filestore

import (
	"os"
	"syscall"
)

// holdLock takes an exclusive lock on a temporary file for as long as it
// stays open in this process.
func holdLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// abandoned reports whether no process holds the lock of a temporary file.
func abandoned(name string) bool {
	f, err := os.Open(name)
	if err != nil {
		return false
	}
	defer f.Close() // releases the lock taken here
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
