package server

import (
	"fmt"
	"runtime/debug"

	"github.com/gofiber/fiber/v2"
)

// panicError is a handler's panic turned into an error: it answers as
// internal, and the log line of that answer carries the stack.
type panicError struct {
	value any
	stack []byte
}

func (e *panicError) Error() string { return fmt.Sprintf("panic: %v", e.value) }

// recoverPanics turns a panic below it into an error, so that the request
// gets 500 internal in the contract's shape, logged once with its route,
// and the process keeps serving.
func recoverPanics(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return c.Next()
}
