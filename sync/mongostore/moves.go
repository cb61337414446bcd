package mongostore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

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
//     in move_items documents keyed by hold and position, bounded batches
//     of inserts.
//  3. Mark the hold ready, guarded on its owner and its not being ready
//     yet. From here the move will be finished, by its writer or by
//     whoever finds its lease run out.
//  4. Apply the plan in batches of moveBatch writes, each written as an
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

// moveBatch is how many writes of a move go out together when
// Store.moveBatch is zero.
const moveBatch = 100

// moveItem is one held write of a move's plan: the record document as
// it will be written and what the write replaces.
type moveItem struct {
	Key        string     `bson:"_id"` // hold/n
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

// errMoveTaken says that a move's writer lost its hold: its lease ran out
// and another took the move over, or gave it up before it was ready.
var errMoveTaken = fmt.Errorf("%w: the move was taken over after its lease ran out", schema.ErrUnavailable)

// restamps reports whether writes re-stamp a record: change the tokens of
// a stored record at the same version.
func restamps(writes []*pendingWrite) bool {
	return slices.ContainsFunc(writes, func(w *pendingWrite) bool {
		return w.was.seq != 0 && w.doc.Version == w.was.version && !slices.Equal(w.was.tokens, w.doc.Tokens)
	})
}

func (s *Store) moveBatchSize() int {
	if s.moveBatch > 0 {
		return s.moveBatch
	}
	return moveBatch
}

// newOwner returns a fresh owner for a hold.
func newOwner() string { return rand.Text() }

// move writes a unit's held writes as a move (see above); errLostRace
// when a guarded write lost, after the others landed.
func (s *Store) move(ctx context.Context, writes []*pendingWrite) error {
	owner := newOwner()
	hold, err := s.insertSeq(ctx, seqDoc{Move: true, Owner: owner})
	if err != nil {
		return err
	}
	items := make([]any, len(writes))
	for i, w := range writes {
		items[i] = moveItem{
			Key: fmt.Sprintf("%d/%d", hold, i), Hold: hold, N: i, Doc: w.doc,
			WasVersion: w.was.version, WasSeq: w.was.seq, WasTokens: w.was.tokens, WasFacts: w.was.facts, WasAudit: w.was.audit,
			Seen: w.seen,
		}
	}
	renewAt := s.now().Add(s.lease() / 2)
	for chunk := range slices.Chunk(items, s.moveBatchSize()) {
		if _, err := s.moveItems.InsertMany(ctx, chunk, options.InsertMany().SetOrdered(false)); err != nil {
			s.dropPlan(ctx, hold)
			return fmt.Errorf("move plan: %w", err)
		}
		if now := s.now(); now.After(renewAt) {
			// A plan that takes long to write keeps its hold.
			res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": hold, "state": seqPending, "owner": owner},
				bson.M{"$set": bson.M{"lease_until": now.Add(s.lease()).UnixNano()}})
			if err != nil {
				return fmt.Errorf("move %d: %w", hold, err) // the lease settles it
			}
			if res.MatchedCount == 0 {
				s.dropPlan(ctx, hold)
				return errMoveTaken
			}
			renewAt = now.Add(s.lease() / 2)
		}
	}
	res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": hold, "state": seqPending, "owner": owner, "ready": bson.M{"$ne": true}},
		bson.M{"$set": bson.M{"ready": true, "lease_until": s.now().Add(s.lease()).UnixNano()}})
	if err != nil {
		return fmt.Errorf("move %d: %w", hold, err) // the lease settles it
	}
	if res.MatchedCount == 0 {
		s.dropPlan(ctx, hold)
		return errMoveTaken
	}
	lost := false
	for i := 0; i < len(writes); i += s.moveBatchSize() {
		batch := writes[i:min(i+s.moveBatchSize(), len(writes))]
		out, err := s.applyMoveBatch(ctx, hold, owner, batch, i+len(batch))
		if err != nil {
			return err
		}
		lost = lost || out
	}
	if err := s.endMove(ctx, hold, owner); err != nil {
		return err
	}
	if lost {
		return errLostRace
	}
	return nil
}

// applyMoveBatch writes one batch of a move's plan as a unit writes, then
// records that the plan is applied up to next and renews the hold's
// lease. It reports whether a write lost its guard; errMoveTaken when the
// hold is no longer owner's.
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
// harmlessly: a plan whose hold is settled is never read.
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
	for next := h.Next; ; {
		batch, err := s.planBatch(ctx, h.Seq, next)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		next += len(batch)
		if _, err := s.applyMoveBatch(ctx, h.Seq, owner, batch, next); err != nil {
			if errors.Is(err, errMoveTaken) {
				return nil
			}
			return err
		}
	}
	return s.endMove(ctx, h.Seq, owner)
}

// planBatch reads the next batch of hold's plan from position next, as
// held writes.
func (s *Store) planBatch(ctx context.Context, hold int64, next int) ([]*pendingWrite, error) {
	cur, err := s.moveItems.Find(ctx, bson.M{"hold": hold, "n": bson.M{"$gte": next}},
		options.Find().SetSort(ascending("n")).SetLimit(int64(s.moveBatchSize())))
	if err != nil {
		return nil, fmt.Errorf("move %d: %w", hold, err)
	}
	var items []moveItem
	if err := cur.All(ctx, &items); err != nil {
		return nil, fmt.Errorf("move %d: %w", hold, err)
	}
	batch := make([]*pendingWrite, len(items))
	for i, it := range items {
		batch[i] = &pendingWrite{
			key: it.Doc.Key, doc: it.Doc, seen: it.Seen,
			was: prior{version: it.WasVersion, seq: it.WasSeq, tokens: it.WasTokens, facts: it.WasFacts, audit: it.WasAudit},
		}
	}
	return batch, nil
}
