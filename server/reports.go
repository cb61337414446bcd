package server

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
)

// location reads the tz query parameter: an IANA zone, UTC when absent.
func location(c *fiber.Ctx) (*time.Location, error) {
	tz := c.Query("tz", "UTC")
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" || tz == "Local" {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "tz", "tz must be an IANA time zone such as Europe/Berlin")
	}
	return loc, nil
}

// coverage reports planned stops against visits made, per rep.
func (s *Server) coverage(c *fiber.Ctx) error {
	loc, err := location(c)
	if err != nil {
		return err
	}
	report, err := s.reports.Coverage(c.UserContext(), *principal(c), c.Query("from"), c.Query("to"), c.Query("territory_id"), loc)
	if err != nil {
		return err
	}
	return c.JSON(report)
}

// unvisited lists customers nobody visited for a number of days.
func (s *Server) unvisited(c *fiber.Ctx) error {
	days, err := strconv.Atoi(c.Query("days"))
	if err != nil {
		return schema.FieldErrorf(schema.CodeValidationFailed, "days", "days must be a whole number of days")
	}
	customers, err := s.reports.Unvisited(c.UserContext(), *principal(c), days, c.Query("territory_id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"days": days, "customers": customers})
}

// devices reports when each device last pushed and pulled.
func (s *Server) devices(c *fiber.Ctx) error {
	rows, err := s.reports.Devices(c.UserContext(), *principal(c), c.Query("territory_id"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"devices": rows})
}
