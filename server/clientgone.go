package server

import (
	"context"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
)

// clientCheckEvery is how often a request that waits (a queued sign-in)
// looks whether its client is still there.
const clientCheckEvery = 100 * time.Millisecond

// whileConnected returns a context that ends when the client of c closes
// its connection, looked at every clientCheckEvery without reading from
// it, and the function that stops looking; call it before the handler
// returns. Fiber's own context never ends while a handler runs, so a
// request its client gave up on would otherwise be worked on to the end.
func whileConnected(c *fiber.Ctx) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(c.UserContext())
	sc, ok := c.Context().Conn().(syscall.Conn)
	if !ok {
		return ctx, cancel
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return ctx, cancel
	}
	go func() {
		t := time.NewTicker(clientCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if peerClosed(raw) {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}
