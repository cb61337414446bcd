package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// DefaultPasswordCost is the work factor of new password hashes unless
// set: bcrypt's default, about 60 ms of one core here. A hash keeps the
// cost it was made with, so a change applies to passwords set after it.
const DefaultPasswordCost = bcrypt.DefaultCost

// checkPasswordCost refuses a work factor bcrypt does not take; 0 stands
// for DefaultPasswordCost.
func checkPasswordCost(cost int) (int, error) {
	switch {
	case cost == 0:
		return DefaultPasswordCost, nil
	case cost < bcrypt.MinCost || cost > bcrypt.MaxCost:
		return 0, fmt.Errorf("password cost %d is outside bcrypt's %d to %d", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return cost, nil
}

// HashPassword returns the bcrypt hash of a password at a work factor;
// 0 stands for DefaultPasswordCost.
func HashPassword(password string, cost int) (string, error) {
	cost, err := checkPasswordCost(cost)
	if err != nil {
		return "", err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

var (
	errBadCredentials = schema.Errorf(schema.CodeUnauthorized, "wrong username or password")
	errBadRefresh     = schema.Errorf(schema.CodeUnauthorized, "refresh token is not valid")
)

// login checks a username and password and opens a login on a device.
func (s *Server) login(c *fiber.Ctx) error {
	var req schema.LoginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	switch {
	case req.Username == "" || len(req.Username) > schema.MaxUsernameLength:
		return schema.FieldErrorf(schema.CodeValidationFailed, "username", "username is required")
	case req.Password == "" || len(req.Password) > 1024:
		return schema.FieldErrorf(schema.CodeValidationFailed, "password", "password is required")
	case !schema.CheckID(req.DeviceID):
		return schema.FieldErrorf(schema.CodeValidationFailed, "device_id", "device_id must be 1 to %d letters, digits or . _ : -", schema.MaxIDLength)
	}
	// A sign-in may wait for its turn: one whose client goes away leaves
	// the queue.
	ctx, stop := whileConnected(c)
	defer stop()
	u, l, err := s.signIn(ctx, c.IP(), req.Username, req.Password, req.DeviceID)
	var later interface{ retryAfter() int }
	if errors.As(err, &later) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(later.retryAfter()))
	}
	if err != nil {
		return err
	}
	return s.issue(c, u, l)
}

// signIn checks a username and password from an address under the
// failed sign-in throttle and opens a login on a device. It is shared by
// the API and the console, so both count failures and record logins
// alike. A sign-in that comes too soon after failures gets a *slowDown;
// one that finds the sign-in queue full gets a *busy; one whose ctx ends
// while it waits for its turn is not checked.
func (s *Server) signIn(ctx context.Context, addr, username, password, deviceID string) (*schema.User, *sync.Login, error) {
	now := s.now()
	key := throttleKey(addr, username)
	failures, until, err := s.store.LoginFailures(ctx, key, now)
	if err != nil {
		return nil, nil, err
	}
	if wait := s.throttleWait(failures, until, now); wait > 0 {
		return nil, nil, newSlowDown(wait)
	}
	u, err := s.store.UserByName(ctx, username)
	hash := s.dummyHash
	if err == nil {
		hash = []byte(u.PasswordHash)
	} else if !errors.Is(err, sync.ErrNotFound) {
		return nil, nil, err
	}
	match, err := s.checkPassword(ctx, addr, hash, password)
	if err != nil {
		return nil, nil, err
	}
	if u == nil || !match || !u.Active {
		userID := ""
		if u != nil {
			userID = u.ID
		}
		n, _, err := s.store.NoteLoginFailure(ctx, key, now, s.cfg.LoginFailureWindow,
			sync.LoginAudit(sync.AuditLoginFailed, userID, deviceID, "", now))
		if err != nil {
			return nil, nil, err
		}
		s.log.Info("login refused", slog.Int("failures", n))
		return nil, nil, errBadCredentials
	}
	if failures > 0 {
		if err := s.store.ClearLoginFailures(ctx, key); err != nil {
			return nil, nil, err
		}
	}
	l := &sync.Login{ID: uuid.NewString(), UserID: u.ID, DeviceID: deviceID, Generation: 1, CreatedAt: now.UTC()}
	if err := s.store.CreateLogin(ctx, l, sync.LoginAudit(sync.AuditLogin, u.ID, l.DeviceID, l.ID, now)); err != nil {
		return nil, nil, err
	}
	s.log.Info("login", slog.String("user_id", u.ID), slog.String("login_id", l.ID))
	return u, l, nil
}

// slowDown refuses a sign-in that comes before its username and address
// may try again; secs is how long to wait.
type slowDown struct {
	secs int
	err  *schema.Error
}

func newSlowDown(wait time.Duration) *slowDown {
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	return &slowDown{secs: secs, err: schema.Errorf(schema.CodeRateLimited, "too many failed sign-ins for this username from this address; try again in %d seconds", secs)}
}

func (e *slowDown) Error() string { return e.err.Error() }

// retryAfter is the Retry-After of the refusal.
func (e *slowDown) retryAfter() int { return e.secs }

// Unwrap lets the refusal answer as the rate_limited error it carries.
func (e *slowDown) Unwrap() error { return e.err }

// refresh trades the current refresh token of a login for a new pair. An
// older token of the login means it was stolen or replayed: the whole
// login is revoked.
func (s *Server) refresh(c *fiber.Ctx) error {
	var req schema.RefreshRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	loginID, gen, ok := s.tokens.parseRefresh(req.RefreshToken)
	if !ok {
		return errBadRefresh
	}
	ctx := c.UserContext()
	l, err := s.store.Login(ctx, loginID)
	if errors.Is(err, sync.ErrNotFound) {
		return errBadRefresh
	}
	if err != nil {
		return err
	}
	if l.Revoked() {
		return errBadRefresh
	}
	if gen != l.Generation {
		return s.revokeReused(ctx, l)
	}
	u, err := s.activeUser(ctx, l.UserID)
	if err != nil {
		return err
	}
	err = s.store.AdvanceLogin(ctx, l.ID, gen)
	if errors.Is(err, sync.ErrStale) {
		return s.revokeReused(ctx, l) // another request used the same token first
	}
	if err != nil {
		return err
	}
	l.Generation = gen + 1
	return s.issue(c, u, l)
}

func (s *Server) revokeReused(ctx context.Context, l *sync.Login) error {
	if err := s.store.RevokeLogin(ctx, l.ID, s.now().UTC()); err != nil {
		return err
	}
	s.log.Warn("refresh token reused; login revoked", slog.String("user_id", l.UserID), slog.String("login_id", l.ID))
	return schema.Errorf(schema.CodeUnauthorized, "refresh token was already used; every token of this login is revoked")
}

// issue answers with a new token pair for a login.
func (s *Server) issue(c *fiber.Ctx, u *schema.User, l *sync.Login) error {
	access, err := s.tokens.access(accessClaims{
		RegisteredClaims: jwtSubject(u.ID, l.ID, l.Generation),
		Role:             string(u.Role),
		DeviceID:         l.DeviceID,
		LoginID:          l.ID,
	})
	if err != nil {
		return err
	}
	return c.JSON(schema.TokenResponse{
		AccessToken:  access,
		RefreshToken: s.tokens.refresh(l.ID, l.Generation),
		TokenType:    "Bearer",
		ExpiresIn:    int(s.cfg.AccessTTL.Seconds()),
		User:         u,
	})
}

// logout revokes the caller's login.
func (s *Server) logout(c *fiber.Ctx) error {
	p := principal(c)
	now := s.now().UTC()
	if err := s.store.RevokeLogin(c.UserContext(), p.LoginID, now, sync.LoginAudit(sync.AuditLogout, p.UserID, p.DeviceID, p.LoginID, now)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// activeUser returns a user who may still act; unauthorized otherwise.
func (s *Server) activeUser(ctx context.Context, id string) (*schema.User, error) {
	u, err := s.store.User(ctx, id)
	if errors.Is(err, sync.ErrNotFound) {
		return nil, schema.Errorf(schema.CodeUnauthorized, "user no longer exists")
	}
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return nil, schema.Errorf(schema.CodeUnauthorized, "user is deactivated")
	}
	return u, nil
}

// Keys of what authenticate leaves for handlers.
const (
	principalKey = "fieldsync.principal"
	expiryKey    = "fieldsync.expiry"
)

// authenticate lets a request through only with a good access token of a
// login that is not revoked, of a user who is active. The caller's role and
// territories come from the store, not from the token.
func (s *Server) authenticate(c *fiber.Ctx) error {
	h := c.Get(fiber.HeaderAuthorization)
	scheme, token, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return schema.Errorf(schema.CodeUnauthorized, "missing bearer token")
	}
	claims, err := s.tokens.parseAccess(strings.TrimSpace(token))
	if errors.Is(err, errTokenExpired) {
		return schema.Errorf(schema.CodeUnauthorized, "access token expired")
	}
	if err != nil {
		return schema.Errorf(schema.CodeUnauthorized, "access token is not valid")
	}
	p, err := s.caller(c.UserContext(), claims.Subject, claims.LoginID)
	if err != nil {
		return err
	}
	c.Locals(principalKey, p)
	c.Locals(expiryKey, claims.ExpiresAt.Time)
	return c.Next()
}

// caller returns who a user is now under a login: unauthorized when the
// login is revoked or not the user's, or the user is gone or deactivated.
func (s *Server) caller(ctx context.Context, userID, loginID string) (*schema.Principal, error) {
	l, u, err := s.session(ctx, loginID)
	if err != nil {
		return nil, err
	}
	if l.UserID != userID {
		return nil, errLoginGone
	}
	p := u.Principal(l.DeviceID, l.ID)
	return &p, nil
}

var errLoginGone = schema.Errorf(schema.CodeUnauthorized, "login is no longer valid")

// session returns a login that is not revoked and its user, who is
// active, as they are now: one store read, on every request, and nothing
// of it kept, so that a logout, a deactivation or a role change counts
// from the next request on. Unauthorized otherwise.
func (s *Server) session(ctx context.Context, loginID string) (*sync.Login, *schema.User, error) {
	l, u, err := s.store.LoginUser(ctx, loginID)
	if errors.Is(err, sync.ErrNotFound) || (err == nil && l.Revoked()) {
		return nil, nil, errLoginGone
	}
	if err != nil {
		return nil, nil, err
	}
	if !u.Active {
		return nil, nil, schema.Errorf(schema.CodeUnauthorized, "user is deactivated")
	}
	return l, u, nil
}

// expiry returns when the caller's access token expires; only behind
// authenticate.
func expiry(c *fiber.Ctx) time.Time {
	t, _ := c.Locals(expiryKey).(time.Time)
	return t
}

// principal returns the authenticated caller; only behind authenticate.
func principal(c *fiber.Ctx) *schema.Principal {
	p, _ := c.Locals(principalKey).(*schema.Principal)
	if p == nil {
		panic("server: principal asked for outside authenticate")
	}
	return p
}

// requireRole lets through only callers with one of the roles.
func requireRole(roles ...schema.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := principal(c)
		for _, r := range roles {
			if p.Role == r {
				return c.Next()
			}
		}
		return schema.Errorf(schema.CodeForbidden, "this endpoint is not for the %s role", p.Role)
	}
}

// checkPassword compares a password with its hash once the sign-in gate
// lets it: the check is what the gate's slots stand for, the store's reads
// and writes around it are not held up by it.
func (s *Server) checkPassword(ctx context.Context, addr string, hash []byte, password string) (bool, error) {
	release, err := s.signIns.acquire(ctx, addr)
	if err != nil {
		return false, err
	}
	defer release()
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil, nil
}
