package media

import (
	"errors"
	"fmt"
	"io"
)

// ErrSizeMismatch is returned (wrapped) by a reader from ExactSize, and so by
// Put, when the body is shorter or longer than its declared size.
var ErrSizeMismatch = errors.New("media: body size does not match declared size")

// ExactSize returns a reader of r's bytes for a BlobStore's Put, such that a
// consumer can only reach a clean io.EOF when r yielded exactly size bytes
// and then a clean io.EOF itself:
//
//   - If r yields fewer or more than size bytes, it fails with an error
//     wrapping ErrSizeMismatch. A size below 0 means unknown: any length goes.
//   - An error from r comes back wrapped, never as the bare io.EOF or
//     io.ErrUnexpectedEOF that read-until-full loops take for the end of the
//     input.
//   - It never returns bytes together with an error, and it holds the last
//     of size bytes back until r has reported its end, so a consumer that
//     stops reading after size bytes (as an HTTP client with a Content-Length
//     does) has seen any failure of r before it has the whole body.
//
// Errors are sticky: once failed, every later Read fails the same way.
func ExactSize(r io.Reader, size int64) io.Reader {
	return &exactReader{r: r, left: size, known: size >= 0}
}

// exactReader is the reader ExactSize returns.
type exactReader struct {
	r     io.Reader
	left  int64 // bytes still to come when known
	known bool
	err   error // sticky: io.EOF after a clean end, or the failure
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if e.known && int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n := 0
	var err error
	if len(p) > 0 {
		n, err = e.r.Read(p)
	}
	if !e.known {
		if err != nil && err != io.EOF {
			return 0, e.fail(fmt.Errorf("media: reading body: %w", err))
		}
		if err == io.EOF {
			return e.end(n)
		}
		return n, nil
	}
	e.left -= int64(n)
	switch {
	case err != nil && err != io.EOF:
		return 0, e.fail(fmt.Errorf("media: reading body: %w", err))
	case err == io.EOF && e.left > 0:
		return 0, e.fail(fmt.Errorf("%w: %d bytes missing", ErrSizeMismatch, e.left))
	case e.left > 0:
		return n, nil
	}
	// All size bytes are in p[:n]: hand them out only once r is known to
	// end cleanly here.
	if err != io.EOF {
		var probe [1]byte
		_, perr := io.ReadFull(e.r, probe[:])
		switch {
		case perr == nil:
			return 0, e.fail(fmt.Errorf("%w: more bytes than declared", ErrSizeMismatch))
		case perr != io.EOF:
			return 0, e.fail(fmt.Errorf("media: reading body: %w", perr))
		}
	}
	return e.end(n)
}

// end records a clean end of the body after the n bytes being handed out.
func (e *exactReader) end(n int) (int, error) {
	e.err = io.EOF
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// fail records err as the reader's sticky error and returns it.
func (e *exactReader) fail(err error) error {
	e.err = err
	return err
}
