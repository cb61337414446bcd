package mongostore

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/sync"
)

// Audit entries of users, logins and failed logins follow the records'
// rule (see audit.go): the entry of a change is embedded in the document
// the change writes, in that same write, with audit_at, the time of the
// change; the entries a write replaces are projected into the audit
// collection before it; the write's own after it; and SweepAudit projects
// the entries of every such document changed since its previous pass.

// embedAudit returns entries as embedded and the time of the latest.
func embedAudit(entries []sync.AuditEntry) ([]auditDoc, int64) {
	docs := newAuditDocs(entries)
	var at int64
	for _, d := range docs {
		at = max(at, d.At)
	}
	return docs, at
}

// replaceAudit projects the entries that the document with _id id in coll
// carries, and adds to set the fields that replace them with audit.
func (s *Store) replaceAudit(ctx context.Context, coll *mongo.Collection, id string, audit []sync.AuditEntry, set bson.M) error {
	var held struct {
		Audit []auditDoc `bson:"audit"`
	}
	if err := findOne(ctx, "audit", coll, bson.M{"_id": id}, bson.D{{Key: "audit", Value: 1}}, &held); err != nil {
		return err
	}
	if err := s.project(ctx, held.Audit); err != nil {
		return err
	}
	set["audit"], set["audit_at"] = embedAudit(audit)
	if set["audit"] == nil {
		set["audit"] = []auditDoc{}
	}
	return nil
}

// eventSlack is how far before its previous pass SweepAudit looks again
// for changed documents, for writers whose clocks lag or that were slow.
const eventSlack = 10 * time.Minute

// catchUpEvents projects the entries of the users, logins and failed
// logins changed since the previous pass (less eventSlack).
func (s *Store) catchUpEvents(ctx context.Context) error {
	var mark struct {
		At int64 `bson:"at"`
	}
	if err := findOne(ctx, "audit mark", s.meta, bson.M{"_id": "audit-events"}, nil, &mark); err != nil && !errors.Is(err, sync.ErrNotFound) {
		return err
	}
	now := s.now().UnixNano()
	since := mark.At - int64(eventSlack)
	for _, coll := range []*mongo.Collection{s.users, s.logins, s.failures} {
		cur, err := coll.Find(ctx, bson.M{"audit_at": bson.M{"$gte": since}}, options.Find().SetProjection(bson.D{{Key: "audit", Value: 1}}))
		if err != nil {
			return err
		}
		var docs []struct {
			Audit []auditDoc `bson:"audit"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return err
		}
		for _, d := range docs {
			if err := s.project(ctx, d.Audit); err != nil {
				return err
			}
		}
	}
	_, err := s.meta.UpdateOne(ctx, bson.M{"_id": "audit-events"}, bson.M{"$max": bson.M{"at": now}}, options.Update().SetUpsert(true))
	return err
}
