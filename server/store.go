package server

import (
	"context"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/server/console"
	"github.com/fieldsync/fieldsync/sync"
)

// Store is what the server itself keeps in the record store: users, their
// logins and failed-login counters, for sign-in and the admin endpoints,
// the change feed that the watcher of live streams reads, and the records
// and facts the console shows. Records go
// through the engine and reports through report.Reports. The
// adapters beneath sync implement it; implementations must be safe for
// concurrent use by several processes.
type Store interface {
	Pinger
	FirstUserStore
	sync.FeedReader
	// Records is what the console reads of records and facts.
	console.Records
	// Users returns every user, in id order.
	Users(ctx context.Context) ([]*schema.User, error)
	// UpdateUser replaces a user's role, territories, distributor,
	// password hash, active flag and UpdatedAt; sync.ErrNotFound when
	// missing.
	UpdateUser(ctx context.Context, u *schema.User, audit ...sync.AuditEntry) error
	// User returns a user by id; sync.ErrNotFound when missing.
	User(ctx context.Context, id string) (*schema.User, error)
	// UserByName returns a user by username; sync.ErrNotFound when missing.
	UserByName(ctx context.Context, username string) (*schema.User, error)
	// ListUsers returns the users that f selects, in id order.
	ListUsers(ctx context.Context, f sync.UserFilter) ([]*schema.User, error)

	// CreateLogin stores a new login.
	CreateLogin(ctx context.Context, l *sync.Login, audit ...sync.AuditEntry) error
	// Login returns a login by id; sync.ErrNotFound when missing.
	Login(ctx context.Context, id string) (*sync.Login, error)
	// LoginUser returns a login and its user, as they are now, in one
	// read where the store can join them; sync.ErrNotFound when either is
	// missing. Every authenticated request asks it, and nothing of it is
	// cached: a logout, a deactivation or a role change counts from the
	// next request on.
	LoginUser(ctx context.Context, id string) (*sync.Login, *schema.User, error)
	// AdvanceLogin moves a good login from generation from to from+1;
	// sync.ErrStale when the login is revoked or no longer at from.
	AdvanceLogin(ctx context.Context, id string, from int64) error
	// RevokeLogin revokes one login (no error if already revoked).
	RevokeLogin(ctx context.Context, id string, at time.Time, audit ...sync.AuditEntry) error
	// RevokeUserLogins revokes every login of a user.
	RevokeUserLogins(ctx context.Context, userID string, at time.Time) error

	// NoteLoginFailure counts a failed login for username within a window
	// that starts at the first failure and lasts window, and returns the
	// count and when the window ends.
	NoteLoginFailure(ctx context.Context, username string, now time.Time, window time.Duration, audit ...sync.AuditEntry) (int, time.Time, error)
	// LoginFailures returns the failures counted for username in the
	// window open at now, and when it ends.
	LoginFailures(ctx context.Context, username string, now time.Time) (int, time.Time, error)
	// ClearLoginFailures forgets the failures of username.
	ClearLoginFailures(ctx context.Context, username string) error
}

// FirstUserStore is what EnsureAdmin needs: a count of users and a way to
// create one.
type FirstUserStore interface {
	// CreateUser stores a new user; sync.ErrExists when the username is
	// taken.
	CreateUser(ctx context.Context, u *schema.User, audit ...sync.AuditEntry) error
	// CountUsers returns how many users exist.
	CountUsers(ctx context.Context) (int, error)
}
