package server

import (
	"context"
	"log/slog"
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
	checks := []struct {
		name, what string
		p          Pinger
	}{{"records", "the record store", s.store}, {"photos", "the photo store", s.photos}}
	status := fiber.Map{}
	var down, names []string
	for _, ch := range checks {
		if err := ch.p.Ping(ctx); err != nil {
			s.log.Warn("not ready", slog.String("check", ch.name), slog.Any("err", err))
			status[ch.name] = "unavailable"
			down = append(down, ch.what)
			names = append(names, ch.name)
			continue
		}
		status[ch.name] = "ok"
	}
	if len(down) > 0 {
		return &schema.Error{Code: schema.CodeUnavailable,
			Message: "not ready: " + strings.Join(down, " and ") + " not answering (" + strings.Join(names, ", ") + ")"}
	}
	return c.JSON(fiber.Map{"status": "ready", "checks": status})
}
