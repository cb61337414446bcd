package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

const userColumns = "id, username, password_hash, role, territories, distributor_id, active, created_at, updated_at"

// CreateUser stores a new user; sync.ErrExists when the username is taken.
func (s *Store) CreateUser(ctx context.Context, u *schema.User, audit ...sync.AuditEntry) error {
	terr, err := json.Marshal(nonNil(u.Territories))
	if err != nil {
		return fmt.Errorf("sqlitestore.CreateUser: %w", err)
	}
	err = s.withAudit(ctx, audit, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO users ("+userColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
			u.ID, u.Username, u.PasswordHash, string(u.Role), string(terr), u.DistributorID, u.Active,
			u.CreatedAt.UnixNano(), u.UpdatedAt.UnixNano())
		return err
	})
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return sync.ErrExists
	}
	if err != nil {
		return fmt.Errorf("sqlitestore.CreateUser: %w", err)
	}
	return nil
}

// UpdateUser replaces what may change of a user; sync.ErrNotFound when missing.
func (s *Store) UpdateUser(ctx context.Context, u *schema.User, audit ...sync.AuditEntry) error {
	terr, err := json.Marshal(nonNil(u.Territories))
	if err != nil {
		return fmt.Errorf("sqlitestore.UpdateUser: %w", err)
	}
	return s.withAudit(ctx, audit, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET password_hash = ?, role = ?, territories = ?,
			distributor_id = ?, active = ?, updated_at = ? WHERE id = ?`,
			u.PasswordHash, string(u.Role), string(terr), u.DistributorID, u.Active, u.UpdatedAt.UnixNano(), u.ID)
		return affectedOne("sqlitestore.UpdateUser", res, err, sync.ErrNotFound)
	})
}

// User returns a user by id.
func (s *Store) User(ctx context.Context, id string) (*schema.User, error) {
	return s.queryUser(ctx, "id", id)
}

// UserByName returns a user by username.
func (s *Store) UserByName(ctx context.Context, username string) (*schema.User, error) {
	return s.queryUser(ctx, "username", username)
}

func (s *Store) queryUser(ctx context.Context, column, value string) (*schema.User, error) {
	u, err := scanUser(s.r.QueryRowContext(ctx, "SELECT "+userColumns+" FROM users WHERE "+column+" = ?", value))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore.User: %w", err)
	}
	return u, nil
}

// scanUser reads userColumns.
func scanUser(sc interface{ Scan(...any) error }) (*schema.User, error) {
	var (
		u                schema.User
		role, terr       string
		created, updated int64
	)
	if err := sc.Scan(&u.ID, &u.Username, &u.PasswordHash, &role, &terr, &u.DistributorID, &u.Active, &created, &updated); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(terr), &u.Territories); err != nil {
		return nil, fmt.Errorf("territories: %w", err)
	}
	u.Role = schema.Role(role)
	u.CreatedAt, u.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return &u, nil
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore.CountUsers: %w", err)
	}
	return n, nil
}

// errAlreadyRevoked rolls back the audit entry of a logout that revoked
// nothing.
var errAlreadyRevoked = errors.New("already revoked")

// CreateLogin stores a new login.
func (s *Store) CreateLogin(ctx context.Context, l *sync.Login, audit ...sync.AuditEntry) error {
	err := s.withAudit(ctx, audit, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO logins (id, user_id, device_id, generation, created_at, revoked_at)
			VALUES (?, ?, ?, ?, ?, ?)`, l.ID, l.UserID, l.DeviceID, l.Generation, l.CreatedAt.UnixNano(), unixNanoOrZero(l.RevokedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlitestore.CreateLogin: %w", err)
	}
	return nil
}

// Login returns a login by id.
func (s *Store) Login(ctx context.Context, id string) (*sync.Login, error) {
	var (
		l                sync.Login
		created, revoked int64
	)
	err := s.r.QueryRowContext(ctx, `SELECT id, user_id, device_id, generation, created_at, revoked_at
		FROM logins WHERE id = ?`, id).Scan(&l.ID, &l.UserID, &l.DeviceID, &l.Generation, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("sqlitestore.Login: %w", err)
	}
	l.CreatedAt = time.Unix(0, created).UTC()
	if revoked != 0 {
		l.RevokedAt = time.Unix(0, revoked).UTC()
	}
	return &l, nil
}

// LoginUser returns a login and its user in one query, the statement
// prepared once: what every authenticated request reads.
func (s *Store) LoginUser(ctx context.Context, id string) (*sync.Login, *schema.User, error) {
	var (
		l                sync.Login
		created, revoked int64
	)
	u, err := scanUser(prefixScanner{s.qr.loginUser.QueryRowContext(ctx, id),
		[]any{&l.ID, &l.UserID, &l.DeviceID, &l.Generation, &created, &revoked}})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, sync.ErrNotFound
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sqlitestore.LoginUser: %w", err)
	}
	l.CreatedAt = time.Unix(0, created).UTC()
	if revoked != 0 {
		l.RevokedAt = time.Unix(0, revoked).UTC()
	}
	return &l, u, nil
}

// loginUserQuery reads a login's columns, then its user's userColumns.
var loginUserQuery = "SELECT l.id, l.user_id, l.device_id, l.generation, l.created_at, l.revoked_at, u." +
	strings.ReplaceAll(userColumns, ", ", ", u.") + " FROM logins l JOIN users u ON u.id = l.user_id WHERE l.id = ?"

// prefixScanner scans into extra before the destinations it is given.
type prefixScanner struct {
	sc    interface{ Scan(...any) error }
	extra []any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.sc.Scan(append(p.extra, dest...)...)
}

// AdvanceLogin moves a good login from generation from to from+1.
func (s *Store) AdvanceLogin(ctx context.Context, id string, from int64) error {
	res, err := s.w.ExecContext(ctx, `UPDATE logins SET generation = generation + 1
		WHERE id = ? AND generation = ? AND revoked_at = 0`, id, from)
	return affectedOne("sqlitestore.AdvanceLogin", res, err, sync.ErrStale)
}

// RevokeLogin revokes one login.
func (s *Store) RevokeLogin(ctx context.Context, id string, at time.Time, audit ...sync.AuditEntry) error {
	err := s.withAudit(ctx, audit, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE logins SET revoked_at = ? WHERE id = ? AND revoked_at = 0", at.UnixNano(), id)
		if n, _ := res.RowsAffected(); err == nil && n == 0 {
			return errAlreadyRevoked
		}
		return err
	})
	if errors.Is(err, errAlreadyRevoked) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlitestore.RevokeLogin: %w", err)
	}
	return nil
}

// RevokeUserLogins revokes every login of a user.
func (s *Store) RevokeUserLogins(ctx context.Context, userID string, at time.Time) error {
	_, err := s.w.ExecContext(ctx, "UPDATE logins SET revoked_at = ? WHERE user_id = ? AND revoked_at = 0", at.UnixNano(), userID)
	if err != nil {
		return fmt.Errorf("sqlitestore.RevokeUserLogins: %w", err)
	}
	return nil
}

// NoteLoginFailure counts one failed login for username.
func (s *Store) NoteLoginFailure(ctx context.Context, username string, now time.Time, window time.Duration, audit ...sync.AuditEntry) (int, time.Time, error) {
	var (
		count int
		end   int64
	)
	err := s.withAudit(ctx, audit, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO login_failures (username, count, window_end) VALUES (?, 1, ?)
		ON CONFLICT (username) DO UPDATE SET
			count = CASE WHEN window_end <= ? THEN 1 ELSE count + 1 END,
			window_end = CASE WHEN window_end <= ? THEN excluded.window_end ELSE window_end END
		RETURNING count, window_end`,
			username, now.Add(window).UnixNano(), now.UnixNano(), now.UnixNano()).Scan(&count, &end)
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlitestore.NoteLoginFailure: %w", err)
	}
	return count, time.Unix(0, end).UTC(), nil
}

// LoginFailures returns the failures counted for username in the window open at now.
func (s *Store) LoginFailures(ctx context.Context, username string, now time.Time) (int, time.Time, error) {
	var (
		count int
		end   int64
	)
	err := s.r.QueryRowContext(ctx, "SELECT count, window_end FROM login_failures WHERE username = ? AND window_end > ?",
		username, now.UnixNano()).Scan(&count, &end)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("sqlitestore.LoginFailures: %w", err)
	}
	return count, time.Unix(0, end).UTC(), nil
}

// ClearLoginFailures forgets the failures of username.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) error {
	if _, err := s.w.ExecContext(ctx, "DELETE FROM login_failures WHERE username = ?", username); err != nil {
		return fmt.Errorf("sqlitestore.ClearLoginFailures: %w", err)
	}
	return nil
}

// affectedOne turns an update's result into nil when it changed a row and
// into none when it changed nothing.
func affectedOne(op string, res sql.Result, err error, none error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return none
	}
	return nil
}

func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
