// Package mongostore is the production record store: MongoDB through the
// official driver, shared by several fieldsync processes.
//
// It uses neither multi-document transactions nor change streams, so that
// it runs on a single node as well as on a replica set or sharded cluster,
// and it keeps nothing that matters in one process's memory. Every write is
// one atomic document write guarded by a version; the change feed's stable
// watermark comes from a dense sequence of seqs kept in the database, with
// a lease for seqs whose writer went away (see feed.go).
//
// Report facts live in their records' documents and are found through a
// collection that indexes them (see reports.go).
//
// It keeps to what FerretDB v1 (its test double) also does right: finds
// with filter, sort and limit; inserts; updates, replaces and deletes keyed
// on _id and guarded by other fields; simple counts. Joins and merges
// happen in Go.
package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"
	"go.mongodb.org/mongo-driver/x/mongo/driver/topology"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

var _ sync.Store = (*Store)(nil)

// DefaultLease is how long a writer may hold a seq before others may
// resolve it, when Store.Lease is zero. It bounds how long a writer that
// crashed mid-write holds the change feed back.
const DefaultLease = 10 * time.Second

// Store is the MongoDB record store. It is safe for concurrent use, and
// several processes may share one database. Set its fields, if at all,
// before first use.
type Store struct {
	// Now is the clock that seq leases are measured with; time.Now when
	// nil. Processes sharing a database should have clocks that agree to
	// well within Lease.
	Now func() time.Time
	// Lease is how long a writer may hold a seq pending before anyone
	// computing the watermark may resolve it; DefaultLease when zero.
	Lease time.Duration
	// MoveBatch is how many writes of a territory move go out together,
	// and so bounds how many records a move's writer holds (see moves.go);
	// DefaultMoveBatch when zero.
	MoveBatch int

	// stall, when set, runs in Put between taking a seq and writing at
	// it: tests use it to make writers outlive their leases.
	stall func()
	// afterMoveBatch, when set, runs after each batch of a move with how
	// far its plan is applied; an error stops the move there, as a crash
	// would (see moves.go).
	afterMoveBatch func(applied int) error
	// afterHold, when set, runs after each Put of a unit with how many
	// record documents the unit holds.
	afterHold func(held int)

	client *mongo.Client
	owned  bool // Close disconnects client
	db     *mongo.Database

	users, logins, failures *mongo.Collection
	records, gone, answers  *mongo.Collection
	seqs                    *mongo.Collection
	facts, devices          *mongo.Collection
	audit, meta             *mongo.Collection
	proofs, moveItems       *mongo.Collection
}

// DefaultDatabase is the database Open uses when the URI names none.
const DefaultDatabase = "fieldsync"

// Open connects to the MongoDB at uri, checks that it answers, and brings
// the indexes up to date in the database the uri's path names
// (DefaultDatabase when it names none). Close disconnects.
func Open(ctx context.Context, uri string) (*Store, error) {
	const op = "mongostore.Open"
	cs, err := connstring.Parse(uri)
	if err != nil {
		// The parser's message may quote the URI and its password.
		return nil, fmt.Errorf("%s: the MongoDB URI is not valid", op)
	}
	database := cs.Database
	if database == "" {
		database = DefaultDatabase
	}
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fail(op, err)
	}
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		client.Disconnect(context.Background())
		return nil, fail(op, err)
	}
	s, err := New(ctx, client, database)
	if err != nil {
		client.Disconnect(context.Background())
		return nil, err
	}
	s.owned = true
	return s, nil
}

// New returns a store on database through client, which stays the
// caller's: Close leaves it connected. It brings the indexes up to date.
func New(ctx context.Context, client *mongo.Client, database string) (*Store, error) {
	db := client.Database(database)
	s := &Store{
		client:    client,
		db:        db,
		users:     db.Collection("users"),
		logins:    db.Collection("logins"),
		failures:  db.Collection("login_failures"),
		records:   db.Collection("records"),
		gone:      db.Collection("gone"),
		answers:   db.Collection("answers"),
		seqs:      db.Collection("seqs"),
		facts:     db.Collection("facts"),
		devices:   db.Collection("device_syncs"),
		audit:     db.Collection("audit"),
		meta:      db.Collection("meta"),
		proofs:    db.Collection("photo_proofs"),
		moveItems: db.Collection("move_items"),
	}
	if err := s.createIndexes(ctx); err != nil {
		return nil, fail("mongostore.New", err)
	}
	return s, nil
}

// createIndexes creates every index the store queries by; creating one
// that exists does nothing.
func (s *Store) createIndexes(ctx context.Context) error {
	unique := options.Index().SetUnique(true)
	for _, ix := range []struct {
		coll *mongo.Collection
		keys []string
		opts *options.IndexOptions
	}{
		{s.users, []string{"username"}, unique},
		{s.logins, []string{"user_id"}, nil},
		{s.records, []string{"tokens", "seq"}, nil},
		{s.records, []string{"coll", "refs", "rid"}, nil},
		{s.records, []string{"seq"}, nil},
		{s.gone, []string{"token", "seq"}, nil},
		{s.gone, []string{"coll", "rid", "token"}, nil},
		{s.gone, []string{"seq"}, nil},
		{s.answers, []string{"at"}, nil},
		{s.seqs, []string{"state", "_id"}, nil},
		{s.moveItems, []string{"hold", "n"}, nil},
		{s.facts, []string{"kind", "territory", "at"}, nil},
		{s.facts, []string{"kind", "customer", "at"}, nil},
		{s.facts, []string{"kind", "rep", "at"}, nil},
		{s.facts, []string{"rec", "seq"}, nil},
		{s.devices, []string{"user", "device"}, nil},
		{s.audit, []string{"at", "_id"}, nil},
		{s.users, []string{"audit_at"}, nil},
		{s.logins, []string{"audit_at"}, nil},
		{s.failures, []string{"audit_at"}, nil},
		{s.audit, []string{"coll", "rid", "at"}, nil},
		{s.audit, []string{"user_id", "at"}, nil},
	} {
		if _, err := ix.coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: ascending(ix.keys...), Options: ix.opts}); err != nil {
			return fmt.Errorf("index %s %v: %w", ix.coll.Name(), ix.keys, err)
		}
	}
	return nil
}

// Close disconnects the client if Open made it.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		return fail("mongostore.Close", err)
	}
	return nil
}

// Ping reports whether the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fail("mongostore.Ping", err)
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) lease() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return DefaultLease
}

// ascending is an index key or sort order on fields, each ascending.
func ascending(fields ...string) bson.D {
	d := make(bson.D, len(fields))
	for i, f := range fields {
		d[i] = bson.E{Key: f, Value: 1}
	}
	return d
}

// findOne decodes into v the first document of c matching filter, in the
// order of sort when not nil; sync.ErrNotFound when there is none, other
// errors wrapped with op.
func findOne(ctx context.Context, op string, c *mongo.Collection, filter, sort, v any) error {
	opts := options.FindOne()
	if sort != nil {
		opts.SetSort(sort)
	}
	err := c.FindOne(ctx, filter, opts).Decode(v)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return sync.ErrNotFound
	}
	if err != nil {
		return fail(op, err)
	}
	return nil
}

// matchedOne turns an update's result into nil when it matched a
// document and into none when it matched nothing.
func matchedOne(op string, res *mongo.UpdateResult, err error, none error) error {
	if err != nil {
		return fail(op, err)
	}
	if res.MatchedCount == 0 {
		return none
	}
	return nil
}

// nanos is t in Unix nanoseconds, 0 for the zero time; fromNanos undoes it
// in UTC.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// fail wraps err with the operation; an error of a MongoDB that cannot be
// reached is marked schema.ErrUnavailable too.
func fail(op string, err error) error {
	if unreachable(err) {
		return fmt.Errorf("%s: %w: %w", op, schema.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unreachable reports whether err says that MongoDB could not be reached:
// a network error, no server selectable in time, or a closed client.
func unreachable(err error) bool {
	var selection topology.ServerSelectionError
	return mongo.IsNetworkError(err) || errors.As(err, &selection) ||
		errors.Is(err, topology.ErrServerSelectionTimeout) || errors.Is(err, mongo.ErrClientDisconnected)
}
