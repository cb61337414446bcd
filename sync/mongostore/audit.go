package mongostore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// The audit trail, without transactions.
//
// A record's write and its audit entry cannot be two writes: a crash
// between them would leave one without the other. So the entry travels
// inside the record document (recordDoc.Audit, the entries of the
// record's latest writes) and lands in the one guarded document write
// that changes the record; if that write fails, neither exists.
//
// The audit collection, which the audit endpoint reads through indexes,
// is a projection of those embedded entries, keyed by
// collection/id/version so that projecting twice changes nothing:
//
//  1. right after each record write, the store inserts every entry the
//     document carries (duplicates ignored), so the entries of an earlier
//     write whose projection was lost to a crash come along too;
//  2. SweepAudit inserts the entries of every record written since its
//     last pass (records with a seq above its mark, up to the
//     watermark), then moves its mark to that watermark.
//
// An entry leaves the record document (only the latest few are kept)
// only after the write that drops it has inserted it into the audit
// collection; if that insert fails, the write is not made. An entry can
// therefore be missing from the projection only between a crash and the
// record's next write or the next sweep, and never from the store.

// A creation's entry by reference. The entry of a write that creates a
// record lists every field of the record's data, each from null: a second
// copy of the data. Where the document holding the entry (the record's
// own, or the audit collection's) can find that data, the entry keeps
// byReference as its changes instead:
//
//   - in a record document, the entry of the document's own version, when
//     its changes are exactly those of creating the document's data; every
//     other entry is kept in full, so a record document always resolves
//     its own entries (resolvedAudit);
//   - in the audit collection, an entry projected from a record document
//     as it was stored there. It resolves through the record document as
//     it is when read: the entry it embeds under the same key, resolved
//     against that document. A write stores the entries it embeds in full
//     unless they are of its own version, so once the record has moved on
//     the entry is there in full; and the write that drops an entry from
//     the record document first replaces it in the audit collection with
//     its full changes (projectFull), so an entry by reference is never
//     left without a document to resolve it.

// byReference is the changes of an entry kept by reference to its
// record's data: see above.
const byReference = "="

// auditDoc is a sync.AuditEntry, embedded in a record document and
// projected into the audit collection; At is Unix nanoseconds and
// Changes the JSON of the field changes.
//
// Embedded in a record document, an entry has no key, collection or id
// (see recordDoc.MarshalBSON); every entry in the audit collection has a
// key.
type auditDoc struct {
	Key         string   `bson:"_id,omitempty"`
	At          int64    `bson:"at"`
	UserID      string   `bson:"user_id"`
	DeviceID    string   `bson:"device_id"`
	Action      string   `bson:"action"`
	Coll        string   `bson:"coll,omitempty"`
	ID          string   `bson:"rid,omitempty"`
	Version     int64    `bson:"version"`
	Changes     string   `bson:"changes"`
	Territories []string `bson:"territories"`
}

func newAuditDocs(entries []sync.AuditEntry) []auditDoc {
	if len(entries) == 0 {
		return nil
	}
	out := make([]auditDoc, len(entries))
	for i, e := range entries {
		changes := byReference // a creation's, left to the store: the data at e.Version
		if !e.Created || e.Changes != nil {
			raw, _ := json.Marshal(e.Changes) // raw JSON values and strings always marshal
			changes = string(raw)
		}
		out[i] = auditDoc{Key: e.Key, At: e.At.UnixNano(), UserID: e.UserID, DeviceID: e.DeviceID, Action: e.Action,
			Coll: string(e.Collection), ID: e.ID, Version: e.Version, Changes: changes, Territories: nonNil(e.Territories)}
	}
	return out
}

func (d *auditDoc) entry() (sync.AuditEntry, error) {
	e := sync.AuditEntry{Key: d.Key, At: time.Unix(0, d.At).UTC(), UserID: d.UserID, DeviceID: d.DeviceID, Action: d.Action,
		Collection: schema.Collection(d.Coll), ID: d.ID, Version: d.Version, Territories: d.Territories}
	err := json.Unmarshal([]byte(d.Changes), &e.Changes)
	return e, err
}

func auditEntries(docs []auditDoc) []sync.AuditEntry {
	var out []sync.AuditEntry
	for i := range docs {
		if e, err := docs[i].entry(); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// creationChanges is the changes, as stored, of the write that creates a
// record with data: each field of data from null.
func creationChanges(data string) (string, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(data), &fields); err != nil {
		return "", err
	}
	changes := make(map[string]sync.FieldChange, len(fields))
	for k, v := range fields {
		changes[k] = sync.FieldChange{From: json.RawMessage("null"), To: v}
	}
	out, err := json.Marshal(changes)
	return string(out), err
}

// leanAudit marks, in the entries embedded in the document of a record at
// version whose data is data (nil: deleted), the entry of that version
// when it is the record's creation, so that it is kept by reference.
func leanAudit(docs []auditDoc, version int64, data *string) {
	if data == nil {
		return
	}
	for i := range docs {
		if docs[i].Version != version || docs[i].Action != sync.AuditCreate {
			continue
		}
		if full, err := creationChanges(*data); err == nil && full == docs[i].Changes {
			docs[i].Changes = byReference
		}
	}
}

// resolvedAudit returns the entries embedded in a record document whose
// data is data with their changes in full: an entry by reference takes
// them from data. It returns docs itself when none is by reference.
func resolvedAudit(docs []auditDoc, data *string) []auditDoc {
	if !slices.ContainsFunc(docs, func(d auditDoc) bool { return d.Changes == byReference }) {
		return docs
	}
	out := slices.Clone(docs)
	for i := range out {
		if out[i].Changes != byReference || data == nil {
			continue
		}
		if full, err := creationChanges(*data); err == nil {
			out[i].Changes = full
		}
	}
	return out
}

// droppedAudit returns the entries of was that now lacks.
func droppedAudit(was, now []auditDoc) []auditDoc {
	var out []auditDoc
	for _, e := range was {
		if !slices.ContainsFunc(now, func(n auditDoc) bool { return n.Key == e.Key }) {
			out = append(out, e)
		}
	}
	return out
}

// project inserts audit entries into the audit collection; entries
// already there stay as they are.
func (s *Store) project(ctx context.Context, docs []auditDoc) error {
	if len(docs) == 0 {
		return nil
	}
	batch := make([]any, len(docs))
	for i := range docs {
		batch[i] = docs[i]
	}
	_, err := s.audit.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(mongo.WriteException{WriteErrors: mongo.WriteErrors{we.WriteError}}) {
				return err
			}
		}
		return nil
	}
	return err
}

// projectFull puts entries, whose changes are in full, into the audit
// collection, replacing those already there (which may be by reference).
func (s *Store) projectFull(ctx context.Context, docs []auditDoc) error {
	models := make([]mongo.WriteModel, len(docs))
	for i := range docs {
		models[i] = mongo.NewReplaceOneModel().SetFilter(bson.M{"_id": docs[i].Key}).SetReplacement(docs[i]).SetUpsert(true)
	}
	return bulkWrite(ctx, s.audit, models)
}

// resolveByReference fills in the changes of the entries kept by reference
// from their records' documents, read in one find.
func (s *Store) resolveByReference(ctx context.Context, docs []auditDoc) error {
	var keys []string
	for _, d := range docs {
		if d.Changes == byReference {
			keys = append(keys, recordKey(schema.Collection(d.Coll), d.ID))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	cur, err := s.records.Find(ctx, bson.M{"_id": bson.M{"$in": keys}},
		options.Find().SetProjection(bson.M{"data": 1, "audit": 1}).SetBatchSize(int32(len(keys))))
	if err != nil {
		return err
	}
	var recs []struct {
		Key   string     `bson:"_id"`
		Data  *string    `bson:"data"`
		Audit []auditDoc `bson:"audit"`
	}
	if err := cur.All(ctx, &recs); err != nil {
		return err
	}
	full := map[string]string{}
	for _, r := range recs {
		fillAudit(r.Audit, r.Key)
		for _, e := range resolvedAudit(r.Audit, r.Data) {
			full[e.Key] = e.Changes
		}
	}
	for i := range docs {
		if docs[i].Changes != byReference {
			continue
		}
		changes, ok := full[docs[i].Key]
		if !ok || changes == byReference {
			return fmt.Errorf("audit entry %s: its record no longer holds its changes", docs[i].Key)
		}
		docs[i].Changes = changes
	}
	return nil
}

// AuditEntries returns the entries q selects, newest first.
func (s *Store) AuditEntries(ctx context.Context, q sync.AuditQuery) ([]sync.AuditEntry, error) {
	const op = "mongostore.AuditEntries"
	if q.Territories != nil && len(q.Territories) == 0 {
		return nil, nil
	}
	filter := bson.M{}
	if q.Collection != "" {
		filter["coll"] = string(q.Collection)
	}
	if q.ID != "" {
		filter["rid"] = q.ID
	}
	if q.UserID != "" {
		filter["user_id"] = q.UserID
	}
	at := bson.M{}
	if !q.From.IsZero() {
		at["$gte"] = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		at["$lt"] = q.To.UnixNano()
	}
	if len(at) > 0 {
		filter["at"] = at
	}
	if q.Territories != nil {
		filter["territories"] = bson.M{"$in": q.Territories}
	}
	if !q.BeforeAt.IsZero() {
		b := q.BeforeAt.UnixNano()
		filter["$or"] = bson.A{bson.M{"at": bson.M{"$lt": b}}, bson.M{"at": b, "_id": bson.M{"$lt": q.BeforeKey}}}
	}
	cur, err := s.audit.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(q.Limit)))
	if err != nil {
		return nil, fail(op, err)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fail(op, err)
	}
	if err := s.resolveByReference(ctx, docs); err != nil {
		return nil, fail(op, err)
	}
	out := make([]sync.AuditEntry, 0, len(docs))
	for i := range docs {
		e, err := docs[i].entry()
		if err != nil {
			return nil, fail(op, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// auditMark is the seq up to which SweepAudit has projected the entries
// of every record.
type auditMark struct {
	Key string `bson:"_id"`
	Seq int64  `bson:"seq"`
}

// SweepAudit projects the entries of the records written since its last
// pass, then deletes entries made before cutoff.
func (s *Store) SweepAudit(ctx context.Context, cutoff time.Time) (int, error) {
	const op = "mongostore.SweepAudit"
	if err := s.catchUpAudit(ctx); err != nil {
		return 0, fail(op, err)
	}
	if err := s.catchUpEvents(ctx); err != nil {
		return 0, fail(op, err)
	}
	res, err := s.audit.DeleteMany(ctx, bson.M{"at": bson.M{"$lt": cutoff.UnixNano()}})
	if err != nil {
		return 0, fail(op, err)
	}
	return int(res.DeletedCount), nil
}

// catchUpAudit projects the entries of the records with a seq above the
// mark, up to the watermark, and moves the mark there.
func (s *Store) catchUpAudit(ctx context.Context) error {
	var mark auditMark
	if err := findOne(ctx, "audit mark", s.meta, bson.M{"_id": "audit"}, nil, &mark); err != nil && !errors.Is(err, sync.ErrNotFound) {
		return err
	}
	wm, err := s.Watermark(ctx)
	if err != nil {
		return err
	}
	for after := mark.Seq; after < wm; {
		cur, err := s.records.Find(ctx, bson.M{"seq": bson.M{"$gt": after, "$lte": wm}},
			options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(500).
				SetProjection(bson.D{{Key: "seq", Value: 1}, {Key: "audit", Value: 1}}))
		if err != nil {
			return err
		}
		var docs []struct {
			Key   string     `bson:"_id"`
			Seq   int64      `bson:"seq"`
			Audit []auditDoc `bson:"audit"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return err
		}
		for _, d := range docs {
			fillAudit(d.Audit, d.Key)
			if err := s.project(ctx, d.Audit); err != nil {
				return err
			}
			after = d.Seq
		}
		if len(docs) < 500 {
			break
		}
	}
	_, err = s.meta.UpdateOne(ctx, bson.M{"_id": "audit"}, bson.M{"$max": bson.M{"seq": wm}}, options.Update().SetUpsert(true))
	return err
}
