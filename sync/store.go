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

// UserFilter selects users for a store's ListUsers; its zero value selects
// every user.
type UserFilter struct {
	Role      schema.Role // only users of this role, when not empty
	Territory string      // only users with this territory, when not empty
	Active    *bool       // only active (or only inactive) users, when set
	After     string      // only users whose id sorts after this one
	Limit     int         // at most this many users; 0 for all
}

// Store is what the engine needs of the record store: records and their
// change feed, their audit trail, users (to check a route plan's or a
// target's rep), and a note of each device's last sync. Reports read the
// same store through their own interface (sync/report.Store).
// Implementations must be safe for concurrent use by several processes
// sharing the store.
type Store interface {
	RecordStore
	AuditStore
	// User returns a user by id; ErrNotFound when missing.
	User(ctx context.Context, id string) (*schema.User, error)
	// NoteDeviceSync records that a user's device pushed (push true) or
	// pulled at a time; an older time never replaces a newer one.
	NoteDeviceSync(ctx context.Context, userID, deviceID string, push bool, at time.Time) error
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

// CommitGroups tells how a store that commits writes in groups has
// grouped them since it opened: Units of work committed in Transactions,
// and, for each bound of Bounds, how many transactions held at most that
// many units (cumulative counts, as a Prometheus histogram keeps them).
type CommitGroups struct {
	Transactions uint64
	Units        uint64
	Bounds       []float64
	AtMost       []uint64
}
