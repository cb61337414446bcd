package server

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// Request bodies are streamed (Fiber's StreamRequestBody), so that photos
// go to the photo store without ever being held whole in memory. Every
// other route reads its body through readBody, which refuses a body over
// the limit without keeping more than the limit of it.
//
// A body the handler did not read to its end is read and thrown away, up
// to drainLimit bytes, before the answer goes out: left on a kept-alive
// connection it would be taken for the next request, and a connection
// closed with it unread is reset, so that the client never sees the
// answer (a 413 above all). Past drainLimit the connection is closed.

// streamsBody reports whether a request's handler reads the body stream
// itself.
func streamsBody(c *fiber.Ctx) bool {
	return c.Method() == fiber.MethodPut && strings.HasPrefix(c.Path(), "/v1/media/")
}

// readBody makes the whole body of a request available to c.Body(),
// unless its handler streams it, refusing more than limit bytes.
func readBody(limit int, drainLimit int64) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if streamsBody(c) {
			err := c.Next()
			drain(c, drainLimit)
			return err
		}
		req := c.Request()
		tooLarge := schema.Errorf(schema.CodePayloadTooLarge, "request body too large: at most %d bytes", limit)
		if req.Header.ContentLength() > limit {
			drain(c, drainLimit)
			return tooLarge
		}
		if stream := req.BodyStream(); stream != nil {
			body, err := io.ReadAll(io.LimitReader(stream, int64(limit)+1))
			if err != nil {
				c.Context().SetConnectionClose()
				return badRequest("request body could not be read")
			}
			if len(body) > limit {
				drain(c, drainLimit)
				return tooLarge
			}
			req.SetBody(body)
		}
		return c.Next()
	}
}

// drain reads what is left of a request's body stream, at most max bytes,
// and closes the connection after the answer when that was not all of it.
func drain(c *fiber.Ctx, max int64) {
	stream := c.Request().BodyStream()
	if stream == nil {
		return
	}
	n, err := io.CopyN(io.Discard, stream, max+1)
	if n > max || (err != nil && !errors.Is(err, io.EOF)) {
		c.Context().SetConnectionClose()
	}
}

// bytesReader reads a body Fiber already holds.
func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
