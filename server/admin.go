package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

type createUserRequest struct {
	Username      string      `json:"username"`
	Password      string      `json:"password"`
	Role          schema.Role `json:"role"`
	Territories   []string    `json:"territories"`
	DistributorID string      `json:"distributor_id"`
}

// updateUserRequest changes what it names and leaves the rest.
type updateUserRequest struct {
	Role          *schema.Role `json:"role"`
	Territories   *[]string    `json:"territories"`
	DistributorID *string      `json:"distributor_id"`
	Password      *string      `json:"password"`
	Active        *bool        `json:"active"`
}

// createUser adds a user (admin only).
func (s *Server) createUser(c *fiber.Ctx) error {
	var req createUserRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	u, err := s.addUser(c.UserContext(), *principal(c), req)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

// addUser checks and stores a new user on behalf of an admin; the API and
// the console create users through it.
func (s *Server) addUser(ctx context.Context, by schema.Principal, req createUserRequest) (*schema.User, error) {
	if req.Password == "" {
		return nil, schema.FieldErrorf(schema.CodeValidationFailed, "password", "password is required")
	}
	u, err := NewUser(req.Username, req.Password, req.Role, req.Territories, req.DistributorID, s.now(), s.cfg.PasswordCost)
	if err != nil {
		return nil, err
	}
	err = s.store.CreateUser(ctx, u, sync.UserAudit(by, nil, u, u.CreatedAt))
	if errors.Is(err, sync.ErrExists) {
		return nil, schema.FieldErrorf(schema.CodeConflict, "username", "username %q is taken", u.Username)
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("user created", slog.String("user_id", u.ID), slog.String("role", string(u.Role)), slog.String("by", by.UserID))
	return u, nil
}

// User listing limits: a page holds at most maxUsersPage users, and
// defaultUsersPage when the caller does not say.
const (
	defaultUsersPage = 100
	maxUsersPage     = 500
)

// userPage is one page of GET /v1/admin/users; NextCursor is empty on the
// last page.
type userPage struct {
	Users      []*schema.User `json:"users"`
	NextCursor string         `json:"next_cursor"`
}

// listUsers returns users in id order, filtered by role, territory and
// active flag, a page at a time (admin only).
func (s *Server) listUsers(c *fiber.Ctx) error {
	f, err := userFilter(c)
	if err != nil {
		return err
	}
	limit := f.Limit
	f.Limit = limit + 1 // one more tells whether another page follows
	users, err := s.store.ListUsers(c.UserContext(), f)
	if err != nil {
		return err
	}
	page := userPage{Users: users}
	if len(users) > limit {
		page.Users = users[:limit]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(users[limit-1].ID))
	}
	return c.JSON(page)
}

// userFilter reads the query of GET /v1/admin/users.
func userFilter(c *fiber.Ctx) (sync.UserFilter, error) {
	f := sync.UserFilter{Role: schema.Role(c.Query("role")), Territory: c.Query("territory"), Limit: defaultUsersPage}
	if f.Role != "" && !f.Role.Valid() {
		return f, schema.FieldErrorf(schema.CodeValidationFailed, "role", "role must be one of rep, manager, distributor, admin")
	}
	if f.Territory != "" && !schema.CheckID(f.Territory) {
		return f, schema.FieldErrorf(schema.CodeValidationFailed, "territory", "territory must be a valid id")
	}
	if v := c.Query("active"); v != "" {
		active, err := strconv.ParseBool(v)
		if err != nil {
			return f, schema.FieldErrorf(schema.CodeValidationFailed, "active", "active must be true or false")
		}
		f.Active = &active
	}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxUsersPage {
			return f, schema.FieldErrorf(schema.CodeValidationFailed, "limit", "limit must be a whole number from 1 to %d", maxUsersPage)
		}
		f.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		after, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || !schema.CheckID(string(after)) {
			return f, schema.FieldErrorf(schema.CodeValidationFailed, "cursor", "cursor is not one this server handed out")
		}
		f.After = string(after)
	}
	return f, nil
}

// showUser returns one user (admin only).
func (s *Server) showUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	return c.JSON(u)
}

// updateUser changes a user's role, territories, distributor, password or
// active flag (admin only). Deactivating a user or changing its password
// ends every login it has at once.
func (s *Server) updateUser(c *fiber.Ctx) error {
	u, err := s.userParam(c)
	if err != nil {
		return err
	}
	var req updateUserRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if u, err = s.changeUser(c.UserContext(), *principal(c), u, req); err != nil {
		return err
	}
	return c.JSON(u)
}

// changeUser applies an update to a user on behalf of an admin; the API
// and the console change users through it. A new password or a
// deactivation ends every login of the user at once.
func (s *Server) changeUser(ctx context.Context, by schema.Principal, u *schema.User, req updateUserRequest) (*schema.User, error) {
	before := *u
	if req.Role != nil {
		u.Role = *req.Role
	}
	if req.Territories != nil {
		u.Territories = *req.Territories
	}
	if req.DistributorID != nil {
		u.DistributorID = *req.DistributorID
	}
	password := ""
	if req.Password != nil {
		if password = *req.Password; password == "" {
			return nil, schema.FieldErrorf(schema.CodeValidationFailed, "password", "password must not be empty")
		}
	}
	if err := schema.CheckUser(u, password); err != nil {
		return nil, err
	}
	endLogins := false
	var err error
	if password != "" {
		if u.PasswordHash, err = HashPassword(password, s.cfg.PasswordCost); err != nil {
			return nil, err
		}
		endLogins = true
	}
	if req.Active != nil {
		endLogins = endLogins || (u.Active && !*req.Active)
		u.Active = *req.Active
	}
	now := s.now().UTC()
	u.UpdatedAt = now
	if err := s.store.UpdateUser(ctx, u, sync.UserAudit(by, &before, u, now)); err != nil {
		return nil, err
	}
	if endLogins {
		if err := s.store.RevokeUserLogins(ctx, u.ID, now); err != nil {
			return nil, err
		}
	}
	s.log.Info("user updated", slog.String("user_id", u.ID), slog.String("by", by.UserID), slog.Bool("logins_ended", endLogins))
	return u, nil
}

func (s *Server) userParam(c *fiber.Ctx) (*schema.User, error) {
	u, err := s.store.User(c.UserContext(), c.Params("id"))
	if errors.Is(err, sync.ErrNotFound) {
		return nil, schema.Errorf(schema.CodeNotFound, "no such user")
	}
	return u, err
}

// NewUser checks and builds a new active user with a password hashed at
// cost (0: DefaultPasswordCost).
func NewUser(username, password string, role schema.Role, territories []string, distributorID string, now time.Time, cost int) (*schema.User, error) {
	now = now.UTC()
	u := &schema.User{
		ID: uuid.NewString(), Username: username, Role: role, Territories: territories,
		DistributorID: distributorID, Active: true, CreatedAt: now, UpdatedAt: now,
	}
	if u.Territories == nil {
		u.Territories = []string{}
	}
	if err := schema.CheckUser(u, password); err != nil {
		return nil, err
	}
	hash, err := HashPassword(password, cost)
	if err != nil {
		return nil, err
	}
	u.PasswordHash = hash
	return u, nil
}

// EnsureAdmin creates a first admin when the store has no user at all. It
// does nothing when users exist, and is safe to run from several
// instances starting at once. It refuses an empty password: such an admin
// could never sign in. Its password is hashed at cost (0:
// DefaultPasswordCost).
func EnsureAdmin(ctx context.Context, store FirstUserStore, username, password string, now time.Time, cost int) (created bool, err error) {
	if password == "" {
		return false, schema.FieldErrorf(schema.CodeValidationFailed, "password", "the first admin needs a password")
	}
	n, err := store.CountUsers(ctx)
	if err != nil || n > 0 {
		return false, err
	}
	u, err := NewUser(username, password, schema.RoleAdmin, nil, "", now, cost)
	if err != nil {
		return false, fmt.Errorf("first admin: %w", err)
	}
	// The first admin is made by the system, not by a user: no user_id.
	err = store.CreateUser(ctx, u, sync.UserAudit(schema.Principal{}, nil, u, now))
	if errors.Is(err, sync.ErrExists) {
		return false, nil
	}
	return err == nil, err
}
