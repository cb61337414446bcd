package server

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// statusByCode is the one table from error codes to HTTP statuses.
var statusByCode = map[string]int{
	schema.CodeBadRequest:          http.StatusBadRequest,
	schema.CodeUnauthorized:        http.StatusUnauthorized,
	schema.CodeForbidden:           http.StatusForbidden,
	schema.CodeNotFound:            http.StatusNotFound,
	schema.CodeMethodNotAllowed:    http.StatusMethodNotAllowed,
	schema.CodeConflict:            http.StatusConflict,
	schema.CodeValidationFailed:    http.StatusUnprocessableEntity,
	schema.CodeUnsupportedMedia:    http.StatusUnsupportedMediaType,
	schema.CodeHashMismatch:        http.StatusUnprocessableEntity,
	schema.CodePayloadTooLarge:     http.StatusRequestEntityTooLarge,
	schema.CodeRateLimited:         http.StatusTooManyRequests,
	schema.CodeHeadersTooLarge:     http.StatusRequestHeaderFieldsTooLarge,
	schema.CodeInvalidTransition:   http.StatusConflict,
	schema.CodeCreditLimitExceeded: http.StatusConflict,
	schema.CodeUnavailable:         http.StatusServiceUnavailable,
	schema.CodeInternal:            http.StatusInternalServerError,
}

// codeByFiberStatus names the errors Fiber itself raises: unknown routes,
// wrong methods, oversized or unreadable bodies.
var codeByFiberStatus = map[int]string{
	http.StatusBadRequest:                  schema.CodeBadRequest,
	http.StatusNotFound:                    schema.CodeNotFound,
	http.StatusMethodNotAllowed:            schema.CodeMethodNotAllowed,
	http.StatusRequestEntityTooLarge:       schema.CodePayloadTooLarge,
	http.StatusUnsupportedMediaType:        schema.CodeUnsupportedMedia,
	http.StatusRequestTimeout:              schema.CodeBadRequest,
	http.StatusTooManyRequests:             schema.CodeRateLimited,
	http.StatusRequestHeaderFieldsTooLarge: schema.CodeHeadersTooLarge,
	http.StatusServiceUnavailable:          schema.CodeUnavailable,
}

// sentinels are the expected conditions, named by sentinel errors of the
// layers beneath, that users see with a code of their own.
var sentinels = []struct {
	err     error
	code    string
	message string
}{
	{schema.ErrUnavailable, schema.CodeUnavailable, "a store of the server does not answer; try again later"},
}

// retryAfterSeconds is what a 503 answer asks the client to wait before
// retrying, unless the handler said otherwise.
const retryAfterSeconds = "5"

// errorBody is the contract's error shape.
type errorBody struct {
	Error *schema.Error `json:"error"`
}

// publicError turns any error into what the caller may see: a
// *schema.Error passes through, Fiber's own errors and the sentinels get
// their code, and anything else becomes "internal" with nothing of the
// cause in it.
func publicError(err error) *schema.Error {
	var fe *fiber.Error
	if errors.As(err, &fe) {
		if code, ok := codeByFiberStatus[fe.Code]; ok {
			return &schema.Error{Code: code, Message: fiberMessage(fe)}
		}
	}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return &schema.Error{Code: s.code, Message: s.message}
		}
	}
	return schema.AsError(err)
}

func fiberMessage(fe *fiber.Error) string {
	switch fe.Code {
	case http.StatusNotFound:
		return "no such endpoint"
	case http.StatusMethodNotAllowed:
		return "method not allowed on this endpoint"
	case http.StatusRequestEntityTooLarge:
		return "request body too large"
	case http.StatusRequestHeaderFieldsTooLarge:
		return "request line or headers too large"
	}
	return http.StatusText(fe.Code)
}

// statusOf returns the HTTP status for an error code.
func statusOf(code string) int {
	if s, ok := statusByCode[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// handleError writes err in the contract's shape. Internal errors are
// logged with their cause; the response says only "internal error".
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	pe := publicError(err)
	status := statusOf(pe.Code)
	switch {
	case pe.Code == schema.CodeInternal:
		attrs := []any{slog.String("method", c.Method()), slog.String("route", routeOf(c)), slog.Any("err", err)}
		if pe, ok := errors.AsType[*panicError](err); ok {
			attrs = append(attrs, slog.String("stack", string(pe.stack)))
		}
		s.log.Error("request failed", attrs...)
	case errors.Is(err, schema.ErrUnavailable):
		s.writes.noteError(err)
		s.log.Warn("store unavailable", slog.String("method", c.Method()), slog.String("route", routeOf(c)), slog.Any("err", err))
	}
	switch status {
	case http.StatusUnauthorized:
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="fieldsync"`)
	case http.StatusServiceUnavailable:
		if len(c.Response().Header.Peek(fiber.HeaderRetryAfter)) == 0 {
			c.Set(fiber.HeaderRetryAfter, retryAfterSeconds)
		}
	}
	return c.Status(status).JSON(errorBody{pe})
}

// routeOf names the matched route, or "unmatched".
func routeOf(c *fiber.Ctx) string {
	if r := c.Route(); r != nil && r.Path != "" && r.Path != "/" {
		return r.Path
	}
	if c.Path() == "/" {
		return "/"
	}
	return "unmatched"
}

// badRequest is a malformed request: unreadable JSON, a missing body.
func badRequest(format string, args ...any) *schema.Error {
	return schema.Errorf(schema.CodeBadRequest, format, args...)
}
