package mongostore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/schema"
)

// Moves: re-stamps in bounded batches that survive a crash.
//
// When a customer moves, the engine re-stamps its dependents (visits,
// orders, price lists, the photos of those visits) in the same unit of
// work as the customer's own write: a customer with thousands of visits
// makes a unit of thousands of writes. Written as an ordinary unit, a
// crash half way would leave the customer and some dependents in the new
// territory and the rest in the old one for good: the old territory's
// readers would keep records they may no longer read, and the new one's
// would never get the others.
//
// So a unit that re-stamps (a write that changes a record's tokens at
// the same version) is a move, written like this:
//
//  1. Take a hold: a seq, pending, flagged as a move, with an owner and
//     a lease. It is taken before any seq of the move's writes, so while
//     it is pending the watermark stays below every one of them.
//  2. Write the plan: every held write of the unit, as it would go out,
//     in move_items documents keyed by hold and record, numbered in order,
//     bounded batches of inserts. The unit writes its re-stamps out while
//     it runs, a batch at a time, and forgets them (a later read of one
//     finds it in the plan), so that its writer holds a few batches of
//     records whatever the number of dependents; the rest of the unit's
//     writes join the plan when it ends. A unit that fails gives its hold
//     up and drops the plan.
//  3. Mark the hold ready, guarded on its owner and its not being ready
//     yet. From here the move will be finished, by its writer or by
//     whoever finds its lease run out.
//  4. Apply the plan in batches of MoveBatch writes, read back from the
//     plan a batch at a time, each written as an
//     ordinary unit writes (its own seqs, gone documents, guarded record
//     writes, seqs marked done), and after each batch record how far it
//     got and renew the lease, guarded on the owner.
//  5. Delete the plan, then mark the hold done.
//
// A reader computing the watermark that finds the hold pending leaves it
// while its lease runs. Once the lease has run out, a hold not yet ready
// is abandoned (guarded on not being ready, so of it and step 3 one wins)
// and its plan deleted: nothing of the move was written, and the push that
// made it was not answered, so its client sends it again. A ready hold is
// claimed (guarded on the owner and lease read) and its plan applied from
// where its writer left it, by the reader's own store, in the same
// batches (every instance's change-feed watcher computes the watermark at
// each poll, so this happens even when nobody pulls); a write of the plan whose guard fails was either already
// applied by the writer that died or overtaken by a later write of the
// record, and is dropped either way.
//
// What readers see. Every seq of the move is above the hold, and the
// watermark stays below the hold until the whole plan is applied. A pull
// up to the watermark reads records at seqs below it, which the move has
// not touched, or which it has moved above it and out of that read: the
// reader sees the state before the move, and nothing of it. Once the hold
// is done, every dependent carries its new tokens at a seq above the
// hold, with gone documents for the tokens it lost: a holder of the old
// territory gets a removal for each one it can no longer read, a holder
// of the new one gets each one, and nobody else gets anything, as with a
// move in one transaction.
//
// The price: while a move is applied, the whole feed waits for it (every
// other write lands, but readers see it only when the hold is done), and
// after a crash until a reader has taken it over and finished it, a lease
// later at the earliest.

// DefaultMoveBatch is how many writes of a move go out together when
// Store.MoveBatch is zero.
const DefaultMoveBatch = 100

// moveItem is one held write of a move's plan: the record document as
// it will be written and what the write replaces. A plan holds one item
// per record.
type moveItem struct {
	Key        string     `bson:"_id"` // hold/record key
	Hold       int64      `bson:"hold"`
	N          int        `bson:"n"`
	Doc        *recordDoc `bson:"doc"`
	WasVersion int64      `bson:"was_version"`
	WasSeq     int64      `bson:"was_seq"`
	WasTokens  []string   `bson:"was_tokens"`
	WasFacts   []factDoc  `bson:"was_facts"`
	WasAudit   []auditDoc `bson:"was_audit"`
	Seen       []auditDoc `bson:"seen"`
}

// itemKey is the _id of the item of the record key in hold's plan.
func itemKey(hold int64, key string) string { return fmt.Sprintf("%d/%s", hold, key) }

func newMoveItem(hold int64, n int, w *pendingWrite) moveItem {
	return moveItem{
		Key: itemKey(hold, w.key), Hold: hold, N: n, Doc: w.doc,
		WasVersion: w.was.version, WasSeq: w.was.seq, WasTokens: w.was.tokens, WasFacts: w.was.facts, WasAudit: w.was.audit,
		Seen: w.seen,
	}
}

// write returns the held write the item plans.
func (it *moveItem) write() *pendingWrite {
	return &pendingWrite{
		key: it.Doc.Key, doc: it.Doc, seen: it.Seen,
		was: prior{version: it.WasVersion, seq: it.WasSeq, tokens: it.WasTokens, facts: it.WasFacts, audit: it.WasAudit},
	}
}

// plan is what the writer of a move knows of its plan while its unit
// runs: the hold, how many items are written out, and the items of
// records the unit read again after writing them out.
type plan struct {
	hold    int64
	owner   string
	n       int // items written so far: the next item's position
	renewAt time.Time
	// reread holds, by record key, the items whose record the unit read
	// again: a new write of one replaces its item, over what the item
	// replaced.
	reread map[string]*moveItem
}

// item returns the item of the record key that the unit read again; nil
// when there is none (or no plan).
func (p *plan) item(key string) *moveItem {
	if p == nil {
		return nil
	}
	return p.reread[key]
}

// errMoveTaken says that a move's writer lost its hold: its lease ran out
// and another took the move over, or gave it up before it was ready.
var errMoveTaken = fmt.Errorf("%w: the move was taken over after its lease ran out", schema.ErrUnavailable)

// restamps reports whether writes re-stamp a record.
func restamps(writes []*pendingWrite) bool { return slices.ContainsFunc(writes, restamp) }

// restamp reports whether w re-stamps a record: changes the tokens of a
// stored record at the same version.
func restamp(w *pendingWrite) bool {
	return w.was.seq != 0 && w.doc.Version == w.was.version && !slices.Equal(w.was.tokens, w.doc.Tokens)
}

func (s *Store) moveBatchSize() int {
	if s.MoveBatch > 0 {
		return s.MoveBatch
	}
	return DefaultMoveBatch
}

// newOwner returns a fresh owner for a hold.
func newOwner() string { return rand.Text() }

// startPlan takes the hold of a new move.
func (s *Store) startPlan(ctx context.Context) (*plan, error) {
	owner := newOwner()
	hold, err := s.insertSeq(ctx, seqDoc{Move: true, Owner: owner})
	if err != nil {
		return nil, err
	}
	return &plan{hold: hold, owner: owner, renewAt: s.now().Add(s.lease() / 2), reread: map[string]*moveItem{}}, nil
}

// writePlan adds writes to p's plan, a batch of inserts at a time, in
// place of the items of the records the unit read again, and renews the
// hold's lease as it goes; errMoveTaken when the hold is no longer p's.
func (s *Store) writePlan(ctx context.Context, p *plan, writes []*pendingWrite) error {
	var replaced []string
	for _, w := range writes {
		if p.item(w.key) != nil {
			replaced = append(replaced, itemKey(p.hold, w.key))
			delete(p.reread, w.key)
		}
	}
	if len(replaced) > 0 {
		if _, err := s.moveItems.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": replaced}}); err != nil {
			return fmt.Errorf("move plan: %w", err)
		}
	}
	for chunk := range slices.Chunk(writes, s.moveBatchSize()) {
		items := make([]any, len(chunk))
		for i, w := range chunk {
			items[i] = newMoveItem(p.hold, p.n+i, w)
		}
		if _, err := s.moveItems.InsertMany(ctx, items, options.InsertMany().SetOrdered(false)); err != nil {
			return fmt.Errorf("move plan: %w", err)
		}
		p.n += len(chunk)
		if now := s.now(); now.After(p.renewAt) {
			// A plan that takes long to write keeps its hold.
			res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": p.hold, "state": seqPending, "owner": p.owner},
				bson.M{"$set": bson.M{"lease_until": now.Add(s.lease()).UnixNano()}})
			if err != nil {
				return fmt.Errorf("move %d: %w", p.hold, err)
			}
			if res.MatchedCount == 0 {
				return errMoveTaken
			}
			p.renewAt = now.Add(s.lease() / 2)
		}
	}
	return nil
}

// spill bounds what a unit that re-stamps holds: once its held re-stamps
// make a batch, it writes them out to the plan of the unit's move (taking
// the move's hold first) and forgets them, with the query results that
// held them. A later read of such a record finds its planned write (see
// planned). Nothing of the plan is applied before the unit ends and marks
// it ready; a unit that fails gives its move up (see abandonPlan). key is
// the record just held: only a re-stamp can complete a batch.
func (t *tx) spill(ctx context.Context, key string) error {
	s, u := t.s, t.u
	if s.afterHold != nil {
		s.afterHold(u.held())
	}
	if w := u.byKey[key]; w == nil || !restamp(w) || len(u.writes) < s.moveBatchSize() {
		return nil
	}
	var out []*pendingWrite
	for _, w := range u.writes {
		if restamp(w) && u.plan.item(w.key) == nil {
			out = append(out, w)
		}
	}
	if len(out) < s.moveBatchSize() {
		return nil
	}
	if u.plan == nil {
		p, err := s.startPlan(ctx)
		if err != nil {
			return fail("mongostore.Put", err)
		}
		u.plan = p
	}
	if err := s.writePlan(ctx, u.plan, out); err != nil {
		return fail("mongostore.Put", err)
	}
	for _, w := range out {
		delete(u.byKey, w.key)
		delete(u.docs, w.key)
	}
	u.writes = slices.DeleteFunc(u.writes, func(w *pendingWrite) bool { return u.byKey[w.key] != w })
	clear(u.refs)
	return nil
}

// held counts the record documents a unit holds: read, written, and in
// the query results it keeps.
func (u *unit) held() int {
	docs := map[*recordDoc]bool{}
	for _, d := range u.docs {
		docs[d] = true
	}
	for _, w := range u.writes {
		docs[w.doc] = true
	}
	for _, r := range u.refs {
		for _, d := range r.docs {
			docs[d] = true
		}
	}
	delete(docs, nil)
	return len(docs)
}

// planned replaces, in docs just read from the store, each record whose
// write the unit has written out to its plan by that write, and keeps its
// item in the plan's reread.
func (t *tx) planned(ctx context.Context, docs []*recordDoc) error {
	if t.u == nil || t.u.plan == nil || len(docs) == 0 {
		return nil
	}
	p := t.u.plan
	at := map[string]int{}
	var ids []string
	for i, d := range docs {
		if d != nil {
			at[d.Key] = i
			ids = append(ids, itemKey(p.hold, d.Key))
		}
	}
	cur, err := t.s.moveItems.Find(ctx, bson.M{"_id": bson.M{"$in": ids}})
	if err != nil {
		return fmt.Errorf("move plan: %w", err)
	}
	var items []*moveItem
	if err := cur.All(ctx, &items); err != nil {
		return fmt.Errorf("move plan: %w", err)
	}
	for _, it := range items {
		docs[at[it.Doc.Key]] = it.Doc
		p.reread[it.Doc.Key] = it
	}
	return nil
}

// abandonPlan gives up the move of a unit that fails before its end: its
// hold is abandoned, unless ready (which only its writer makes it), and
// its plan dropped. Failing harmlessly: the lease settles the hold.
func (s *Store) abandonPlan(ctx context.Context, p *plan) {
	if p == nil {
		return
	}
	// Never ready, the hold is abandoned by now, whoever did it, and its
	// plan never applied.
	s.seqs.UpdateOne(ctx, bson.M{"_id": p.hold, "state": seqPending, "owner": p.owner, "ready": bson.M{"$ne": true}},
		bson.M{"$set": bson.M{"state": seqAbandoned}})
	s.dropPlan(ctx, p.hold)
}

// move writes a unit's held writes as a move (see above), after the
// writes the unit wrote out to p's plan while it ran (p nil: none);
// errLostRace when a guarded write lost, after the others landed.
func (s *Store) move(ctx context.Context, p *plan, writes []*pendingWrite) error {
	if p == nil {
		var err error
		if p, err = s.startPlan(ctx); err != nil {
			return err
		}
	}
	spilled := p.n
	if err := s.writePlan(ctx, p, writes); err != nil {
		s.dropPlan(ctx, p.hold)
		return err
	}
	res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": p.hold, "state": seqPending, "owner": p.owner, "ready": bson.M{"$ne": true}},
		bson.M{"$set": bson.M{"ready": true, "lease_until": s.now().Add(s.lease()).UnixNano()}})
	if err != nil {
		return fmt.Errorf("move %d: %w", p.hold, err) // the lease settles it
	}
	if res.MatchedCount == 0 {
		s.dropPlan(ctx, p.hold)
		return errMoveTaken
	}
	lost, err := s.applyPlan(ctx, p.hold, p.owner, 0, spilled)
	if err != nil {
		return err
	}
	for i := 0; i < len(writes); i += s.moveBatchSize() {
		batch := writes[i:min(i+s.moveBatchSize(), len(writes))]
		out, err := s.applyMoveBatch(ctx, p.hold, p.owner, batch, spilled+i+len(batch))
		if err != nil {
			return err
		}
		lost = lost || out
	}
	if err := s.endMove(ctx, p.hold, p.owner); err != nil {
		return err
	}
	if lost {
		return errLostRace
	}
	return nil
}

// applyPlan applies the items of hold's plan at positions from to below
// to, reading them back a batch at a time; it reports whether a write
// lost its guard.
func (s *Store) applyPlan(ctx context.Context, hold int64, owner string, from, to int) (lost bool, err error) {
	for next := from; next < to; {
		batch, last, err := s.planBatch(ctx, hold, next, to)
		if err != nil {
			return lost, err
		}
		if len(batch) == 0 {
			break
		}
		next = last + 1
		out, err := s.applyMoveBatch(ctx, hold, owner, batch, next)
		if err != nil {
			return lost, err
		}
		lost = lost || out
	}
	return lost, nil
}

// applyMoveBatch writes one batch of a move's plan as a unit writes, then
// records that the plan is applied up to position next and renews the
// hold's lease. It reports whether a write lost its guard; errMoveTaken
// when the hold is no longer owner's.
func (s *Store) applyMoveBatch(ctx context.Context, hold int64, owner string, batch []*pendingWrite, next int) (lost bool, err error) {
	seqs, err := s.takeSeqs(ctx, len(batch))
	if err != nil {
		return false, err
	}
	for i, w := range batch {
		w.seq, w.doc.Seq = seqs[i], seqs[i]
	}
	landed, out, err := s.writeHeld(ctx, batch)
	if err != nil {
		return false, err
	}
	if err := s.settleLanded(ctx, landed); err != nil {
		return false, err
	}
	res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": hold, "state": seqPending, "owner": owner},
		bson.M{"$set": bson.M{"next": next, "lease_until": s.now().Add(s.lease()).UnixNano()}})
	if err != nil {
		return false, fmt.Errorf("move %d: %w", hold, err)
	}
	if res.MatchedCount == 0 {
		return false, errMoveTaken
	}
	if s.afterMoveBatch != nil {
		if err := s.afterMoveBatch(next); err != nil {
			return false, err
		}
	}
	return len(out) > 0, nil
}

// endMove deletes an applied plan and marks its hold done. A hold taken
// over meanwhile is ended by its new owner, who finds the plan gone.
func (s *Store) endMove(ctx context.Context, hold int64, owner string) error {
	if _, err := s.moveItems.DeleteMany(ctx, bson.M{"hold": hold}); err != nil {
		return fmt.Errorf("move %d: %w", hold, err)
	}
	if _, err := s.seqs.UpdateOne(ctx, bson.M{"_id": hold, "state": seqPending, "owner": owner}, bson.M{"$set": bson.M{"state": seqDone}}); err != nil {
		return fmt.Errorf("move %d: %w", hold, err)
	}
	return nil
}

// dropPlan deletes a plan that will not be applied. It may fail
// harmlessly: a plan whose hold is settled is never read, and
// sweepPlans deletes it later.
func (s *Store) dropPlan(ctx context.Context, hold int64) {
	s.moveItems.DeleteMany(ctx, bson.M{"hold": hold})
}

// settleMove deals with the hold h, pending and past its lease, for a
// reader computing the watermark: a hold not ready is abandoned and its
// plan dropped; a ready one is claimed and its plan applied from where
// its owner left it. Losing either race to another reader is no error:
// the watermark is read again.
func (s *Store) settleMove(ctx context.Context, h seqDoc) error {
	if !h.Ready {
		res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": h.Seq, "state": seqPending, "ready": bson.M{"$ne": true}, "lease_until": h.LeaseUntil},
			bson.M{"$set": bson.M{"state": seqAbandoned}})
		if err != nil {
			return fmt.Errorf("move %d: %w", h.Seq, err)
		}
		if res.MatchedCount == 1 {
			s.dropPlan(ctx, h.Seq)
		}
		return nil
	}
	owner := newOwner()
	res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": h.Seq, "state": seqPending, "owner": h.Owner, "lease_until": h.LeaseUntil},
		bson.M{"$set": bson.M{"owner": owner, "lease_until": s.now().Add(s.lease()).UnixNano()}})
	if err != nil {
		return fmt.Errorf("move %d: %w", h.Seq, err)
	}
	if res.MatchedCount == 0 {
		return nil
	}
	if _, err := s.applyPlan(ctx, h.Seq, owner, h.Next, math.MaxInt); err != nil {
		if errors.Is(err, errMoveTaken) {
			return nil
		}
		return err
	}
	return s.endMove(ctx, h.Seq, owner)
}

// planBatch reads the next batch of hold's plan, from position next and
// below to, as held writes, with the position of the last.
func (s *Store) planBatch(ctx context.Context, hold int64, next, to int) ([]*pendingWrite, int, error) {
	cur, err := s.moveItems.Find(ctx, bson.M{"hold": hold, "n": bson.M{"$gte": next, "$lt": to}},
		options.Find().SetSort(ascending("n")).SetLimit(int64(s.moveBatchSize())))
	if err != nil {
		return nil, 0, fmt.Errorf("move %d: %w", hold, err)
	}
	var items []moveItem
	if err := cur.All(ctx, &items); err != nil {
		return nil, 0, fmt.Errorf("move %d: %w", hold, err)
	}
	if len(items) == 0 {
		return nil, 0, nil
	}
	batch := make([]*pendingWrite, len(items))
	for i := range items {
		batch[i] = items[i].write()
	}
	return batch, items[len(items)-1].N, nil
}

// sweepPlans deletes the items of plans whose hold is settled: left when
// dropPlan or endMove failed, or the process died between settling a hold
// and deleting its plan. A settled hold's plan is never read again.
func (s *Store) sweepPlans(ctx context.Context) error {
	holds, err := s.moveItems.Distinct(ctx, "hold", bson.M{})
	if err != nil {
		return fmt.Errorf("sweep plans: %w", err)
	}
	if len(holds) == 0 {
		return nil
	}
	cur, err := s.seqs.Find(ctx, bson.M{"_id": bson.M{"$in": holds}, "state": seqPending}, options.Find().SetProjection(bson.M{"_id": 1}))
	if err != nil {
		return fmt.Errorf("sweep plans: %w", err)
	}
	var pending []seqDoc
	if err := cur.All(ctx, &pending); err != nil {
		return fmt.Errorf("sweep plans: %w", err)
	}
	live := map[int64]bool{}
	for _, p := range pending {
		live[p.Seq] = true
	}
	settled := slices.DeleteFunc(holds, func(h any) bool {
		seq, ok := h.(int64)
		return !ok || live[seq]
	})
	if len(settled) == 0 {
		return nil
	}
	if _, err := s.moveItems.DeleteMany(ctx, bson.M{"hold": bson.M{"$in": settled}}); err != nil {
		return fmt.Errorf("sweep plans: %w", err)
	}
	return nil
}
