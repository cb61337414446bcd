// Package usage gives fieldsync's single-command tools (fieldseed,
// fieldsim, fieldload) the same help and exit behaviour: help starts with
// one line saying what the tool is, -h exits 0, other errors exit 1.
package usage

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Set makes fs's help print about (one line saying what the command is),
// then synopsis, then every flag with its default.
func Set(fs *flag.FlagSet, about, synopsis string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nUsage:\n  %s\n\nFlags:\n", about, synopsis)
		fs.PrintDefaults()
	}
}

// ExitCode reports how a command named name ends after err, writing err
// to stderr: 0 for nil and for a request for help (already answered by the
// flag set), 2 for a flag the flag set refused (its message is written
// already), else 1.
func ExitCode(name string, err error, stderr io.Writer) int {
	var bad *BadFlagsError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &bad):
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// BadFlagsError is a command line that the flag set refused.
type BadFlagsError struct{ Err error }

func (e *BadFlagsError) Error() string { return e.Err.Error() }
func (e *BadFlagsError) Unwrap() error { return e.Err }

// Parse parses args with fs and tells a request for help (flag.ErrHelp)
// from flags it refused (a *BadFlagsError).
func Parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &BadFlagsError{Err: err}
}
