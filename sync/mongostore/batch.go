package mongostore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// A unit of work in few round trips.
//
// Update hands fn a tx that keeps what it reads and holds back what it
// writes: the record documents it read or wrote (so a record is read once
// and later reads see the unit's own writes), the results of queries by
// ref and by rep (merged with the unit's writes when read again), and the
// record writes and answers themselves. When fn returns, the unit's writes
// go out together, in the order a single write has always used, each step
// one bulk command for the whole unit (bulkChunk statements at a time for
// record writes and deletes):
//
//  1. take one seq per record written (a block of pending seqs, inserted
//     in order, so the seqs stay dense and visible before they are used);
//  2. insert the index entries of changed facts, the audit entries the
//     writes drop from their documents, and the gone documents of the
//     tokens they lose;
//  3. write the record documents, each guarded by the version and seq it
//     had when the unit read it (an insert for a new record);
//  4. project their audit entries, delete the fact entries and gone
//     documents they make obsolete, mark their seqs done (re-stamping any
//     seq a reader abandoned meanwhile, as a single write does);
//  5. insert the answers.
//
// Every guarantee of a single write holds for each record: its document
// lands whole or not at all, with its facts indexed and its losses
// recorded first, and its seq is pending until it has landed. What the
// unit adds is that nothing at all is written when fn fails, and that
// answers are stored only once every record of the unit has landed: an
// answer is never kept for a write that did not land.
//
// A record written more than once in a unit is written once, as it ends
// up, over the state the unit read (the intermediate states were never
// stored, so no reader can have seen them).
//
// If a guarded write loses to another writer (the record changed since
// the unit read it), the writes that landed stay, and fn runs again from
// the start against the store as it is then: a mutation whose write
// landed finds itself in the record's history and is answered as
// applied, the others are decided afresh. That is what a single write's
// sync.ErrStale made the engine do, mutation by mutation.

// maxReruns bounds how often Update runs fn again after losing races.
const maxReruns = 5

// errLostRace says that a unit's write lost to a concurrent one.
var errLostRace = errors.New("a write of the unit lost to a concurrent one")

// unit is what a tx of Update keeps: see the comment above.
type unit struct {
	// docs holds, by _id, the latest known state of each record the unit
	// read or wrote; nil for a record known not to exist.
	docs map[string]*recordDoc
	// answers holds, by _id, the answers read or saved; nil for an
	// answer known not to exist.
	answers map[string]*answerDoc
	// writes are the records to write, in the order first written.
	writes []*pendingWrite
	byKey  map[string]*pendingWrite
	saved  []answerDoc
	refs   map[refQuery]*refResult
	reps   map[string]*repResult
	facts  map[string][]factDoc // facts of records read for RepFactAfter
	// plan is the move whose plan holds the re-stamps the unit wrote
	// out while it ran; nil when it wrote none out (see moves.go).
	plan *plan
}

// pendingWrite is one record's write held back until the unit ends.
type pendingWrite struct {
	key string
	// was is the stored record the write replaces (zero: none).
	was prior
	doc *recordDoc
	// seen are the audit entries of the states written before doc in
	// this unit, which doc may drop.
	seen []auditDoc
	recs []*sync.Record // the records Put was given, whose Seq is set
	seq  int64
}

func newUnit() *unit {
	return &unit{docs: map[string]*recordDoc{}, answers: map[string]*answerDoc{}, byKey: map[string]*pendingWrite{},
		refs: map[refQuery]*refResult{}, reps: map[string]*repResult{}, facts: map[string][]factDoc{}}
}

// Update runs fn in a unit of work whose writes go out together when fn
// returns nil (see above); when fn fails, nothing is written. A unit that
// loses a race runs fn again; sync.ErrStale when it lost maxReruns times.
func (s *Store) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	for try := 0; ; try++ {
		t := &tx{s: s, u: newUnit()}
		if err := fn(t); err != nil {
			s.abandonPlan(ctx, t.u.plan)
			return err
		}
		err := t.flush(ctx)
		if !errors.Is(err, errLostRace) {
			return err
		}
		if try == maxReruns {
			return fmt.Errorf("mongostore.Update: %w: %w", sync.ErrStale, err)
		}
	}
}

// doc returns the latest known state of the record key: the unit's, or
// the store's (read once); nil when there is none.
func (t *tx) doc(ctx context.Context, key string) (*recordDoc, error) {
	if t.u != nil {
		if d, ok := t.u.docs[key]; ok {
			return d, nil
		}
	}
	d, err := t.s.recordDoc(ctx, key)
	if errors.Is(err, sync.ErrNotFound) {
		d, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	docs := []*recordDoc{d}
	if err := t.planned(ctx, docs); err != nil {
		return nil, err
	}
	d = docs[0]
	if t.u != nil {
		t.u.docs[key] = d
	}
	return d, nil
}

// hold keeps back the write of r over the record's current state d (nil:
// none), which the caller checked against prev.
func (t *tx) hold(r *sync.Record, d *recordDoc) {
	doc := newRecordDoc(r, 0)
	doc.Tokens, doc.Refs = slices.Clone(doc.Tokens), slices.Clone(doc.Refs)
	w := t.u.byKey[doc.Key]
	if w == nil {
		w = &pendingWrite{key: doc.Key}
		if it := t.u.plan.item(doc.Key); it != nil { // written out to the plan before
			planned := it.write()
			w.was, w.seen = planned.was, append(slices.Clone(it.Seen), resolvedAudit(it.Doc.Audit, it.Doc.Data)...)
		} else if d != nil {
			w.was = prior{version: d.Version, seq: d.Seq, tokens: d.Tokens, facts: d.Facts, audit: resolvedAudit(d.Audit, d.Data)}
		}
		t.u.byKey[doc.Key] = w
		t.u.writes = append(t.u.writes, w)
	} else {
		w.seen = append(w.seen, resolvedAudit(w.doc.Audit, w.doc.Data)...)
	}
	w.doc = doc
	w.recs = append(w.recs, r)
	t.u.docs[doc.Key] = doc
}

// flush writes what the unit held back; errLostRace when a guarded write
// lost, after the others landed.
func (t *tx) flush(ctx context.Context) error {
	const op = "mongostore.Update"
	s, u := t.s, t.u
	if len(u.writes) == 0 && u.plan == nil {
		return s.saveAnswers(ctx, u.saved)
	}
	if u.plan != nil || restamps(u.writes) {
		if err := s.move(ctx, u.plan, u.writes); err != nil {
			if errors.Is(err, errLostRace) {
				return err
			}
			return fail(op, err)
		}
		return s.saveAnswers(ctx, u.saved)
	}
	seqs, err := s.takeSeqs(ctx, len(u.writes))
	if err != nil {
		return fail(op, err) // the seqs taken are settled by their lease
	}
	for i, w := range u.writes {
		w.seq, w.doc.Seq = seqs[i], seqs[i]
	}
	if s.stall != nil {
		s.stall()
	}
	landed, lost, err := s.writeHeld(ctx, u.writes)
	if err != nil {
		return fail(op, err)
	}
	if err := s.settleLanded(ctx, landed); err != nil {
		return fail(op, err)
	}
	if len(lost) > 0 {
		return errLostRace // answers wait for the run that decides afresh
	}
	return s.saveAnswers(ctx, u.saved)
}

// writeAt writes r at seq, which the caller has taken, over the record
// was describes, and sets r.Seq, leaving seq pending; sync.ErrStale, with
// seq given up, when the version guard fails. Tests use it to stop a
// write where a crash would.
func (s *Store) writeAt(ctx context.Context, r *sync.Record, was prior, seq int64) error {
	w := &pendingWrite{key: recordKey(r.Collection, r.ID), was: was, doc: newRecordDoc(r, seq), recs: []*sync.Record{r}, seq: seq}
	_, lost, err := s.writeHeld(ctx, []*pendingWrite{w})
	if err != nil {
		return fail("mongostore.Put", err)
	}
	if len(lost) > 0 {
		return sync.ErrStale
	}
	r.Seq = seq
	return nil
}

// writeHeld writes the held writes, whose seqs are taken: first the index
// entries of changed facts, the audit entries they drop and the gone
// documents of the tokens they lose, then the record documents, then what
// follows their landing, short of marking the seqs done. It returns the
// writes that landed and those whose guard failed (given up). On an error
// the seqs stay pending, as writes may have landed: their lease settles
// them.
func (s *Store) writeHeld(ctx context.Context, writes []*pendingWrite) (landed, lost []*pendingWrite, err error) {
	var entries, gone []any
	var dropped []auditDoc
	for _, w := range writes {
		if !slices.Equal(w.was.facts, w.doc.Facts) {
			entries = append(entries, newFactEntries(w.doc, w.seq)...)
		}
		dropped = append(dropped, droppedAudit(append(slices.Clone(w.was.audit), w.seen...), w.doc.Audit)...)
		for _, tok := range missing(w.was.tokens, w.doc.Tokens) {
			gone = append(gone, goneDoc{Coll: w.doc.Coll, ID: w.doc.ID, Token: tok, Seq: w.seq})
		}
	}
	unordered := options.InsertMany().SetOrdered(false)
	if len(entries) > 0 {
		if _, err := s.facts.InsertMany(ctx, entries, unordered); err != nil {
			s.giveUp(ctx, writes, false)
			return nil, nil, fmt.Errorf("facts: %w", err)
		}
	}
	// Entries leave a record document only once they are in the audit
	// collection in full (see audit.go).
	if err := s.projectFull(ctx, dropped); err != nil {
		s.giveUp(ctx, writes, false)
		return nil, nil, fmt.Errorf("audit: %w", err)
	}
	if len(gone) > 0 {
		if _, err := s.gone.InsertMany(ctx, gone, unordered); err != nil {
			s.giveUp(ctx, writes, false)
			return nil, nil, fmt.Errorf("gone: %w", err)
		}
	}
	uncertain := false
	for chunk := range slices.Chunk(writes, bulkChunk) {
		in, out, unsure, err := s.writeDocs(ctx, chunk)
		if err != nil {
			return nil, nil, err
		}
		landed, lost, uncertain = append(landed, in...), append(lost, out...), uncertain || unsure
	}
	if len(lost) > 0 {
		s.giveUp(ctx, lost, uncertain)
	}
	s.afterLanding(ctx, landed)
	return landed, lost, nil
}

// newFactEntries returns the index entries of doc's facts, tagged with
// seq.
func newFactEntries(doc *recordDoc, seq int64) []any {
	entries := make([]any, len(doc.Facts))
	for i, f := range doc.Facts {
		entries[i] = factEntry{
			Key: doc.Key + "/" + fmt.Sprint(seq) + "/" + fmt.Sprint(i), Rec: doc.Key, Seq: seq,
			Kind: f.Kind, Territory: f.Territory, Customer: f.Customer, Rep: f.Rep, At: f.At,
		}
	}
	return entries
}

// takeSeqs takes n seqs, pending under a lease, in ascending order: a
// block after the highest seq, inserted in order, so that each seq is
// inserted after the one below it exists. When another writer takes one
// of the block first, the inserts stop there and the rest is taken after
// the new highest seq.
func (s *Store) takeSeqs(ctx context.Context, n int) ([]int64, error) {
	var out []int64
	for len(out) < n {
		top, err := s.topSeq(ctx)
		if err != nil {
			return out, err
		}
		lease := s.now().Add(s.lease()).UnixNano()
		docs := make([]any, n-len(out))
		for i := range docs {
			docs[i] = seqDoc{Seq: top + 1 + int64(i), State: seqPending, LeaseUntil: lease}
		}
		_, err = s.seqs.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
		taken := len(docs)
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || len(bwe.WriteErrors) != 1 || !mongo.IsDuplicateKeyError(err) {
				return out, fmt.Errorf("seq: %w", err)
			}
			taken = bwe.WriteErrors[0].Index
		}
		for i := range taken {
			out = append(out, top+1+int64(i))
		}
	}
	return out, nil
}

// bulkChunk is how many statements a bulk update or delete carries at
// most: FerretDB v1 hangs on an update command of 500 statements (and a
// few more commands cost little on MongoDB).
const bulkChunk = 50

// bulkWrite runs models on c, bulkChunk at a time, unordered; failing
// leaves the rest undone.
func bulkWrite(ctx context.Context, c *mongo.Collection, models []mongo.WriteModel) error {
	for chunk := range slices.Chunk(models, bulkChunk) {
		if _, err := c.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false)); err != nil {
			return err
		}
	}
	return nil
}

// writeDocs writes the record documents in one bulk write and sorts the
// writes into those that landed and those that lost their guard.
//
// uncertain says that some of those counted lost may have landed and been
// replaced since by another writer.
func (s *Store) writeDocs(ctx context.Context, writes []*pendingWrite) (landed, lost []*pendingWrite, uncertain bool, err error) {
	models := make([]mongo.WriteModel, len(writes))
	replaces := 0
	for i, w := range writes {
		if w.was.seq == 0 { // there was no record: every stored one has a seq
			models[i] = mongo.NewInsertOneModel().SetDocument(w.doc)
		} else {
			replaces++
			models[i] = mongo.NewReplaceOneModel().SetFilter(bson.M{"_id": w.key, "version": w.was.version, "seq": w.was.seq}).SetReplacement(w.doc)
		}
	}
	res, err := s.records.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	failed := map[int]bool{}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) && bwe.WriteConcernError == nil {
		for _, we := range bwe.WriteErrors {
			if !mongo.IsDuplicateKeyError(mongo.WriteException{WriteErrors: mongo.WriteErrors{we.WriteError}}) || writes[we.Index].was.seq != 0 {
				return nil, nil, false, err
			}
			failed[we.Index] = true
		}
	} else if err != nil {
		return nil, nil, false, err
	}
	if res != nil && res.MatchedCount == 0 && replaces > 0 {
		for i, w := range writes {
			if w.was.seq != 0 {
				failed[i] = true
			}
		}
	} else if res != nil && int(res.MatchedCount) < replaces {
		// Some guard failed: a replaced document carries the write's seq
		// if the write landed, unless another write replaced it since.
		var keys []string
		for _, w := range writes {
			if w.was.seq != 0 {
				keys = append(keys, w.key)
			}
		}
		var docs []struct {
			Key string `bson:"_id"`
			Seq int64  `bson:"seq"`
		}
		cur, err := s.records.Find(ctx, bson.M{"_id": bson.M{"$in": keys}},
			options.Find().SetProjection(bson.M{"seq": 1}).SetBatchSize(int32(len(keys))))
		if err != nil {
			return nil, nil, false, err
		}
		if err := cur.All(ctx, &docs); err != nil {
			return nil, nil, false, err
		}
		carried := map[string]int64{}
		for _, d := range docs {
			carried[d.Key] = d.Seq
		}
		mismatched := 0
		for i, w := range writes {
			if w.was.seq != 0 && carried[w.key] != w.seq {
				failed[i] = true
				mismatched++
			}
		}
		// More than failed: some landed and were replaced since, and
		// which ones cannot be told.
		uncertain = mismatched > replaces-int(res.MatchedCount)
	}
	for i, w := range writes {
		if failed[i] {
			lost = append(lost, w)
		} else {
			landed = append(landed, w)
		}
	}
	return landed, lost, uncertain, nil
}

// giveUp undoes what writes that did not land wrote before their record
// documents: the gone documents of the tokens lost, the index entries of
// their facts, and gives their seqs up. Each step may fail harmlessly: a
// gone document is reported only while the record holds none of the
// tokens asked for, when the loss it tells of is true anyway; an index
// entry of facts the record does not have only costs a read of the record
// (see reports.go); and the lease settles a seq. When uncertain, the gone
// documents of replaces stay: one of them may have landed and been
// replaced since, and then its gone documents tell a true loss.
func (s *Store) giveUp(ctx context.Context, writes []*pendingWrite, uncertain bool) {
	var seqs, gone []int64
	for _, w := range writes {
		seqs = append(seqs, w.seq)
		if w.was.seq == 0 || !uncertain {
			gone = append(gone, w.seq)
		}
	}
	if len(gone) > 0 {
		s.gone.DeleteMany(ctx, bson.M{"seq": bson.M{"$in": gone}})
	}
	s.facts.DeleteMany(ctx, bson.M{"seq": bson.M{"$in": seqs}})
	s.seqs.UpdateMany(ctx, bson.M{"_id": bson.M{"$in": seqs}, "state": seqPending}, bson.M{"$set": bson.M{"state": seqAbandoned}})
}

// afterLanding follows the writes that landed: projects their audit
// entries and deletes the fact entries and gone documents they made
// obsolete. Each step may fail harmlessly: an entry missing from the audit
// collection is projected by the record's next write or SweepAudit; a
// fact entry left over is read in vain; a gone document is reported only
// while its record holds none of the tokens asked for.
func (s *Store) afterLanding(ctx context.Context, landed []*pendingWrite) {
	var audit []auditDoc
	var unindex, regained []mongo.WriteModel
	for _, w := range landed {
		audit = append(audit, w.doc.Audit...)
		if w.was.seq == 0 {
			continue
		}
		if !slices.Equal(w.was.facts, w.doc.Facts) {
			unindex = append(unindex, mongo.NewDeleteManyModel().SetFilter(bson.M{"rec": w.key, "seq": bson.M{"$lt": w.seq}}))
		}
		if gained := missing(w.doc.Tokens, w.was.tokens); len(gained) > 0 {
			regained = append(regained, mongo.NewDeleteManyModel().SetFilter(
				bson.M{"coll": w.doc.Coll, "rid": w.doc.ID, "token": bson.M{"$in": gained}, "seq": bson.M{"$lt": w.seq}}))
		}
	}
	s.project(ctx, audit)
	bulkWrite(ctx, s.facts, unindex)
	// Losses of tokens the record holds again are over. A later loss is
	// recorded by a writer that read this write, so at a later seq: only
	// earlier ones go.
	bulkWrite(ctx, s.gone, regained)
}

// settleLanded marks the seqs of the writes that landed done, re-stamping
// where a reader abandoned one meanwhile, and sets the seq of their
// records.
func (s *Store) settleLanded(ctx context.Context, landed []*pendingWrite) error {
	if len(landed) == 0 {
		return nil
	}
	seqs := make([]int64, len(landed))
	for i, w := range landed {
		seqs[i] = w.seq
	}
	res, err := s.seqs.UpdateMany(ctx, bson.M{"_id": bson.M{"$in": seqs}, "state": seqPending}, bson.M{"$set": bson.M{"state": seqDone}})
	if err != nil {
		return fmt.Errorf("seqs: %w", err)
	}
	final := map[int64]int64{}
	if int(res.ModifiedCount) < len(seqs) {
		// A reader settled some seq first, done or abandoned: finish
		// tells which, and re-stamps what carries an abandoned one.
		for _, seq := range seqs {
			if final[seq], err = s.finish(ctx, seq); err != nil {
				return err
			}
		}
	}
	for _, w := range landed {
		seq := w.seq
		if f, ok := final[seq]; ok {
			seq = f
		}
		for _, r := range w.recs {
			r.Seq = seq
		}
	}
	if first, last := seqs[0], seqs[len(seqs)-1]; first/trimEvery != last/trimEvery || first%trimEvery == 0 {
		s.trim(ctx, last-last%trimEvery)
	}
	return nil
}

// saveAnswers stores answers; the first one of a mutation stays.
func (s *Store) saveAnswers(ctx context.Context, answers []answerDoc) error {
	if len(answers) == 0 {
		return nil
	}
	docs := make([]any, len(answers))
	for i := range answers {
		docs[i] = answers[i]
	}
	_, err := s.answers.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err != nil && !onlyDuplicates(err) {
		return fail("mongostore.SaveAnswer", err)
	}
	return nil
}

// onlyDuplicates reports whether err is a bulk write's duplicate keys
// and nothing else.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(mongo.WriteException{WriteErrors: mongo.WriteErrors{we.WriteError}}) {
			return false
		}
	}
	return true
}

// refQuery is a query of RecordsByRef without its limit.
type refQuery struct {
	coll, ref, after string
}

// refResult is what the store answered to a refQuery, before the unit's
// writes are merged in: the first limit documents, all there are unless
// full.
type refResult struct {
	docs  []*recordDoc
	limit int
	full  bool
}

// recordsByRef is RecordsByRef within a unit: the store's answer, read
// once per query and limit, merged with the unit's own writes.
func (t *tx) recordsByRef(ctx context.Context, c schema.Collection, ref, after string, limit int) ([]*recordDoc, error) {
	// Each write of the unit over a stored record may take one stored
	// document out of the answer: read that many more.
	replaced := 0
	for _, w := range t.u.writes {
		if w.doc.Coll == string(c) && w.was.seq != 0 {
			replaced++
		}
	}
	need := limit + replaced
	q := refQuery{string(c), ref, after}
	res := t.u.refs[q]
	if res == nil || (res.full && res.limit < need) {
		docs, err := t.s.findRecords(ctx, bson.M{"coll": string(c), "refs": ref, "rid": bson.M{"$gt": after}}, "rid", need)
		if err != nil {
			return nil, err
		}
		if err := t.planned(ctx, docs); err != nil {
			return nil, err
		}
		res = &refResult{docs: docs, limit: need, full: len(docs) == need}
		// Known from now on, as a read of each would have found them: a
		// Put of one (a re-stamp) reads it no more.
		for _, d := range docs {
			if _, known := t.u.docs[d.Key]; !known {
				t.u.docs[d.Key] = d
			}
		}
		t.u.refs[q] = res
	}
	byKey := map[string]*recordDoc{}
	for _, d := range res.docs {
		byKey[d.Key] = d
	}
	for _, w := range t.u.writes {
		if w.doc.Coll != string(c) {
			continue
		}
		if slices.Contains(w.doc.Refs, ref) && w.doc.ID > after {
			byKey[w.key] = w.doc
		} else {
			delete(byKey, w.key)
		}
	}
	out := make([]*recordDoc, 0, len(byKey))
	for _, d := range byKey {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b *recordDoc) int { return strings.Compare(a.ID, b.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// repResult is the records that had, when the unit read them, a fact of a
// kind by a rep later than after; nil records when there were too many to
// keep.
type repResult struct {
	after time.Time
	recs  []string
}

// maxRepEntries bounds the fact entries a unit keeps per rep and kind.
const maxRepEntries = 1000

// repFactAfter is RepFactAfter within a unit: the unit's writes first,
// then the records the store's index names (found once per rep and kind
// for the earliest after asked), each read once, unless the unit wrote
// it. known is false when the entries were too many to keep.
func (t *tx) repFactAfter(ctx context.Context, kind, rep string, after time.Time, except string) (found, known bool, err error) {
	later := func(facts []factDoc) bool {
		return slices.ContainsFunc(facts, func(f factDoc) bool { return f.Kind == kind && f.Rep == rep && f.At > after.UnixNano() })
	}
	isExcept := func(key string) bool { return strings.HasSuffix(key, "/"+except) }
	for _, w := range t.u.writes {
		if !isExcept(w.key) && later(w.doc.Facts) {
			return true, true, nil
		}
	}
	q := kind + "\x00" + rep
	res := t.u.reps[q]
	if res == nil || after.Before(res.after) {
		cur, err := t.s.facts.Find(ctx, bson.M{"kind": kind, "rep": rep, "at": bson.M{"$gt": after.UnixNano()}},
			options.Find().SetProjection(bson.M{"rec": 1}).SetLimit(maxRepEntries+1).SetBatchSize(maxRepEntries+1))
		if err != nil {
			return false, false, err
		}
		var entries []factEntry
		if err := cur.All(ctx, &entries); err != nil {
			return false, false, err
		}
		if len(entries) > maxRepEntries {
			return false, false, nil
		}
		res = &repResult{after: after}
		for _, e := range entries {
			if !slices.Contains(res.recs, e.Rec) {
				res.recs = append(res.recs, e.Rec)
			}
		}
		t.u.reps[q] = res
	}
	var unread []string
	for _, key := range res.recs {
		if _, written := t.u.byKey[key]; written || isExcept(key) {
			continue
		}
		if _, ok := t.u.facts[key]; !ok {
			unread = append(unread, key)
		}
	}
	if len(unread) > 0 {
		held, err := t.s.recordFacts(ctx, unread)
		if err != nil {
			return false, false, err
		}
		for _, key := range unread {
			t.u.facts[key] = nil
		}
		for _, h := range held {
			t.u.facts[h.Key] = h.Facts
		}
	}
	for _, key := range res.recs {
		if _, written := t.u.byKey[key]; !written && !isExcept(key) && later(t.u.facts[key]) {
			return true, true, nil
		}
	}
	return false, true, nil
}
