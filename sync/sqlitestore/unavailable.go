package sqlitestore

import (
	"errors"
	"fmt"

	"modernc.org/sqlite"

	"github.com/fieldsync/fieldsync/schema"
)

// Primary SQLite result codes that mean the database cannot serve for
// now, not that the request was wrong: the disk is full, the file or its
// folder cannot be written or opened, an I/O error, the write lock held
// past the busy timeout. Once the cause is gone the same request works.
const (
	codeBusy     = 5
	codeReadOnly = 8
	codeIOErr    = 10
	codeFull     = 13
	codeCantOpen = 14
)

// errorf is fmt.Errorf for the store's errors: an error of the database
// that means it cannot serve for now is also marked
// schema.ErrUnavailable, so that callers answer "try again later".
func errorf(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	if unavailable(err) && !errors.Is(err, schema.ErrUnavailable) {
		return &unavailableError{err}
	}
	return err
}

// unavailable reports whether err comes from SQLite saying the database
// cannot serve for now.
func unavailable(err error) bool {
	se, ok := errors.AsType[*sqlite.Error](err)
	if !ok {
		return false
	}
	switch se.Code() & 0xff {
	case codeBusy, codeReadOnly, codeIOErr, codeFull, codeCantOpen:
		return true
	}
	return false
}

// unavailableError is an error of the database marked
// schema.ErrUnavailable; its message is the error's own.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }

func (e *unavailableError) Unwrap() []error { return []error{e.err, schema.ErrUnavailable} }
