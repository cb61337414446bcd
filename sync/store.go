package sync

import (
	"context"
	"errors"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// Sentinel errors that store methods return for expected conditions.
var (
	// ErrNotFound: no such user, login or record.
	ErrNotFound = errors.New("sync: not found")
	// ErrExists: a user with that username already exists.
	ErrExists = errors.New("sync: already exists")
	// ErrStale: a guarded write lost to a concurrent one.
	ErrStale = errors.New("sync: stale")
)

// Login is one sign-in of a user on a device. Its refresh tokens rotate:
// only the token of the current Generation is good, and presenting an
// older one revokes the login.
type Login struct {
	ID         string
	UserID     string
	DeviceID   string
	Generation int64
	CreatedAt  time.Time
	RevokedAt  time.Time // zero while the login is good
}

// Revoked reports whether the login has been revoked.
func (l *Login) Revoked() bool { return !l.RevokedAt.IsZero() }

// UserFilter selects users for UserStore.ListUsers; its zero value selects
// every user.
type UserFilter struct {
	Role      schema.Role // only users of this role, when not empty
	Territory string      // only users with this territory, when not empty
	Active    *bool       // only active (or only inactive) users, when set
	After     string      // only users whose id sorts after this one
	Limit     int         // at most this many users; 0 for all
}

// UserStore keeps users, their logins and failed-login counters.
// Implementations must be safe for concurrent use by several processes.
type UserStore interface {
	// CreateUser stores a new user; ErrExists when the username is taken.
	CreateUser(ctx context.Context, u *schema.User) error
	// UpdateUser replaces a user's role, territories, distributor,
	// password hash, active flag and UpdatedAt; ErrNotFound when missing.
	UpdateUser(ctx context.Context, u *schema.User) error
	// User returns a user by id; ErrNotFound when missing.
	User(ctx context.Context, id string) (*schema.User, error)
	// UserByName returns a user by username; ErrNotFound when missing.
	UserByName(ctx context.Context, username string) (*schema.User, error)
	// CountUsers returns how many users exist.
	CountUsers(ctx context.Context) (int, error)
	// Users returns every user, in id order.
	Users(ctx context.Context) ([]*schema.User, error)
	// ListUsers returns the users that f selects, in id order.
	ListUsers(ctx context.Context, f UserFilter) ([]*schema.User, error)

	// CreateLogin stores a new login.
	CreateLogin(ctx context.Context, l *Login) error
	// Login returns a login by id; ErrNotFound when missing.
	Login(ctx context.Context, id string) (*Login, error)
	// AdvanceLogin moves a good login from generation from to from+1;
	// ErrStale when the login is revoked or no longer at from.
	AdvanceLogin(ctx context.Context, id string, from int64) error
	// RevokeLogin revokes one login (no error if already revoked).
	RevokeLogin(ctx context.Context, id string, at time.Time) error
	// RevokeUserLogins revokes every login of a user.
	RevokeUserLogins(ctx context.Context, userID string, at time.Time) error

	// NoteLoginFailure counts a failed login for username within a window
	// that starts at the first failure and lasts window, and returns the
	// count and when the window ends.
	NoteLoginFailure(ctx context.Context, username string, now time.Time, window time.Duration) (int, time.Time, error)
	// LoginFailures returns the failures counted for username in the
	// window open at now, and when it ends.
	LoginFailures(ctx context.Context, username string, now time.Time) (int, time.Time, error)
	// ClearLoginFailures forgets the failures of username.
	ClearLoginFailures(ctx context.Context, username string) error
}

// Store is everything fieldsync keeps in its record store.
type Store interface {
	UserStore
	RecordStore
	ReportStore
	// Ping reports whether the store answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources.
	Close() error
}

// TableSize is the room one table, collection or index of a record store
// takes, as the store's engine reports it, so that operators can see where
// the bytes go.
type TableSize struct {
	// Name is the table, collection or index name.
	Name string
	// Kind is "table" for a table or collection, "index" for an index and
	// "free" for space the engine holds but no table uses.
	Kind string
	// Table is the table an index belongs to; Name for a table.
	Table string
	// Rows is how many rows (documents) Table holds.
	Rows int64
	// Bytes is the space Name takes.
	Bytes int64
}

// The kinds of TableSize.
const (
	SizeTable = "table"
	SizeIndex = "index"
	SizeFree  = "free"
)
