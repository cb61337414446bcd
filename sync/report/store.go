// Package report answers the questions managers ask of the field: visit
// coverage against route plans, customers nobody visited, when devices
// last synced, each rep's day (daily), targets against what was sold and
// visited (targets), and customers near their credit limit (credit).
//
// Reports are their own concern, not the sync engine's: they never write,
// and they read only the facts (sync.Fact) that the engine derives from
// each record when it writes it, plus users, device sync times and (for
// the daily report) the day's visit and photo records. The
// package sits beneath sync because those facts live in the sync store:
// Store is the part of it reports read, and each store adapter
// (sync/sqlitestore, sync/mongostore) implements it next to sync.Store,
// checked by the same conformance suite (sync/storetest).
package report

import (
	"context"
	"time"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Store finds the facts reports count, through indexes, and the users and
// device sync times reports show. Implementations must be safe for
// concurrent use by several processes sharing the store.
type Store interface {
	// Facts returns, in no order, the facts of a kind whose territory is
	// one of territories (any, when territories is nil) and whose At is in
	// [from, to).
	Facts(ctx context.Context, kind string, territories []string, from, to time.Time) ([]sync.Fact, error)
	// RepFacts returns, in no order, the facts of a kind about a rep whose
	// At is in [from, to).
	RepFacts(ctx context.Context, kind, rep string, from, to time.Time) ([]sync.Fact, error)
	// View runs fn in a read-only snapshot of the records (the daily
	// report reads a day's visits and their photos).
	View(ctx context.Context, fn func(tx sync.RecordTx) error) error
	// LatestFact returns the fact of a kind about a customer with the
	// latest At, or sync.ErrNotFound.
	LatestFact(ctx context.Context, kind, customerID string) (*sync.Fact, error)
	// CoverageCounts counts, per rep, what the coverage report shows, for
	// the facts of territories (all, when nil) on the days of q.
	CoverageCounts(ctx context.Context, q CoverageQuery) ([]RepCoverage, error)
	// DeviceSyncs returns when every device last pushed and pulled.
	DeviceSyncs(ctx context.Context) ([]DeviceSync, error)
	// Users returns every user, in id order.
	Users(ctx context.Context) ([]*schema.User, error)
}

// Reports reads reports from a Store. It keeps no state between calls.
type Reports struct {
	store Store
	now   func() time.Time
}

// New returns the reports of store; now is the clock (nil: time.Now).
func New(store Store, now func() time.Time) *Reports {
	if now == nil {
		now = time.Now
	}
	return &Reports{store: store, now: now}
}

// DeviceSync is when one user's device last pushed and pulled; zero times
// for never.
type DeviceSync struct {
	UserID     string
	DeviceID   string
	LastPushAt time.Time
	LastPullAt time.Time
}

// Day is one local day of a report: its date and the instants it runs
// between, [Start, End).
type Day struct {
	Date       string
	Start, End time.Time
}

// CoverageQuery asks for the coverage counts of some territories (all,
// when nil) over consecutive days.
type CoverageQuery struct {
	Territories []string
	Days        []Day
	// Offset, when set, is the zone's offset from UTC in seconds, the same
	// on every day of the range (no change of clocks in it): a store may
	// then work out a time's local day by arithmetic.
	Offset *int
}

// RepCoverage is what one rep did over a report's days: planned stops and
// those visited (that rep checked in at that customer on that day), visits
// and those without a planned stop, orders (not cancelled) from those
// visits and the visits with one, visits whose geofence is known and
// those within it.
type RepCoverage struct {
	Rep                                   string
	Planned, Visited, Visits, Unplanned   int
	Orders, Struck, GeofenceKnown, Within int
}
