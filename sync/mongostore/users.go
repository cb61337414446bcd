package mongostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// userDoc is a user in the users collection; times are Unix nanoseconds.
type userDoc struct {
	ID            string   `bson:"_id"`
	Username      string   `bson:"username"`
	PasswordHash  string   `bson:"password_hash"`
	Role          string   `bson:"role"`
	Territories   []string `bson:"territories"`
	DistributorID string   `bson:"distributor_id"`
	Active        bool     `bson:"active"`
	CreatedAt     int64    `bson:"created_at"`
	UpdatedAt     int64    `bson:"updated_at"`
	// Audit and AuditAt are the audit entries of the document's latest
	// change and when it was made (see events.go).
	Audit   []auditDoc `bson:"audit,omitempty"`
	AuditAt int64      `bson:"audit_at,omitempty"`
}

func (d *userDoc) user() *schema.User {
	return &schema.User{
		ID: d.ID, Username: d.Username, PasswordHash: d.PasswordHash, Role: schema.Role(d.Role),
		Territories: nonNil(d.Territories), DistributorID: d.DistributorID, Active: d.Active,
		CreatedAt: fromNanos(d.CreatedAt), UpdatedAt: fromNanos(d.UpdatedAt),
	}
}

// CreateUser stores a new user; sync.ErrExists when the username (or the
// id) is taken.
func (s *Store) CreateUser(ctx context.Context, u *schema.User, audit ...sync.AuditEntry) error {
	doc := userDoc{
		ID: u.ID, Username: u.Username, PasswordHash: u.PasswordHash, Role: string(u.Role),
		Territories: nonNil(u.Territories), DistributorID: u.DistributorID, Active: u.Active,
		CreatedAt: nanos(u.CreatedAt), UpdatedAt: nanos(u.UpdatedAt),
	}
	doc.Audit, doc.AuditAt = embedAudit(audit)
	_, err := s.users.InsertOne(ctx, doc)
	if err == nil {
		s.project(ctx, doc.Audit)
	}
	if mongo.IsDuplicateKeyError(err) {
		return sync.ErrExists
	}
	if err != nil {
		return fail("mongostore.CreateUser", err)
	}
	return nil
}

// UpdateUser replaces what may change of a user; sync.ErrNotFound when
// missing.
func (s *Store) UpdateUser(ctx context.Context, u *schema.User, audit ...sync.AuditEntry) error {
	const op = "mongostore.UpdateUser"
	set := bson.M{
		"password_hash": u.PasswordHash, "role": string(u.Role), "territories": nonNil(u.Territories),
		"distributor_id": u.DistributorID, "active": u.Active, "updated_at": nanos(u.UpdatedAt),
	}
	if err := s.replaceAudit(ctx, s.users, u.ID, audit, set); err != nil {
		return fail(op, err)
	}
	res, err := s.users.UpdateOne(ctx, bson.M{"_id": u.ID}, bson.M{"$set": set})
	if err := matchedOne(op, res, err, sync.ErrNotFound); err != nil {
		return err
	}
	s.project(ctx, set["audit"].([]auditDoc))
	return nil
}

// User returns a user by id; sync.ErrNotFound when missing.
func (s *Store) User(ctx context.Context, id string) (*schema.User, error) {
	return s.findUser(ctx, bson.M{"_id": id})
}

// UserByName returns a user by username; sync.ErrNotFound when missing.
func (s *Store) UserByName(ctx context.Context, username string) (*schema.User, error) {
	return s.findUser(ctx, bson.M{"username": username})
}

func (s *Store) findUser(ctx context.Context, filter bson.M) (*schema.User, error) {
	var d userDoc
	if err := findOne(ctx, "mongostore.User", s.users, filter, nil, &d); err != nil {
		return nil, err
	}
	return d.user(), nil
}

// CountUsers returns how many users exist.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	n, err := s.users.CountDocuments(ctx, bson.M{})
	if err != nil {
		return 0, fail("mongostore.CountUsers", err)
	}
	return int(n), nil
}

// Users returns every user, in id order.
func (s *Store) Users(ctx context.Context) ([]*schema.User, error) {
	return s.ListUsers(ctx, sync.UserFilter{})
}

// ListUsers returns the users that f selects, in id order.
func (s *Store) ListUsers(ctx context.Context, f sync.UserFilter) ([]*schema.User, error) {
	const op = "mongostore.ListUsers"
	filter := bson.M{}
	if f.After != "" {
		filter["_id"] = bson.M{"$gt": f.After}
	}
	if f.Role != "" {
		filter["role"] = string(f.Role)
	}
	if f.Territory != "" {
		filter["territories"] = f.Territory
	}
	if f.Active != nil {
		filter["active"] = *f.Active
	}
	opts := options.Find().SetSort(ascending("_id"))
	if f.Limit > 0 {
		opts.SetLimit(int64(f.Limit))
	}
	cur, err := s.users.Find(ctx, filter, opts)
	if err != nil {
		return nil, fail(op, err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fail(op, err)
	}
	out := make([]*schema.User, len(docs))
	for i := range docs {
		out[i] = docs[i].user()
	}
	return out, nil
}

// loginDoc is a login in the logins collection; RevokedAt is 0 while the
// login is good.
type loginDoc struct {
	ID         string `bson:"_id"`
	UserID     string `bson:"user_id"`
	DeviceID   string `bson:"device_id"`
	Generation int64  `bson:"generation"`
	CreatedAt  int64  `bson:"created_at"`
	RevokedAt  int64  `bson:"revoked_at"`
	// Audit and AuditAt are the audit entries of the document's latest
	// change and when it was made (see events.go).
	Audit   []auditDoc `bson:"audit,omitempty"`
	AuditAt int64      `bson:"audit_at,omitempty"`
}

// CreateLogin stores a new login.
func (s *Store) CreateLogin(ctx context.Context, l *sync.Login, audit ...sync.AuditEntry) error {
	doc := loginDoc{
		ID: l.ID, UserID: l.UserID, DeviceID: l.DeviceID, Generation: l.Generation,
		CreatedAt: nanos(l.CreatedAt), RevokedAt: nanos(l.RevokedAt),
	}
	doc.Audit, doc.AuditAt = embedAudit(audit)
	if _, err := s.logins.InsertOne(ctx, doc); err != nil {
		return fail("mongostore.CreateLogin", err)
	}
	s.project(ctx, doc.Audit)
	return nil
}

// Login returns a login by id; sync.ErrNotFound when missing.
func (s *Store) Login(ctx context.Context, id string) (*sync.Login, error) {
	var d loginDoc
	if err := findOne(ctx, "mongostore.Login", s.logins, bson.M{"_id": id}, nil, &d); err != nil {
		return nil, err
	}
	return &sync.Login{
		ID: d.ID, UserID: d.UserID, DeviceID: d.DeviceID, Generation: d.Generation,
		CreatedAt: fromNanos(d.CreatedAt), RevokedAt: fromNanos(d.RevokedAt),
	}, nil
}

// LoginUser returns a login and its user: two finds by _id, since the
// store keeps them apart and joins are not among what every deployment
// answers.
func (s *Store) LoginUser(ctx context.Context, id string) (*sync.Login, *schema.User, error) {
	l, err := s.Login(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	u, err := s.User(ctx, l.UserID)
	if err != nil {
		return nil, nil, err
	}
	return l, u, nil
}

// AdvanceLogin moves a good login from generation from to from+1;
// sync.ErrStale when it is revoked or no longer at from.
func (s *Store) AdvanceLogin(ctx context.Context, id string, from int64) error {
	res, err := s.logins.UpdateOne(ctx, bson.M{"_id": id, "generation": from, "revoked_at": int64(0)},
		bson.M{"$inc": bson.M{"generation": int64(1)}})
	return matchedOne("mongostore.AdvanceLogin", res, err, sync.ErrStale)
}

// RevokeLogin revokes one login; revoking a revoked or missing login does
// nothing.
func (s *Store) RevokeLogin(ctx context.Context, id string, at time.Time, audit ...sync.AuditEntry) error {
	const op = "mongostore.RevokeLogin"
	set := bson.M{"revoked_at": nanos(at)}
	if err := s.replaceAudit(ctx, s.logins, id, audit, set); err != nil && !errors.Is(err, sync.ErrNotFound) {
		return fail(op, err)
	}
	res, err := s.logins.UpdateOne(ctx, bson.M{"_id": id, "revoked_at": int64(0)}, bson.M{"$set": set})
	if err != nil {
		return fail(op, err)
	}
	if res.MatchedCount == 1 {
		s.project(ctx, set["audit"].([]auditDoc))
	}
	return nil
}

// RevokeUserLogins revokes every good login of a user.
func (s *Store) RevokeUserLogins(ctx context.Context, userID string, at time.Time) error {
	_, err := s.logins.UpdateMany(ctx, bson.M{"user_id": userID, "revoked_at": int64(0)}, bson.M{"$set": bson.M{"revoked_at": nanos(at)}})
	if err != nil {
		return fail("mongostore.RevokeUserLogins", err)
	}
	return nil
}

// failureDoc counts the failed logins of one username in the window that
// ends at WindowEnd (Unix nanoseconds).
type failureDoc struct {
	Username  string `bson:"_id"`
	Count     int64  `bson:"count"`
	WindowEnd int64  `bson:"window_end"`
	// Audit and AuditAt are the audit entries of the document's latest
	// change and when it was made (see events.go).
	Audit   []auditDoc `bson:"audit,omitempty"`
	AuditAt int64      `bson:"audit_at,omitempty"`
}

// maxFailureTries bounds the retries of NoteLoginFailure when concurrent
// failures of the same username keep changing its counter.
const maxFailureTries = 100

// NoteLoginFailure counts one failed login for username: in the open
// window if there is one, else as the first of a window that ends window
// after now. It returns the count and when the window ends.
//
// Without transactions it reads the counter, then writes it guarded on
// what it read, and starts over when a concurrent failure got there first.
func (s *Store) NoteLoginFailure(ctx context.Context, username string, now time.Time, window time.Duration, audit ...sync.AuditEntry) (int, time.Time, error) {
	const op = "mongostore.NoteLoginFailure"
	entries, at := embedAudit(audit)
	for range maxFailureTries {
		var d failureDoc
		err := findOne(ctx, op, s.failures, bson.M{"_id": username}, nil, &d)
		if errors.Is(err, sync.ErrNotFound) {
			d = failureDoc{Username: username, Count: 1, WindowEnd: now.Add(window).UnixNano(), Audit: entries, AuditAt: at}
			_, err = s.failures.InsertOne(ctx, d)
			if mongo.IsDuplicateKeyError(err) {
				continue
			}
			if err != nil {
				return 0, time.Time{}, fail(op, err)
			}
			s.project(ctx, entries)
			return 1, fromNanos(d.WindowEnd), nil
		}
		if err != nil {
			return 0, time.Time{}, err
		}
		// The entries the document carries leave it with this write:
		// they go to the audit collection first.
		if err := s.project(ctx, d.Audit); err != nil {
			return 0, time.Time{}, fail(op, err)
		}
		next := failureDoc{Username: username, Count: d.Count + 1, WindowEnd: d.WindowEnd}
		if d.WindowEnd <= now.UnixNano() {
			next.Count, next.WindowEnd = 1, now.Add(window).UnixNano()
		}
		res, err := s.failures.UpdateOne(ctx, bson.M{"_id": username, "count": d.Count, "window_end": d.WindowEnd},
			bson.M{"$set": bson.M{"count": next.Count, "window_end": next.WindowEnd, "audit": entries, "audit_at": at}})
		if err != nil {
			return 0, time.Time{}, fail(op, err)
		}
		if res.MatchedCount == 1 {
			s.project(ctx, entries)
			return int(next.Count), fromNanos(next.WindowEnd), nil
		}
	}
	return 0, time.Time{}, fmt.Errorf("%s: %w", op, sync.ErrStale)
}

// LoginFailures returns the failures counted for username in the window
// open at now, and when it ends.
func (s *Store) LoginFailures(ctx context.Context, username string, now time.Time) (int, time.Time, error) {
	var d failureDoc
	err := findOne(ctx, "mongostore.LoginFailures", s.failures, bson.M{"_id": username, "window_end": bson.M{"$gt": now.UnixNano()}}, nil, &d)
	if errors.Is(err, sync.ErrNotFound) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, err
	}
	return int(d.Count), fromNanos(d.WindowEnd), nil
}

// ClearLoginFailures forgets the failures of username.
// The entries of the failures it forgets go to the audit collection first.
func (s *Store) ClearLoginFailures(ctx context.Context, username string) error {
	const op = "mongostore.ClearLoginFailures"
	for range maxFailureTries {
		var d failureDoc
		err := findOne(ctx, op, s.failures, bson.M{"_id": username}, nil, &d)
		if errors.Is(err, sync.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.project(ctx, d.Audit); err != nil {
			return fail(op, err)
		}
		res, err := s.failures.DeleteOne(ctx, bson.M{"_id": username, "count": d.Count, "window_end": d.WindowEnd})
		if err != nil {
			return fail(op, err)
		}
		if res.DeletedCount == 1 {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", op, sync.ErrStale)
}
