package server

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// healthz answers while the process runs.
func (s *Server) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 only when the record store and the photo store
// answer, and otherwise names those that do not.
func (s *Server) readyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
	defer cancel()
	checks := map[string]Pinger{"records": s.store, "photos": s.photos}
	status := fiber.Map{}
	var down []string
	for name, p := range checks {
		if err := p.Ping(ctx); err != nil {
			s.log.Warn("not ready", slog.String("check", name), slog.Any("err", err))
			status[name] = "unavailable"
			down = append(down, name)
			continue
		}
		status[name] = "ok"
	}
	if len(down) > 0 {
		slices.Sort(down)
		return &schema.Error{Code: schema.CodeUnavailable, Message: "not ready: no answer from the " + strings.Join(down, " store and the ") + " store"}
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": status})
}
