package mongostore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// recordDoc is one record in the records collection: the whole record,
// its tokens, refs, history and facts in one document, so that one guarded
// write changes them together. _id is collection/id (collection names
// hold no slash); UpdatedAt is Unix nanoseconds; Data is null for a
// deleted record.
type recordDoc struct {
	Key       string        `bson:"_id"`
	Coll      string        `bson:"coll"`
	ID        string        `bson:"rid"`
	Version   int64         `bson:"version"`
	Deleted   bool          `bson:"deleted,omitempty"`
	UpdatedAt int64         `bson:"updated_at"`
	UpdatedBy string        `bson:"updated_by"`
	Data      *string       `bson:"data"`
	Seq       int64         `bson:"seq"`
	Tokens    []string      `bson:"tokens"`
	Refs      []string      `bson:"refs"`
	History   []revisionDoc `bson:"history"`
	// Facts are the record's report facts, null when it has none (nil
	// Facts); the facts collection indexes them (see reports.go).
	Facts []factDoc `bson:"facts"`
	// Audit holds the audit entries of the record's latest writes, which
	// land with the record in its one document write (see audit.go). They
	// are stored without their key, collection and id, which are the
	// record's (MarshalBSON).
	Audit []auditDoc `bson:"audit,omitempty"`
}

// plainRecordDoc is recordDoc without its BSON methods.
type plainRecordDoc recordDoc

// MarshalBSON stores d with its audit entries' key, collection and id
// left out where they are the record's own: UnmarshalBSON puts them back.
// Documents written with them in full read the same.
func (d *recordDoc) MarshalBSON() ([]byte, error) {
	p := plainRecordDoc(*d)
	if len(d.Audit) > 0 {
		p.Audit = slices.Clone(d.Audit)
		for i := range p.Audit {
			if e := &p.Audit[i]; e.Coll == d.Coll && e.ID == d.ID && e.Key == auditKeyOf(d.Key, e.Version) {
				e.Key, e.Coll, e.ID = "", "", ""
			}
		}
	}
	return bson.Marshal(&p)
}

// UnmarshalBSON reads a document MarshalBSON wrote, or one written before
// it existed.
func (d *recordDoc) UnmarshalBSON(raw []byte) error {
	if err := bson.Unmarshal(raw, (*plainRecordDoc)(d)); err != nil {
		return err
	}
	fillAudit(d.Audit, d.Key)
	return nil
}

// fillAudit puts back the key, collection and id of the audit entries
// embedded in the document of the record key, where they were left out.
func fillAudit(docs []auditDoc, key string) {
	for i := range docs {
		if e := &docs[i]; e.Key == "" {
			e.Coll, e.ID, _ = strings.Cut(key, "/")
			e.Key = auditKeyOf(key, e.Version)
		}
	}
}

// auditKeyOf is the key of the audit entry of the write of the record key
// at version (see sync.AuditEntry).
func auditKeyOf(key string, version int64) string {
	return key + "/" + strconv.FormatInt(version, 10)
}

// revisionDoc is one sync.Revision, its data kept as the JSON text it was.
// A revision whose data is the record's current data says so (Current)
// instead of holding a second copy of it, and one made by the record's
// last writer says so (Writer) instead of naming the user again.
// Documents written before these marks existed hold the data and the user
// in full, and read the same.
type revisionDoc struct {
	Version    int64  `bson:"v"`
	MutationID string `bson:"m,omitempty"`
	UserID     string `bson:"u,omitempty"`
	Data       string `bson:"d,omitempty"`
	Current    bool   `bson:"c,omitempty"`
	Writer     bool   `bson:"w,omitempty"`
}

// newRevisionDoc returns h as stored in the document of a record whose
// data is data (nil: deleted) and whose last writer is writer.
func newRevisionDoc(h sync.Revision, data json.RawMessage, writer string) revisionDoc {
	d := revisionDoc{Version: h.Version, MutationID: h.MutationID, UserID: h.UserID, Data: string(h.Data)}
	if len(h.Data) > 0 && bytes.Equal(h.Data, data) {
		d.Data, d.Current = "", true
	}
	if writer != "" && h.UserID == writer {
		d.UserID, d.Writer = "", true
	}
	return d
}

// revision returns the sync.Revision d stands for in the document of a
// record whose data is data and whose last writer is writer.
func (d revisionDoc) revision(data *string, writer string) sync.Revision {
	r := sync.Revision{Version: d.Version, MutationID: d.MutationID, UserID: d.UserID}
	if d.Writer {
		r.UserID = writer
	}
	switch {
	case d.Current && data != nil:
		r.Data = json.RawMessage(*data)
	case d.Data != "":
		r.Data = json.RawMessage(d.Data)
	}
	return r
}

// goneDoc says that a record lost a read token at a seq. A record may
// have several for one token (a loss, a re-stamp, a write that lost its
// race): each is only ever inserted, moved to a later seq, or deleted.
type goneDoc struct {
	Coll  string `bson:"coll"`
	ID    string `bson:"rid"`
	Token string `bson:"token"`
	Seq   int64  `bson:"seq"`
}

// answerDoc is a stored answer; _id is user/mutation (user ids hold no
// slash, see schema.CheckID), which names the user and the mutation; At
// is Unix nanoseconds. An answer that says only that its mutation was
// applied at a version, the answer to almost every mutation, is kept as
// that Version with no Body: the body is rebuilt byte for byte from it.
// Answers written before that hold their user, mutation and body in full,
// and read the same.
type answerDoc struct {
	Key        string `bson:"_id"`
	UserID     string `bson:"user,omitempty"`
	MutationID string `bson:"mutation,omitempty"`
	Body       string `bson:"body,omitempty"`
	Version    int64  `bson:"v,omitempty"`
	At         int64  `bson:"at"`
}

// newAnswerDoc returns a as stored.
func newAnswerDoc(a *sync.Answer) (answerDoc, error) {
	d := answerDoc{Key: a.UserID + "/" + a.MutationID, At: nanos(a.At)}
	body, err := a.Encoded()
	if err != nil {
		return d, err
	}
	if v, ok := appliedAt(a.MutationID, body); ok {
		d.Version = v
	} else {
		d.Body = string(body)
	}
	return d, nil
}

// answer returns the sync.Answer d stands for.
func (d *answerDoc) answer() (*sync.Answer, error) {
	a := &sync.Answer{UserID: d.UserID, MutationID: d.MutationID, Body: json.RawMessage(d.Body), At: fromNanos(d.At)}
	if a.UserID == "" {
		a.UserID, a.MutationID, _ = strings.Cut(d.Key, "/")
	}
	if d.Body == "" {
		body, err := appliedBody(a.MutationID, d.Version)
		if err != nil {
			return nil, err
		}
		a.Body = body
	}
	return a, nil
}

// appliedBody is the engine's answer to a mutation applied at version.
func appliedBody(mutationID string, version int64) (json.RawMessage, error) {
	return json.Marshal(schema.PushResult{MutationID: mutationID, Status: schema.PushApplied, Version: version})
}

// appliedAt returns the version at which body says its mutation was
// applied, when body says that and nothing else, byte for byte as
// appliedBody writes it.
func appliedAt(mutationID string, body json.RawMessage) (int64, bool) {
	var res schema.PushResult
	if err := json.Unmarshal(body, &res); err != nil || res.Status != schema.PushApplied || res.Version <= 0 {
		return 0, false
	}
	rebuilt, err := appliedBody(mutationID, res.Version)
	return res.Version, err == nil && bytes.Equal(rebuilt, body)
}

func recordKey(c schema.Collection, id string) string { return string(c) + "/" + id }

// key is the _id of the record g is about.
func (g *goneDoc) key() string { return recordKey(schema.Collection(g.Coll), g.ID) }

func newRecordDoc(r *sync.Record, seq int64) *recordDoc {
	d := &recordDoc{
		Key: recordKey(r.Collection, r.ID), Coll: string(r.Collection), ID: r.ID, Version: r.Version,
		Deleted: r.Deleted, UpdatedAt: nanos(r.UpdatedAt), UpdatedBy: r.UpdatedBy, Seq: seq,
		Tokens: nonNil(r.Tokens), Refs: nonNil(r.Refs), History: make([]revisionDoc, len(r.History)),
	}
	if r.Data != nil {
		data := string(r.Data)
		d.Data = &data
	}
	for i, h := range r.History {
		d.History[i] = newRevisionDoc(h, r.Data, r.UpdatedBy)
	}
	d.Facts = newFactDocs(r.Facts)
	d.Audit = newAuditDocs(r.Audit)
	leanAudit(d.Audit, d.Version, d.Data)
	return d
}

func (d *recordDoc) record() *sync.Record {
	r := &sync.Record{
		Collection: schema.Collection(d.Coll), ID: d.ID, Version: d.Version, Deleted: d.Deleted,
		UpdatedAt: fromNanos(d.UpdatedAt), UpdatedBy: d.UpdatedBy, Seq: d.Seq,
		Tokens: nonNil(d.Tokens), Refs: nonNil(d.Refs), History: make([]sync.Revision, len(d.History)),
	}
	if d.Data != nil {
		r.Data = json.RawMessage(*d.Data)
	}
	for i, h := range d.History {
		r.History[i] = h.revision(d.Data, d.UpdatedBy)
	}
	r.Facts = facts(d.Facts)
	r.Audit = auditEntries(resolvedAudit(d.Audit, d.Data))
	return r
}

// tx is a unit of work on the store. MongoDB gives it no atomicity of its
// own: each record's write is atomic on its own. In Update it keeps what
// it reads and holds its writes back until fn returns (u, see batch.go);
// in View, u is nil and every read goes to the store.
type tx struct {
	s *Store
	u *unit
}

// View runs fn; its reads see the latest state, not one snapshot.
func (s *Store) View(ctx context.Context, fn func(sync.RecordTx) error) error {
	return fn(&tx{s: s})
}

// Record returns the current state of a record; sync.ErrNotFound when it
// was never written.
func (t *tx) Record(ctx context.Context, c schema.Collection, id string) (*sync.Record, error) {
	d, err := t.doc(ctx, recordKey(c, id))
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, sync.ErrNotFound
	}
	return d.record(), nil
}

func (s *Store) recordDoc(ctx context.Context, key string) (*recordDoc, error) {
	var d recordDoc
	if err := findOne(ctx, "mongostore.Record", s.records, bson.M{"_id": key}, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Records returns the records of c with the given ids, in one find.
func (t *tx) Records(ctx context.Context, c schema.Collection, ids []string) (map[string]*sync.Record, error) {
	out := map[string]*sync.Record{}
	if len(ids) == 0 {
		return out, nil
	}
	var keys []string
	for _, id := range ids {
		key := recordKey(c, id)
		if t.u == nil {
			keys = append(keys, key)
		} else if d, known := t.u.docs[key]; !known {
			keys = append(keys, key)
		} else if d != nil {
			out[id] = d.record()
		}
	}
	if len(keys) == 0 {
		return out, nil
	}
	docs, err := t.s.findRecords(ctx, bson.M{"_id": bson.M{"$in": keys}}, "", 0)
	if err == nil {
		err = t.planned(ctx, docs)
	}
	if err != nil {
		return nil, fail("mongostore.Records", err)
	}
	if t.u != nil {
		// Known from now on, found or not.
		for _, key := range keys {
			t.u.docs[key] = nil
		}
	}
	for _, d := range docs {
		if t.u != nil {
			t.u.docs[d.Key] = d
		}
		out[d.ID] = d.record()
	}
	return out, nil
}

// RecordsByRef returns the records of c whose refs hold ref, in id order,
// at most limit of them after id after.
func (t *tx) RecordsByRef(ctx context.Context, c schema.Collection, ref, after string, limit int) ([]*sync.Record, error) {
	var docs []*recordDoc
	var err error
	if t.u != nil {
		docs, err = t.recordsByRef(ctx, c, ref, after, limit)
	} else {
		docs, err = t.s.findRecords(ctx, bson.M{"coll": string(c), "refs": ref, "rid": bson.M{"$gt": after}}, "rid", limit)
	}
	if err != nil {
		return nil, fail("mongostore.RecordsByRef", err)
	}
	out := make([]*sync.Record, len(docs))
	for i, d := range docs {
		out[i] = d.record()
	}
	return out, nil
}

// findRecords returns the record documents matching filter, sorted by the
// field sortBy when not empty, at most limit of them when limit > 0.
func (s *Store) findRecords(ctx context.Context, filter bson.M, sortBy string, limit int) ([]*recordDoc, error) {
	opts := options.Find()
	if sortBy != "" {
		opts.SetSort(ascending(sortBy))
	}
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.records.Find(ctx, filter, opts)
	if err != nil {
		return nil, err
	}
	var docs []*recordDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// prior is what a write needs of the record it replaces: its version and
// seq, which the write is guarded on (a rewrite of the same version, or a
// re-stamp, also changes the seq), the tokens it holds and its facts. The
// zero prior is no record.
type prior struct {
	version, seq int64
	tokens       []string
	facts        []factDoc
	audit        []auditDoc
}

// Put writes r if the stored version of the record is prev (0: it must
// not exist); sync.ErrStale when the version the unit knows is not prev.
// The write goes out when the unit ends, which sets r.Seq (see batch.go):
// it takes a seq (pending), records the tokens r loses as gone at that
// seq and indexes r's facts when they changed, writes the record in one
// document write guarded by the version and seq the unit read, drops the
// index entries of the facts it replaced, and marks the seq done; see
// feed.go for why that order never lets a reader skip the write, and
// reports.go for why it never lets a report miss a fact.
func (t *tx) Put(ctx context.Context, r *sync.Record, prev int64) error {
	if t.u == nil {
		return errors.New("mongostore.Put: a View does not write")
	}
	d, err := t.doc(ctx, recordKey(r.Collection, r.ID))
	if err != nil {
		return err
	}
	var version int64
	if d != nil {
		version = d.Version
	}
	if version != prev {
		return sync.ErrStale
	}
	t.hold(r, d)
	return t.spill(ctx, recordKey(r.Collection, r.ID))
}

// missing returns the strings of a that b lacks.
func missing(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// proofDoc is a stored photo proof; _id is user/sha256 (user ids hold no
// slash); times are Unix nanoseconds.
type proofDoc struct {
	Key     string   `bson:"_id"`
	UserID  string   `bson:"user"`
	SHA256  string   `bson:"sha256"`
	Size    int64    `bson:"size"`
	TakenAt *int64   `bson:"taken_at,omitempty"`
	Lat     *float64 `bson:"lat,omitempty"`
	Lng     *float64 `bson:"lng,omitempty"`
	At      int64    `bson:"at"`
}

// PhotoProof returns a user's proof of holding a photo's bytes;
// sync.ErrNotFound when there is none.
func (t *tx) PhotoProof(ctx context.Context, userID, sha256 string) (*sync.PhotoProof, error) {
	var d proofDoc
	if err := findOne(ctx, "mongostore.PhotoProof", t.s.proofs, bson.M{"_id": userID + "/" + sha256}, nil, &d); err != nil {
		return nil, err
	}
	p := &sync.PhotoProof{UserID: d.UserID, SHA256: d.SHA256, Size: d.Size, Lat: d.Lat, Lng: d.Lng, At: fromNanos(d.At)}
	if d.TakenAt != nil {
		at := fromNanos(*d.TakenAt)
		p.TakenAt = &at
	}
	return p, nil
}

// SaveProof stores a proof of holding a photo's bytes; the first one stays.
func (t *tx) SaveProof(ctx context.Context, p *sync.PhotoProof) error {
	d := proofDoc{Key: p.UserID + "/" + p.SHA256, UserID: p.UserID, SHA256: p.SHA256, Size: p.Size, Lat: p.Lat, Lng: p.Lng, At: nanos(p.At)}
	if p.TakenAt != nil {
		at := nanos(*p.TakenAt)
		d.TakenAt = &at
	}
	if _, err := t.s.proofs.InsertOne(ctx, d); err != nil && !mongo.IsDuplicateKeyError(err) {
		return fail("mongostore.SaveProof", err)
	}
	return nil
}

// Answers returns the stored answers to a user's mutations, in one find.
func (t *tx) Answers(ctx context.Context, userID string, mutationIDs []string) (map[string]*sync.Answer, error) {
	const op = "mongostore.Answers"
	out := map[string]*sync.Answer{}
	var keys []string
	for _, id := range mutationIDs {
		key := userID + "/" + id
		if t.u != nil && t.u.answers[key] != nil { // saved in this unit
			a, err := t.u.answers[key].answer()
			if err != nil {
				return nil, fail(op, err)
			}
			out[id] = a
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return out, nil
	}
	cur, err := t.s.answers.Find(ctx, bson.M{"_id": bson.M{"$in": keys}})
	if err != nil {
		return nil, fail(op, err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d answerDoc
		if err := cur.Decode(&d); err != nil {
			return nil, fail(op, err)
		}
		a, err := d.answer()
		if err != nil {
			return nil, fail(op, err)
		}
		out[a.MutationID] = a
	}
	if err := cur.Err(); err != nil {
		return nil, fail(op, err)
	}
	return out, nil
}

// SaveAnswer stores the answer to a mutation when the unit's writes have
// landed; the first one stays.
func (t *tx) SaveAnswer(ctx context.Context, a *sync.Answer) error {
	d, err := newAnswerDoc(a)
	if err != nil {
		return fail("mongostore.SaveAnswer", err)
	}
	if t.u == nil {
		return t.s.saveAnswers(ctx, []answerDoc{d})
	}
	if prev := t.u.answers[d.Key]; prev == nil {
		t.u.answers[d.Key] = &d
		t.u.saved = append(t.u.saved, d)
	}
	return nil
}

// SweepAnswers deletes answers stored before cutoff and returns how many
// went. It also prunes the seqs the watermark has passed (see prune).
func (s *Store) SweepAnswers(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.answers.DeleteMany(ctx, bson.M{"at": bson.M{"$lt": nanos(cutoff)}})
	if err != nil {
		return 0, fail("mongostore.SweepAnswers", err)
	}
	if err := s.prune(ctx); err != nil {
		return int(res.DeletedCount), fail("mongostore.SweepAnswers", err)
	}
	return int(res.DeletedCount), nil
}
