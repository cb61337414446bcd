package schema

import (
	"errors"
	"fmt"
	"strings"
)

// Error codes are stable lower_snake words that clients match on.
const (
	CodeBadRequest          = "bad_request"
	CodeUnauthorized        = "unauthorized"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeMethodNotAllowed    = "method_not_allowed"
	CodeConflict            = "conflict"
	CodeValidationFailed    = "validation_failed"
	CodeUnsupportedMedia    = "unsupported_media_type"
	CodeHashMismatch        = "hash_mismatch"
	CodePayloadTooLarge     = "payload_too_large"
	CodeHeadersTooLarge     = "headers_too_large"
	CodeRateLimited         = "rate_limited"
	CodeInvalidTransition   = "invalid_transition"
	CodeCreditLimitExceeded = "credit_limit_exceeded"
	CodeUnavailable         = "unavailable"
	CodeInternal            = "internal"
)

// ErrUnavailable marks an error of a record or photo store that cannot be
// reached (down, unreachable, not answering in time). Store adapters wrap
// such errors with it; users see 503 unavailable and may retry later.
var ErrUnavailable = errors.New("store unavailable")

// Error is the error users see: a stable code, a message that is safe to
// show, and, where the problem is with one input field, that field's path.
// Problems lists every problem found when validation fails, each with its
// own path and problem code.
type Error struct {
	Code     string    `json:"code"`
	Message  string    `json:"message"`
	Field    string    `json:"field,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one reason a record failed validation: the path of the field
// (`lines[2].quantity`), a stable problem code and a message.
type Problem struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Problem codes name what is wrong with a field.
const (
	ProblemRequired     = "required"
	ProblemInvalidType  = "invalid_type"
	ProblemInvalidValue = "invalid_value"
	ProblemOutOfRange   = "out_of_range"
	ProblemTooLong      = "too_long"
	ProblemTooMany      = "too_many"
	ProblemBadFormat    = "bad_format"
	ProblemUnknownField = "unknown_field"
	ProblemForbidden    = "forbidden"
)

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Code + ": " + e.Field + ": " + e.Message
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldErrorf returns an *Error about one field.
func FieldErrorf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// AsError returns the *Error in err's chain, or an internal error whose
// message reveals nothing of err.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// validationError turns a non-empty list of problems into one *Error whose
// message and field are the first problem's, with every problem listed.
func validationError(problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	msg := problems[0].Message
	if n := len(problems) - 1; n > 0 {
		msg = fmt.Sprintf("%s (and %d more %s)", msg, n, plural(n, "problem", "problems"))
	}
	return &Error{Code: CodeValidationFailed, Message: msg, Field: problems[0].Field, Problems: problems}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// joinPath appends a child name or index to a field path.
func joinPath(parent, child string) string {
	switch {
	case parent == "":
		return child
	case strings.HasPrefix(child, "["):
		return parent + child
	default:
		return parent + "." + child
	}
}
