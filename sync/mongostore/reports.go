package mongostore

import (
	"context"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/sync"
	"github.com/fieldsync/fieldsync/sync/report"
)

// Report facts, without transactions.
//
// A record's facts live in its own document (recordDoc.Facts), so that the
// guarded write that changes the record changes them with it: that array
// is the truth, and Record returns it. To be found by kind, territory and
// time, or by kind, customer and time, each fact also has an entry in the
// facts collection, {rec, seq, kind, territory, customer, rep, at}, under
// the indexes {kind, territory, at}, {kind, customer, at} and {kind, rep,
// at}.
//
// Why not query the arrays directly, through a multikey index on
// {facts.kind, facts.territory, facts.at}? Without $elemMatch, which
// FerretDB gets wrong, MongoDB may match each condition on a different
// fact, so it can bound such an index scan by kind alone: a report on one
// week would read every visit ever made. One flat entry per fact keeps the
// scan to the facts asked for, on both.
//
// The entries are an index only: a report reads them for the records they
// name, then reads those records' facts and keeps the ones that match. So
// an entry that outlived its fact (a crash, a lost race) costs one more
// record read and is never reported, and a fact is never missed as long
// as every fact a record document holds has its entries. Put keeps that:
//
//  1. When r's facts differ from the stored ones, it inserts their entries
//     tagged with the write's seq, before the record document;
//  2. writes the record document, guarded by its version;
//  3. then deletes the record's entries tagged below the seq.
//
// Step 1 before 2 means a record document never holds facts without
// entries. In step 3, writes of one record that succeed take their seqs in
// the order they land (each read the document of the one before it, which
// was written after that one took its seq), so a write only ever deletes
// the entries of writes that landed before it, never those of a later
// write, even when its delete comes late. A write that loses its race
// (sync.ErrStale) deletes its own entries again; if that, or step 3,
// fails, the entries left over are only read in vain until a later change
// of the record's facts deletes them. Facts that do not change keep the
// entries some earlier write made for them.
//
// The price is a second read per report, of the records found, which also
// makes each record's facts come from one state of the record.

// factDoc is one sync.Fact in a record document; At is Unix nanoseconds.
type factDoc struct {
	Kind      string `bson:"kind"`
	Rep       string `bson:"rep,omitempty"`
	Customer  string `bson:"customer,omitempty"`
	Territory string `bson:"territory,omitempty"`
	Visit     string `bson:"visit,omitempty"`
	Label     string `bson:"label,omitempty"`
	Grade     string `bson:"grade,omitempty"`
	Day       string `bson:"day,omitempty"`
	At        int64  `bson:"at"`
	Flag      int    `bson:"flag"`
	Amount    int64  `bson:"amount,omitempty"`
	Balance   int64  `bson:"balance,omitempty"`
	Count     int64  `bson:"count,omitempty"`
	Status    string `bson:"status,omitempty"`
}

// factEntry is the entry of one fact in the facts collection, by which
// reports find the record that holds it. _id is rec/seq/n: the record's
// _id, the seq of the write that made the entry, and the fact's place in
// the record's facts.
type factEntry struct {
	Key       string `bson:"_id"`
	Rec       string `bson:"rec"`
	Seq       int64  `bson:"seq"`
	Kind      string `bson:"kind"`
	Territory string `bson:"territory"`
	Customer  string `bson:"customer"`
	Rep       string `bson:"rep"`
	At        int64  `bson:"at"`
}

// newFactDocs returns facts as stored, nil for nil.
func newFactDocs(facts []sync.Fact) []factDoc {
	if facts == nil {
		return nil
	}
	docs := make([]factDoc, len(facts))
	for i, f := range facts {
		docs[i] = factDoc{
			Kind: f.Kind, Rep: f.Rep, Customer: f.Customer, Territory: f.Territory, Visit: f.Visit,
			Label: f.Label, Grade: f.Grade, Day: f.Day, At: f.At.UnixNano(), Flag: f.Flag,
			Amount: f.Amount, Balance: f.Balance, Count: f.Count, Status: f.Status,
		}
	}
	return docs
}

func (d *factDoc) fact() sync.Fact {
	return sync.Fact{
		Kind: d.Kind, Rep: d.Rep, Customer: d.Customer, Territory: d.Territory, Visit: d.Visit,
		Label: d.Label, Grade: d.Grade, Day: d.Day, At: time.Unix(0, d.At).UTC(), Flag: d.Flag,
		Amount: d.Amount, Balance: d.Balance, Count: d.Count, Status: d.Status,
	}
}

// facts returns stored facts as sync.Facts, nil for nil.
func facts(docs []factDoc) []sync.Fact {
	if docs == nil {
		return nil
	}
	out := make([]sync.Fact, len(docs))
	for i := range docs {
		out[i] = docs[i].fact()
	}
	return out
}

// indexFacts inserts the entries of doc's facts, tagged with seq.
func (s *Store) indexFacts(ctx context.Context, doc *recordDoc, seq int64) error {
	if len(doc.Facts) == 0 {
		return nil
	}
	_, err := s.facts.InsertMany(ctx, newFactEntries(doc, seq), options.InsertMany().SetOrdered(false))
	return err
}

// unindexFacts deletes the entries of the record key made by writes
// before the one at seq. Failing leaves entries that are read in vain.
func (s *Store) unindexFacts(ctx context.Context, key string, seq int64) {
	s.facts.DeleteMany(ctx, bson.M{"rec": key, "seq": bson.M{"$lt": seq}})
}

// heldFacts is the _id and facts of a record document.
type heldFacts struct {
	Key   string    `bson:"_id"`
	Facts []factDoc `bson:"facts"`
}

// factsProjection reads only heldFacts of a record document.
var factsProjection = bson.D{{Key: "facts", Value: 1}}

// keysPerRead bounds the record _ids one read of recordFacts asks for.
const keysPerRead = 500

// recordFacts returns the facts of the records with _ids keys that exist.
func (s *Store) recordFacts(ctx context.Context, keys []string) ([]heldFacts, error) {
	var out []heldFacts
	for chunk := range slices.Chunk(keys, keysPerRead) {
		cur, err := s.records.Find(ctx, bson.M{"_id": bson.M{"$in": chunk}}, options.Find().SetProjection(factsProjection))
		if err != nil {
			return nil, err
		}
		var docs []heldFacts
		if err := cur.All(ctx, &docs); err != nil {
			return nil, err
		}
		out = append(out, docs...)
	}
	return out, nil
}

// Facts returns, in no order, the facts of a kind whose territory is one
// of territories (any, when territories is nil) and whose At is in
// [from, to). It finds the records through the {kind, territory, at}
// index and reads their facts.
func (s *Store) Facts(ctx context.Context, kind string, territories []string, from, to time.Time) ([]sync.Fact, error) {
	if territories != nil && len(territories) == 0 {
		return nil, nil
	}
	filter := bson.M{}
	if territories != nil {
		filter["territory"] = bson.M{"$in": territories}
	}
	out, err := s.findFacts(ctx, kind, filter, from, to, func(f *factDoc) bool {
		return territories == nil || slices.Contains(territories, f.Territory)
	})
	if err != nil {
		return nil, fail("mongostore.Facts", err)
	}
	return out, nil
}

// RepFacts returns, in no order, the facts of a kind about a rep whose At
// is in [from, to), through the {kind, rep, at} index.
func (s *Store) RepFacts(ctx context.Context, kind, rep string, from, to time.Time) ([]sync.Fact, error) {
	out, err := s.findFacts(ctx, kind, bson.M{"rep": rep}, from, to, func(f *factDoc) bool { return f.Rep == rep })
	if err != nil {
		return nil, fail("mongostore.RepFacts", err)
	}
	return out, nil
}

// findFacts finds the entries of a kind within [from, to) that match
// filter, reads the facts of the records they name and keeps those of the
// kind, within [from, to), for which keep holds: entries may be stale.
func (s *Store) findFacts(ctx context.Context, kind string, filter bson.M, from, to time.Time, keep func(*factDoc) bool) ([]sync.Fact, error) {
	lo, hi := from.UnixNano(), to.UnixNano()
	filter["kind"] = kind
	filter["at"] = bson.M{"$gte": lo, "$lt": hi}
	cur, err := s.facts.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "rec", Value: 1}}))
	if err != nil {
		return nil, err
	}
	var entries []factEntry
	if err := cur.All(ctx, &entries); err != nil {
		return nil, err
	}
	var keys []string
	seen := make(map[string]bool, len(entries))
	for _, e := range entries {
		if !seen[e.Rec] {
			seen[e.Rec] = true
			keys = append(keys, e.Rec)
		}
	}
	held, err := s.recordFacts(ctx, keys)
	if err != nil {
		return nil, err
	}
	var out []sync.Fact
	for _, h := range held {
		for i := range h.Facts {
			f := &h.Facts[i]
			if f.Kind == kind && f.At >= lo && f.At < hi && keep(f) {
				out = append(out, f.fact())
			}
		}
	}
	return out, nil
}

// latestBatch is how many entries LatestFact reads at a time; the first
// is nearly always the answer.
const latestBatch = 4

// LatestFact returns the fact of a kind about a customer with the latest
// At; sync.ErrNotFound when there is none.
//
// It walks the {kind, customer, at} index from the latest entry down and
// reads the facts of the records the entries name, until the next entry
// is no later than the latest matching fact found: every fact a record
// holds has an entry, so none further down can be later.
func (s *Store) LatestFact(ctx context.Context, kind, customerID string) (*sync.Fact, error) {
	const op = "mongostore.LatestFact"
	cur, err := s.facts.Find(ctx, bson.M{"kind": kind, "customer": customerID},
		options.Find().SetSort(bson.D{{Key: "at", Value: -1}}).SetBatchSize(latestBatch).
			SetProjection(bson.D{{Key: "rec", Value: 1}, {Key: "at", Value: 1}}))
	if err != nil {
		return nil, fail(op, err)
	}
	defer cur.Close(context.Background())
	var (
		best *factDoc
		read = map[string]bool{}
	)
	for cur.Next(ctx) {
		var e factEntry
		if err := cur.Decode(&e); err != nil {
			return nil, fail(op, err)
		}
		if best != nil && e.At <= best.At {
			break
		}
		if read[e.Rec] {
			continue
		}
		read[e.Rec] = true
		held, err := s.recordFacts(ctx, []string{e.Rec})
		if err != nil {
			return nil, fail(op, err)
		}
		for _, h := range held {
			for i, f := range h.Facts {
				if f.Kind == kind && f.Customer == customerID && (best == nil || f.At > best.At) {
					best = &h.Facts[i]
				}
			}
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fail(op, err)
	}
	if best == nil {
		return nil, sync.ErrNotFound
	}
	f := best.fact()
	return &f, nil
}

// CoverageCounts counts, per rep, what the coverage report shows, for the
// facts of q's territories (all, when nil) on q's days. The counting is
// joins and groups that FerretDB cannot be trusted with, so it happens in
// Go (report.CountCoverage), over facts read through Facts.
func (s *Store) CoverageCounts(ctx context.Context, q report.CoverageQuery) ([]report.RepCoverage, error) {
	out, err := report.CountCoverage(ctx, q, s.Facts)
	if err != nil {
		return nil, fail("mongostore.CoverageCounts", err)
	}
	return out, nil
}

// deviceDoc is when one device of a user last pushed and pulled, in Unix
// nanoseconds, 0 for never; _id is user/device (user ids hold no slash,
// see schema.CheckID).
type deviceDoc struct {
	Key      string `bson:"_id"`
	UserID   string `bson:"user"`
	DeviceID string `bson:"device"`
	Push     int64  `bson:"push"`
	Pull     int64  `bson:"pull"`
}

// maxDeviceTries bounds the retries of NoteDeviceSync when concurrent
// first syncs of one device race to create its document.
const maxDeviceTries = 3

// NoteDeviceSync records that a user's device pushed (push true) or pulled
// at a time. One upsert with $max keeps the later time, so an older time
// never replaces a newer one.
func (s *Store) NoteDeviceSync(ctx context.Context, userID, deviceID string, push bool, at time.Time) error {
	const op = "mongostore.NoteDeviceSync"
	field, other := "pull", "push"
	if push {
		field, other = other, field
	}
	update := bson.M{
		"$max":         bson.M{field: nanos(at)},
		"$setOnInsert": bson.M{"user": userID, "device": deviceID, other: int64(0)},
	}
	var err error
	for range maxDeviceTries {
		// Two upserts that both find no document may both insert: the
		// loser fails on the _id and, tried again, updates.
		_, err = s.devices.UpdateOne(ctx, bson.M{"_id": userID + "/" + deviceID}, update, options.Update().SetUpsert(true))
		if !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return fail(op, err)
	}
	return nil
}

// DeviceSyncs returns when every device last pushed and pulled, by user
// id, then device id.
func (s *Store) DeviceSyncs(ctx context.Context) ([]report.DeviceSync, error) {
	const op = "mongostore.DeviceSyncs"
	cur, err := s.devices.Find(ctx, bson.M{}, options.Find().SetSort(ascending("user", "device")))
	if err != nil {
		return nil, fail(op, err)
	}
	var docs []deviceDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fail(op, err)
	}
	out := make([]report.DeviceSync, len(docs))
	for i, d := range docs {
		out[i] = report.DeviceSync{UserID: d.UserID, DeviceID: d.DeviceID, LastPushAt: fromNanos(d.Push), LastPullAt: fromNanos(d.Pull)}
	}
	return out, nil
}

// RepFactAfter reports whether a record other than except (an id of the
// collection whose facts are of kind) has a fact of a kind by rep later
// than after. It finds candidates through the {kind, rep, at} index and
// reads their facts, as Facts does.
func (t *tx) RepFactAfter(ctx context.Context, kind, rep string, after time.Time, except string) (bool, error) {
	const op = "mongostore.RepFactAfter"
	s := t.s
	if t.u != nil {
		found, known, err := t.repFactAfter(ctx, kind, rep, after, except)
		if err != nil {
			return false, fail(op, err)
		}
		if known {
			return found, nil
		}
	}
	cur, err := s.facts.Find(ctx, bson.M{"kind": kind, "rep": rep, "at": bson.M{"$gt": after.UnixNano()}},
		options.Find().SetBatchSize(latestBatch).SetProjection(bson.D{{Key: "rec", Value: 1}}))
	if err != nil {
		return false, fail(op, err)
	}
	defer cur.Close(context.Background())
	read := map[string]bool{}
	for cur.Next(ctx) {
		var e factEntry
		if err := cur.Decode(&e); err != nil {
			return false, fail(op, err)
		}
		if read[e.Rec] || strings.HasSuffix(e.Rec, "/"+except) || (t.u != nil && t.u.byKey[e.Rec] != nil) {
			continue
		}
		read[e.Rec] = true
		held, err := s.recordFacts(ctx, []string{e.Rec})
		if err != nil {
			return false, fail(op, err)
		}
		for _, h := range held {
			for _, f := range h.Facts {
				if f.Kind == kind && f.Rep == rep && f.At > after.UnixNano() {
					return true, nil
				}
			}
		}
	}
	if err := cur.Err(); err != nil {
		return false, fail(op, err)
	}
	return false, nil
}
