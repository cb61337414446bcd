package server

import (
	"errors"
	"io"
	"mime"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// importRecords loads customers, products, price lists or territories
// from a CSV body, streamed: the engine reads it in chunks.
func (s *Server) importRecords(c *fiber.Ctx) error {
	if mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); err != nil || mt != "text/csv" {
		return schema.Errorf(schema.CodeUnsupportedMedia, "an import body is text/csv")
	}
	var opt sync.ImportOptions
	for _, f := range []struct {
		name string
		into *bool
	}{{"dry_run", &opt.DryRun}, {"skip_invalid", &opt.SkipInvalid}} {
		switch c.Query(f.name, "false") {
		case "true":
			*f.into = true
		case "false":
		default:
			return schema.FieldErrorf(schema.CodeValidationFailed, f.name, "%s must be true or false", f.name)
		}
	}
	body := &limitedReader{r: requestBody(c), left: s.cfg.ImportLimit}
	res, err := s.engine.Import(c.UserContext(), *principal(c), schema.Collection(c.Params("collection")), body, opt)
	if errors.Is(err, errImportTooLarge) {
		return schema.Errorf(schema.CodePayloadTooLarge, "an import file is at most %d bytes", s.cfg.ImportLimit)
	}
	if err != nil {
		return err
	}
	return c.JSON(res)
}

var errImportTooLarge = errors.New("import too large")

// limitedReader fails, rather than ending, past its limit, so that a file
// cut short is never taken for a whole one.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errImportTooLarge
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errImportTooLarge
	}
	return n, err
}
