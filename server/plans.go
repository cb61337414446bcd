package server

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// planRoutes adds targets, the reports a rep may read for itself (the
// engine narrows a rep to its own rows), the audit trail and imports.
// They are registered before the report and admin groups.
func (s *Server) planRoutes(v1 fiber.Router) {
	v1.Post("/targets/split", s.authenticate, requireRole(schema.RoleManager, schema.RoleAdmin), s.splitTargets)
	v1.Get("/reports/targets", s.authenticate, s.targetsReport)
	v1.Get("/reports/daily", s.authenticate, s.dailyReport)
	v1.Get("/reports/credit", s.authenticate, requireRole(schema.RoleManager, schema.RoleAdmin), s.creditReport)
	v1.Get("/audit", s.authenticate, requireRole(schema.RoleManager, schema.RoleAdmin), s.auditTrail)
	v1.Post("/admin/import/:collection", s.authenticate, requireRole(schema.RoleAdmin), s.importRecords)
}

// splitTargets writes a rep's twelve monthly targets from a yearly one.
func (s *Server) splitTargets(c *fiber.Ctx) error {
	var req sync.SplitRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	resp, err := s.engine.SplitTargets(c.UserContext(), *principal(c), &req)
	if err != nil {
		return err
	}
	return c.JSON(resp)
}

// targetsReport reports targets against actuals per rep, month, quarter
// and year.
func (s *Server) targetsReport(c *fiber.Ctx) error {
	loc, err := location(c)
	if err != nil {
		return err
	}
	report, err := s.reports.Targets(c.UserContext(), *principal(c), c.Query("from"), c.Query("to"),
		c.Query("territory_id"), c.Query("rep_id"), loc)
	if err != nil {
		return err
	}
	return c.JSON(report)
}

// dailyReport reports each rep's day.
func (s *Server) dailyReport(c *fiber.Ctx) error {
	loc, err := location(c)
	if err != nil {
		return err
	}
	report, err := s.reports.Daily(c.UserContext(), *principal(c), c.Query("date"), c.Query("territory_id"), c.Query("rep_id"), loc)
	if err != nil {
		return err
	}
	return c.JSON(report)
}

// creditReport lists customers whose exposure reaches a ratio of their
// credit limit.
func (s *Server) creditReport(c *fiber.Ctx) error {
	minRatio := 0.0
	if v := c.Query("min_ratio"); v != "" {
		var err error
		if minRatio, err = strconv.ParseFloat(v, 64); err != nil {
			return schema.FieldErrorf(schema.CodeValidationFailed, "min_ratio", "min_ratio must be a number such as 0.8")
		}
	}
	report, err := s.reports.Credit(c.UserContext(), *principal(c), minRatio, c.Query("territory_id"))
	if err != nil {
		return err
	}
	return c.JSON(report)
}

// auditTrail returns a page of the audit trail, newest first.
func (s *Server) auditTrail(c *fiber.Ctx) error {
	limit := 0
	if v := c.Query("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return schema.FieldErrorf(schema.CodeValidationFailed, "limit", "limit must be 1 to 1000")
		}
	}
	page, err := s.engine.Audit(c.UserContext(), *principal(c), sync.AuditRequest{
		Collection: c.Query("collection"), ID: c.Query("id"), UserID: c.Query("user_id"),
		From: c.Query("from"), To: c.Query("to"), Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		return err
	}
	return c.JSON(page)
}
