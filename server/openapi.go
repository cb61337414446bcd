package server

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"go.yaml.in/yaml/v3"

	"github.com/fieldsync/fieldsync/docs"
)

// Route is one route the server answers: a method and a path, with path
// parameters as {name}, as the OpenAPI document writes them.
type Route struct {
	Method, Path string
}

// Routes lists the routes the server answers, so that tests can check
// that the OpenAPI document describes each.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.app.GetRoutes(true) {
		parts := strings.Split(r.Path, "/")
		for i, p := range parts {
			if strings.HasPrefix(p, ":") {
				parts[i] = "{" + strings.TrimSuffix(p[1:], "?") + "}"
			}
		}
		out = append(out, Route{Method: r.Method, Path: strings.Join(parts, "/")})
	}
	return out
}

// openAPIDocument serves the OpenAPI document.
func (s *Server) openAPIDocument(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.openAPI)
}

// openAPIJSON converts the OpenAPI document (docs/openapi.yaml) to the JSON
// that GET /v1/openapi.json serves.
func openAPIJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(docs.OpenAPI(), &doc); err != nil {
		return nil, fmt.Errorf("server: the OpenAPI document: %w", err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("server: the OpenAPI document as JSON: %w", err)
	}
	return out, nil
}
