package mongostore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/fieldsync/fieldsync/sync"
)

// The change feed and its stable watermark, without transactions.
//
// Seqs. Every write takes a seq by reading the highest _id in the seqs
// collection and inserting {_id: top+1, state: pending, lease_until}; a
// duplicate key means another writer took it, and it tries again. So seqs
// are dense and grow in the order they are taken: when seq n exists, every
// seq below it was inserted before it. A seq is pending from the moment it
// exists, and leaves pending once, for done (its writes landed) or
// abandoned (nothing, or nothing that counts, was written at it). Both
// moves are updates guarded on state pending, so of two that race one
// wins and the other learns it.
//
// A write carries its seq: the gone documents for the tokens it loses are
// inserted first, then the record document is written in one guarded
// replace, then the seq is marked done (Put, writeAt, finish).
//
// Watermark. Read the highest seq top, then the lowest seq at or below top
// still pending: the watermark is one below it, or top when there is none.
// Every seq at or below the watermark existed when top was read and was
// seen done or abandoned after, and neither state goes back to pending,
// so every write carrying such a seq has landed: a reader that has read
// the feed up to the watermark has missed nothing.
//
// Leases. A writer that dies while its seq is pending would hold the
// watermark back for ever, so a seq's lease runs out Store.Lease after it
// was taken, and whoever computes the watermark then settles it: done if
// the record document carries it (the write landed), abandoned if not.
//
// Re-stamping. A writer that was only slow may still write at a seq after
// it was abandoned, and readers may have passed it. So finish, when it
// finds its seq abandoned (or pruned), takes a fresh seq and moves there
// whatever carries the old one, record and gone documents alike, and
// finishes the fresh seq the same way. The fresh seq is pending while it
// moves them, so no reader can pass it before they have moved.
//
// The windows that remain. A writer that stalls past its lease, writes,
// and dies before it re-stamps leaves its write at a seq readers may have
// passed: they see it once prune (run by SweepAnswers) re-stamps it, or
// with the record's next write. prune re-stamps whatever carries an
// abandoned seq before it deletes the seq, which it does at the earliest
// one lease after the lease ran out; a writer that stalls longer than
// that between taking its seq and writing, and then dies, is seen only
// with the record's next write. Processes whose clocks disagree by more
// than a lease make leases run out early, which only costs re-stamps
// while the writers live.
//
// Re-stamps and leftovers may show a record in the feed more than once;
// readers keep the highest version, as they must anyway.
//
// Reading the feed. Records are found through the tokens they hold now, at
// the seq of their last write; losses through gone documents. A gone
// document counts only while the record holds none of the tokens asked
// for: the record's own entry speaks for it then. That rule also makes
// the leftovers of lost races and crashes harmless, and matches the
// SQLite store, where a record appears once per seq and is held if it
// holds any of the tokens.

// The states of a seq.
const (
	seqPending   = "pending"
	seqDone      = "done"
	seqAbandoned = "abandoned"
)

// seqDoc is one seq in the seqs collection; LeaseUntil is Unix
// nanoseconds. A move's hold (see moves.go) also has Move set, its
// Owner, whether its plan is Ready, and how far the plan is applied
// (Next).
type seqDoc struct {
	Seq        int64  `bson:"_id"`
	State      string `bson:"state"`
	LeaseUntil int64  `bson:"lease_until"`
	Move       bool   `bson:"move,omitempty"`
	Owner      string `bson:"owner,omitempty"`
	Ready      bool   `bson:"ready,omitempty"`
	Next       int    `bson:"next,omitempty"`
}

// topSeq returns the highest seq taken, 0 when there is none.
func (s *Store) topSeq(ctx context.Context) (int64, error) {
	var d seqDoc
	err := findOne(ctx, "seq", s.seqs, bson.M{}, bson.D{{Key: "_id", Value: -1}}, &d)
	if errors.Is(err, sync.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return d.Seq, nil
}

// takeSeq takes the next seq, pending under a lease.
func (s *Store) takeSeq(ctx context.Context) (int64, error) {
	return s.insertSeq(ctx, seqDoc{})
}

// insertSeq takes the next seq as d, pending under a lease.
func (s *Store) insertSeq(ctx context.Context, d seqDoc) (int64, error) {
	for {
		top, err := s.topSeq(ctx)
		if err != nil {
			return 0, err
		}
		d.Seq, d.State, d.LeaseUntil = top+1, seqPending, s.now().Add(s.lease()).UnixNano()
		_, err = s.seqs.InsertOne(ctx, d)
		if err == nil {
			return top + 1, nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return 0, fmt.Errorf("seq: %w", err)
		}
	}
}

// settle moves seq from pending to state and reports whether it did.
func (s *Store) settle(ctx context.Context, seq int64, state string) (bool, error) {
	res, err := s.seqs.UpdateOne(ctx, bson.M{"_id": seq, "state": seqPending}, bson.M{"$set": bson.M{"state": state}})
	if err != nil {
		return false, fmt.Errorf("seq %d: %w", seq, err)
	}
	return res.MatchedCount == 1, nil
}

// abandon gives up a seq nothing was written at. It may fail harmlessly:
// the lease settles seq.
func (s *Store) abandon(ctx context.Context, seq int64) {
	s.settle(ctx, seq, seqAbandoned)
}

// finish marks seq done once the writes carrying it have landed, and
// returns the seq they carry in the end: if seq was abandoned meanwhile,
// it re-stamps them and finishes the fresh seq instead.
func (s *Store) finish(ctx context.Context, seq int64) (int64, error) {
	for {
		ok, err := s.settle(ctx, seq, seqDone)
		if err != nil {
			return seq, err
		}
		if ok {
			s.trim(ctx, seq)
			return seq, nil
		}
		var d seqDoc
		err = findOne(ctx, "seq", s.seqs, bson.M{"_id": seq}, nil, &d)
		if err == nil && d.State == seqDone {
			return seq, nil // settled by a reader that found the record
		}
		if err != nil && !errors.Is(err, sync.ErrNotFound) {
			return seq, err
		}
		next, err := s.restamp(ctx, seq)
		if err != nil || next == 0 {
			return seq, err
		}
		seq = next
	}
}

// trimEvery is how many seqs apart writers trim the seqs collection.
const trimEvery = 8

// trim deletes, every trimEvery seqs, the done seqs below seq, which its
// writer has just marked done. They are no longer needed: the highest seq
// stays, and no pending or abandoned one goes. (A writer past its lease
// that finds its seq gone re-stamps its write, which only repeats it in
// the feed.) Failing leaves them to the next trim or prune.
func (s *Store) trim(ctx context.Context, seq int64) {
	if seq%trimEvery == 0 {
		s.seqs.DeleteMany(ctx, bson.M{"state": seqDone, "_id": bson.M{"$lt": seq}})
	}
}

// restamp moves the record and gone documents that carry seq to a fresh
// seq, which it returns still pending; 0 when nothing carries seq. If it
// fails midway, the fresh seq's lease settles it, and whatever still
// carries the abandoned seq waits for prune.
func (s *Store) restamp(ctx context.Context, seq int64) (int64, error) {
	carried, err := s.carries(ctx, seq, true)
	if err != nil || !carried {
		return 0, err
	}
	next, err := s.takeSeq(ctx)
	if err != nil {
		return 0, err
	}
	move := bson.M{"$set": bson.M{"seq": next}}
	if _, err := s.gone.UpdateMany(ctx, bson.M{"seq": seq}, move); err != nil {
		return 0, fmt.Errorf("restamp %d: %w", seq, err)
	}
	if _, err := s.records.UpdateMany(ctx, bson.M{"seq": seq}, move); err != nil {
		return 0, fmt.Errorf("restamp %d: %w", seq, err)
	}
	return next, nil
}

// carries reports whether a record document, or with gone also a gone
// document, carries seq.
func (s *Store) carries(ctx context.Context, seq int64, gone bool) (bool, error) {
	colls := []*mongo.Collection{s.records}
	if gone {
		colls = append(colls, s.gone)
	}
	for _, c := range colls {
		var d bson.M
		err := findOne(ctx, "seq", c, bson.M{"seq": seq}, nil, &d)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, sync.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

// Watermark returns the stable seq: every write with a seq at or below it
// has landed or was abandoned. It settles the pending seqs below it whose
// lease has run out.
func (s *Store) Watermark(ctx context.Context) (int64, error) {
	const op = "mongostore.Watermark"
	for {
		top, err := s.topSeq(ctx)
		if err != nil {
			return 0, fail(op, err)
		}
		var p seqDoc
		err = findOne(ctx, op, s.seqs, bson.M{"state": seqPending, "_id": bson.M{"$lte": top}}, ascending("_id"), &p)
		if errors.Is(err, sync.ErrNotFound) {
			return top, nil
		}
		if err != nil {
			return 0, err
		}
		if p.LeaseUntil > s.now().UnixNano() {
			return p.Seq - 1, nil
		}
		if p.Move {
			if err := s.settleMove(ctx, p); err != nil {
				return 0, fail(op, err)
			}
			continue
		}
		written, err := s.carries(ctx, p.Seq, false)
		if err != nil {
			return 0, fail(op, err)
		}
		state := seqAbandoned
		if written {
			state = seqDone
		}
		if _, err := s.settle(ctx, p.Seq, state); err != nil {
			return 0, fail(op, err)
		}
	}
}

// prune deletes the seqs at or below the watermark whose lease ran out
// more than a lease ago, always keeping the highest seq. An abandoned one
// may still carry the write of a writer that stalled and died: it
// re-stamps those first, so that no reader misses them.
func (s *Store) prune(ctx context.Context) error {
	wm, err := s.Watermark(ctx)
	if err != nil {
		return err
	}
	if err := s.sweepPlans(ctx); err != nil {
		return err
	}
	oldLease := bson.M{"$lt": s.now().Add(-s.lease()).UnixNano()}
	cur, err := s.seqs.Find(ctx, bson.M{"_id": bson.M{"$lte": wm}, "lease_until": oldLease, "state": seqAbandoned})
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	var abandoned []seqDoc
	if err := cur.All(ctx, &abandoned); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	ids := make([]int64, len(abandoned))
	for i, d := range abandoned {
		if _, err := s.finish(ctx, d.Seq); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		ids[i] = d.Seq
	}
	top, err := s.topSeq(ctx)
	if err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	for _, filter := range []bson.M{
		{"_id": bson.M{"$in": ids, "$lt": top}},
		{"_id": bson.M{"$lte": wm, "$lt": top}, "lease_until": oldLease, "state": seqDone},
	} {
		if _, err := s.seqs.DeleteMany(ctx, filter); err != nil {
			return fmt.Errorf("prune: %w", err)
		}
	}
	return nil
}

// Changes returns, in seq order, at most limit changes with after < seq
// <= upto of records that hold, or have lost, one of tokens, stopping
// after the change whose data reaches maxBytes when maxBytes > 0.
//
// It reads the records that hold a token and the gone documents of those
// that lost one, each in seq order, and merges them. A gone document is
// reported with the record's current state, and only while the record
// holds none of tokens; a record is reported once per seq. Records are
// read without their history, refs and facts, in small batches, and the
// read stops once the page is full.
func (s *Store) Changes(ctx context.Context, tokens []string, after, upto int64, limit, maxBytes int) ([]sync.Change, error) {
	const op = "mongostore.Changes"
	if len(tokens) == 0 || upto <= after || limit <= 0 {
		return nil, nil
	}
	held, full, err := s.feedRecords(ctx, bson.M{"tokens": bson.M{"$in": tokens}, "seq": bson.M{"$gt": after, "$lte": upto}}, limit, maxBytes)
	if err != nil {
		return nil, fail(op, err)
	}
	found := make(map[int64]sync.Change, len(held))
	for _, d := range held {
		found[d.Seq] = sync.Change{Seq: d.Seq, Record: d.record()}
	}
	// The held records are all there are up to bound; page through the
	// gone documents up to it until known, below which every change is
	// found, has a full page below it.
	bound := upto
	if full {
		bound = held[len(held)-1].Seq
	}
	known := after
	for known < bound {
		page, err := s.findGone(ctx, tokens, known, bound, limit)
		if err != nil {
			return nil, fail(op, err)
		}
		current, err := s.recordsOf(ctx, page)
		if err != nil {
			return nil, fail(op, err)
		}
		for _, g := range page {
			d := current[g.key()]
			if _, ok := found[g.Seq]; ok || d == nil || holdsAny(d.Tokens, tokens) {
				continue
			}
			found[g.Seq] = sync.Change{Seq: g.Seq, Gone: true, Record: d.record()}
		}
		if len(page) < limit {
			known = bound
			break
		}
		// More gone documents at this last seq are of the same record
		// and would say the same.
		known = page[len(page)-1].Seq
		if n, size := countUpTo(found, known); n >= limit || (maxBytes > 0 && size >= maxBytes) {
			break
		}
	}
	var out []sync.Change
	for seq, ch := range found {
		if seq <= known {
			out = append(out, ch)
		}
	}
	slices.SortFunc(out, func(a, b sync.Change) int { return cmp.Compare(a.Seq, b.Seq) })
	return firstPage(out, limit, maxBytes), nil
}

// feedBatch is how many records a feed read fetches in its first round
// trip: a page of big records stops after at most this many more than it
// needs. Later round trips fetch as many as the records read so far say
// will fit in what is left of the page's bytes (see nextBatch).
const feedBatch = 32

// feedProjection leaves out of feed reads what readers of the feed do not
// need, the history above all (past versions' data), and the audit
// entries.
var feedProjection = bson.M{"history": 0, "refs": 0, "facts": 0, "audit": 0}

// feedRecords returns, in seq order, the records matching filter, at most
// limit of them and, when maxBytes > 0, no more than up to the one whose
// data reaches maxBytes; full reports whether it stopped for either.
func (s *Store) feedRecords(ctx context.Context, filter bson.M, limit, maxBytes int) (docs []*recordDoc, full bool, err error) {
	cur, err := s.records.Find(ctx, filter, options.Find().SetSort(ascending("seq")).SetLimit(int64(limit)).
		SetBatchSize(feedBatch).SetProjection(feedProjection))
	if err != nil {
		return nil, false, err
	}
	defer cur.Close(ctx)
	size := 0
	for cur.Next(ctx) {
		var d recordDoc
		if err := cur.Decode(&d); err != nil {
			return nil, false, err
		}
		docs = append(docs, &d)
		if d.Data != nil {
			size += len(*d.Data)
		}
		if len(docs) == limit || (maxBytes > 0 && size >= maxBytes) {
			return docs, true, nil
		}
		if cur.RemainingBatchLength() == 0 {
			cur.SetBatchSize(nextBatch(len(docs), size, limit, maxBytes))
		}
	}
	return docs, false, cur.Err()
}

// nextBatch is how many records the next round trip of a feed read
// fetches, after n records of size bytes of data: what is left of the
// limit, or, when maxBytes bounds the page, as many records as are
// expected to fill what is left of it at the size seen so far, and at
// least feedBatch.
func nextBatch(n, size, limit, maxBytes int) int32 {
	left := limit - n
	if maxBytes > 0 {
		avg := max(size/max(n, 1), 1)
		left = min(left, max((maxBytes-size)/avg+1, feedBatch))
	}
	return int32(max(left, 1))
}

// firstPage returns the start of changes that holds at most limit of them
// and ends with the one whose data reaches maxBytes, when maxBytes > 0.
func firstPage(changes []sync.Change, limit, maxBytes int) []sync.Change {
	size := 0
	for i, ch := range changes {
		size += len(ch.Record.Data)
		if i+1 == limit || (maxBytes > 0 && size >= maxBytes) {
			return changes[:i+1]
		}
	}
	return changes
}

// findGone returns, in seq order, at most limit gone documents of tokens
// with after < seq <= upto.
func (s *Store) findGone(ctx context.Context, tokens []string, after, upto int64, limit int) ([]goneDoc, error) {
	cur, err := s.gone.Find(ctx, bson.M{"token": bson.M{"$in": tokens}, "seq": bson.M{"$gt": after, "$lte": upto}},
		options.Find().SetSort(ascending("seq")).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	var page []goneDoc
	if err := cur.All(ctx, &page); err != nil {
		return nil, err
	}
	return page, nil
}

// recordsOf returns the current record documents of the gone documents,
// by _id.
func (s *Store) recordsOf(ctx context.Context, gone []goneDoc) (map[string]*recordDoc, error) {
	if len(gone) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, len(gone))
	for _, g := range gone {
		if key := g.key(); !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	docs, _, err := s.feedRecords(ctx, bson.M{"_id": bson.M{"$in": keys}}, len(keys), 0)
	if err != nil {
		return nil, err
	}
	byKey := make(map[string]*recordDoc, len(docs))
	for _, d := range docs {
		byKey[d.Key] = d
	}
	return byKey, nil
}

func holdsAny(held, tokens []string) bool {
	return slices.ContainsFunc(held, func(t string) bool { return slices.Contains(tokens, t) })
}

// countUpTo returns how many changes were found at or below seq, and the
// length of their data.
func countUpTo(found map[int64]sync.Change, seq int64) (n, size int) {
	for s, ch := range found {
		if s <= seq {
			n++
			size += len(ch.Record.Data)
		}
	}
	return n, size
}

// Feed returns, in seq order, at most limit entries with after < seq <=
// upto: the tokens of the records last written at each seq, and those
// lost there (gone documents), and how far that is complete. It reads
// only seqs and tokens.
func (s *Store) Feed(ctx context.Context, after, upto int64, limit int) ([]sync.FeedEntry, int64, error) {
	const op = "mongostore.Feed"
	if upto <= after || limit <= 0 {
		return nil, after, nil
	}
	var held, lost []feedDoc
	if err := s.findFeed(ctx, s.records, after, upto, limit, &held); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	// Every record written up to through is in held.
	through := upto
	if len(held) == limit {
		through = held[len(held)-1].Seq
	}
	if err := s.findFeed(ctx, s.gone, after, through, limit, &lost); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", op, err)
	}
	if len(lost) == limit {
		// More gone documents may follow at the page's last seq: stop
		// below it, unless it is all the page has.
		last := lost[len(lost)-1].Seq
		through = max(last-1, after+1)
		if through == last {
			if err := s.findFeed(ctx, s.gone, last-1, last, 0, &lost); err != nil {
				return nil, 0, fmt.Errorf("%s: %w", op, err)
			}
		}
	}
	bySeq := map[int64][]string{}
	for _, d := range held {
		if d.Seq <= through {
			bySeq[d.Seq] = append(bySeq[d.Seq], d.Tokens...)
		}
	}
	for _, d := range lost {
		if d.Seq <= through {
			bySeq[d.Seq] = append(bySeq[d.Seq], d.Token)
		}
	}
	out := make([]sync.FeedEntry, 0, len(bySeq))
	for _, seq := range slices.Sorted(maps.Keys(bySeq)) {
		tokens := bySeq[seq]
		slices.Sort(tokens)
		out = append(out, sync.FeedEntry{Seq: seq, Tokens: slices.Compact(tokens)})
	}
	if len(out) > limit {
		out = out[:limit]
		through = out[limit-1].Seq
	}
	return out, through, nil
}

// findFeed decodes into docs, in seq order, the seqs and tokens of at
// most limit (0: any number of) documents of c with after < seq <= upto.
func (s *Store) findFeed(ctx context.Context, c *mongo.Collection, after, upto int64, limit int, docs *[]feedDoc) error {
	opts := options.Find().SetProjection(bson.M{"_id": 0, "seq": 1, "tokens": 1, "token": 1}).
		SetSort(ascending("seq")).SetLimit(int64(limit))
	cur, err := c.Find(ctx, bson.M{"seq": bson.M{"$gt": after, "$lte": upto}}, opts)
	if err != nil {
		return err
	}
	var page []feedDoc
	if err := cur.All(ctx, &page); err != nil {
		return err
	}
	*docs = append(*docs, page...)
	return nil
}

// feedDoc is what Feed reads of a record document (Tokens) or a gone
// document (Token).
type feedDoc struct {
	Seq    int64    `bson:"seq"`
	Tokens []string `bson:"tokens"`
	Token  string   `bson:"token"`
}
