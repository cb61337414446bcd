package server

import (
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

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

// checkFraming refuses a request whose Content-Length headers disagree:
// which one frames the body is ambiguous (fasthttp would take the last),
// so the request is refused and the connection closed.
func checkFraming(c *fiber.Ctx) error {
	var first []byte
	for line := range bytes.Lines(c.Request().Header.RawHeaders()) {
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte(fiber.HeaderContentLength)) {
			continue
		}
		value = bytes.TrimSpace(value)
		if first == nil {
			first = value
		} else if !bytes.Equal(first, value) {
			c.Context().SetConnectionClose()
			return badRequest("conflicting Content-Length headers")
		}
	}
	return c.Next()
}

// streamsBody reports whether a request's handler reads the body stream
// itself.
func streamsBody(c *fiber.Ctx) bool {
	return (c.Method() == fiber.MethodPut && strings.HasPrefix(c.Path(), "/v1/media/")) ||
		(c.Method() == fiber.MethodPost && strings.HasPrefix(c.Path(), "/v1/admin/import/")) ||
		((c.Method() == fiber.MethodPatch || c.Method() == fiber.MethodPost) && strings.HasPrefix(c.Path(), "/v1/uploads"))
}

// readBody makes the whole body of a request available to c.Body(),
// unless its handler streams it, refusing more than limit bytes.
func readBody(limit int, drainLimit int64) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if streamsBody(c) {
			body := &bodyStream{r: c.Request().BodyStream()}
			if body.r == nil {
				body.r = bytes.NewReader(c.Body())
			}
			c.Locals(bodyStreamKey, body)
			err := c.Next()
			drainStream(c, body, drainLimit)
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
		if err := inflate(c, limit); err != nil {
			return err
		}
		return c.Next()
	}
}

// inflate decompresses a gzip or zstd body, refusing one that inflates
// past limit, and takes the encoding away so that nothing inflates it
// again. Other encodings are refused.
func inflate(c *fiber.Ctx, limit int) error {
	req := c.Request()
	enc := strings.ToLower(strings.TrimSpace(string(req.Header.ContentEncoding())))
	if enc == "" || enc == "identity" {
		return nil
	}
	zr, err := bodyDecoder(enc, bytes.NewReader(req.Body()), limit)
	if errors.Is(err, errUnknownEncoding) {
		return schema.Errorf(schema.CodeUnsupportedMedia, "Content-Encoding %q is not supported; send zstd, gzip or nothing", enc)
	}
	invalid := badRequest("request body is not valid %s", enc)
	if err != nil {
		return invalid
	}
	defer zr.Close()
	tooLarge := schema.Errorf(schema.CodePayloadTooLarge, "request body too large once inflated: at most %d bytes", limit)
	body, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	switch {
	case errors.Is(err, zstd.ErrWindowSizeExceeded):
		return tooLarge
	case err != nil:
		return invalid
	case len(body) > limit:
		return tooLarge
	}
	req.SetBody(body)
	req.Header.Del(fiber.HeaderContentEncoding)
	return nil
}

var errUnknownEncoding = errors.New("unknown content encoding")

// bodyDecoder inflates r, encoded as enc. A zstd frame may not ask for a
// window larger than limit (or 8 MiB, what zstd's own levels use), so
// that its header cannot make the server allocate more than the body it
// would accept.
func bodyDecoder(enc string, r io.Reader, limit int) (io.ReadCloser, error) {
	switch enc {
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr, nil
	case "zstd":
		window := uint64(max(limit, 8<<20))
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(window))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return nil, errUnknownEncoding
}

// drain reads what is left of a request's body stream, at most max bytes,
// and closes the connection after the answer when that was not all of it.
func drain(c *fiber.Ctx, max int64) {
	if stream := c.Request().BodyStream(); stream != nil {
		drainStream(c, stream, max)
	}
}

func drainStream(c *fiber.Ctx, stream io.Reader, max int64) {
	n, err := io.CopyN(io.Discard, stream, max+1)
	if n > max || (err != nil && !errors.Is(err, io.EOF)) {
		c.Context().SetConnectionClose()
	}
}

const bodyStreamKey = "fieldsync.body"

// bodyStream is the body of a request whose handler streams it. Once it
// has ended it stays ended: fasthttp's stream of a chunked body, read
// again after its end, waits for a next chunk that never comes, and the
// answer would wait for the read timeout.
type bodyStream struct {
	r     io.Reader
	ended bool
}

func (b *bodyStream) Read(p []byte) (int, error) {
	if b.ended {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		b.ended = true
	}
	return n, err
}

// requestBody returns the body of a request whose handler streams it.
func requestBody(c *fiber.Ctx) io.Reader {
	if b, ok := c.Locals(bodyStreamKey).(*bodyStream); ok {
		return b
	}
	return bytes.NewReader(c.Body())
}
