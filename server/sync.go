package server

import (
	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// push applies a batch of mutations. A body over the push limit is
// refused whole with 413 before anything is read into records.
func (s *Server) push(c *fiber.Ctx) error {
	if n := len(c.Body()); n > s.cfg.MaxPushBytes {
		return schema.Errorf(schema.CodePayloadTooLarge, "a push body is at most %d bytes; this one has %d", s.cfg.MaxPushBytes, n)
	}
	var req schema.PushRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.Mutations == nil {
		return badRequest("mutations must be a list")
	}
	resp, err := s.engine.Push(c.UserContext(), *principal(c), &req)
	if err != nil {
		return err
	}
	return c.JSON(resp)
}

// pull returns the next page of changes after a checkpoint.
func (s *Server) pull(c *fiber.Ctx) error {
	var req schema.PullRequest
	if len(c.Body()) > 0 {
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
	}
	resp, err := s.engine.Pull(c.UserContext(), *principal(c), &req)
	if err != nil {
		return err
	}
	return c.JSON(resp)
}
