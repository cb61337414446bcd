package server

import (
	"bytes"
	"mime"
	"strconv"
	"strings"
	gosync "sync"

	"github.com/gofiber/fiber/v2"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// compressMinSize is the smallest answer worth compressing: below it the
// encoding's framing eats most of what it saves.
const compressMinSize = 1 << 10

// compressor encodes JSON answers with zstd or gzip for the clients that
// accept them. Photos, streams and answers another layer already encoded
// go out as they are. It is safe for concurrent use.
type compressor struct {
	zstd *zstd.Encoder // EncodeAll may run concurrently
	gzip gosync.Pool   // *gzip.Writer
}

func newCompressor() (*compressor, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, err
	}
	return &compressor{zstd: enc}, nil
}

// handle is the outermost middleware: it sees each answer once it is
// whole, errors turned into their JSON already, and encodes its body.
func (z *compressor) handle(c *fiber.Ctx) error {
	if err := c.Next(); err != nil {
		return err
	}
	resp := c.Response()
	if !compressible(resp) {
		return nil
	}
	resp.Header.Add(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
	body := resp.Body()
	if c.Method() == fiber.MethodHead || len(body) < compressMinSize {
		return nil
	}
	var out []byte
	enc := acceptedEncoding(c.Get(fiber.HeaderAcceptEncoding))
	switch enc {
	case "zstd":
		out = z.zstd.EncodeAll(body, make([]byte, 0, len(body)/4))
	case "gzip":
		out = z.gzipped(body)
	default:
		return nil
	}
	resp.SetBodyRaw(out)
	resp.Header.Set(fiber.HeaderContentEncoding, enc)
	return nil
}

func (z *compressor) gzipped(body []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(body) / 4)
	w, _ := z.gzip.Get().(*gzip.Writer)
	if w == nil {
		w = gzip.NewWriter(&buf)
	} else {
		w.Reset(&buf)
	}
	// Writes to a bytes.Buffer do not fail.
	_, _ = w.Write(body)
	_ = w.Close()
	z.gzip.Put(w)
	return buf.Bytes()
}

// compressible reports whether an answer is JSON held in memory and not
// encoded yet. Photo bytes (already compressed images), event streams and
// bodies streamed from a store are left alone.
func compressible(resp *fiber.Response) bool {
	if resp.IsBodyStream() || len(resp.Header.ContentEncoding()) > 0 {
		return false
	}
	mt, _, err := mime.ParseMediaType(string(resp.Header.ContentType()))
	return err == nil && (mt == fiber.MIMEApplicationJSON || strings.HasSuffix(mt, "+json"))
}

// acceptedEncoding picks the encoding of an answer from the request's
// Accept-Encoding: zstd or gzip, whichever has the higher weight, zstd on
// a tie, "" for none. A weight of 0 refuses an encoding, and "*" stands for
// the encodings not named.
func acceptedEncoding(header string) string {
	weights := map[string]float64{}
	for item := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(item, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name == "" {
			continue
		}
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(param, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				} else {
					q = 0
				}
			}
		}
		weights[name] = q
	}
	weight := func(enc string) float64 {
		if q, ok := weights[enc]; ok {
			return q
		}
		return weights["*"]
	}
	zq, gq := weight("zstd"), weight("gzip")
	switch {
	case zq > 0 && zq >= gq:
		return "zstd"
	case gq > 0:
		return "gzip"
	}
	return ""
}
