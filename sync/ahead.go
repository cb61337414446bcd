package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fieldsync/fieldsync/schema"
)

// errBehind says that a push was not decided ahead of the store's write
// lock: the store cannot do it, or what the push read has changed since.
var errBehind = errors.New("sync: push not decided ahead")

// maxAheadRefs bounds the records referring to one ref that a push
// decided ahead reads at once, to merge those it wrote itself with them;
// a push that would read more is decided under the lock.
const maxAheadRefs = 2000

// snapshotTx is a unit of work a push can be decided ahead on: one with
// every shortcut the writer takes, so that what is decided on it is what
// the store's own unit of work would decide.
type snapshotTx interface {
	RecordTx
	openOrderReader
	stopFinder
	proofReader
	newEntriesOnly
	writtenSincer
}

// confirmer is a unit of work that can tell, in one read, whether
// records of a collection are still stored as a snapshot read them (at the
// same seq; nil: missing) and, when they all are, takes them as read for
// its own writes.
type confirmer interface {
	Confirm(ctx context.Context, c schema.Collection, read map[string]*Record) (bool, error)
}

// writtenSincer is a unit of work that can tell the seq of the last write
// it sees, and list the records of a collection written after a seq, with
// their facts: every write of a record, re-stamps included, takes a seq
// above all before it, so these are the records that changed since.
type writtenSincer interface {
	FeedSeq(ctx context.Context) (int64, error)
	WrittenSince(ctx context.Context, c schema.Collection, seq int64) ([]*Record, error)
}

// pushAhead decides a push against a snapshot of the store, outside its
// write lock, keeping what it read and what it would write. Then, holding
// the lock, it confirms that what it read still holds and stores what it
// decided: the lock is held for store work only, while the decisions
// (derivation, pricing, credit, encoding, and the reads of the records
// the mutations name or refer to) are made before it. errBehind when the
// store cannot do this or what the push read has changed by then: the
// caller decides the push under the lock instead.
func (e *Engine) pushAhead(ctx context.Context, p schema.Principal, batch []prepared) (*schema.PushResponse, error) {
	var (
		resp *schema.PushResponse
		plan *aheadTx
	)
	if len(batch) < e.aheadFrom {
		e.decisions.locked.Add(1)
		return nil, errBehind
	}
	err := e.store.View(ctx, func(tx RecordTx) error {
		snap, ok := tx.(snapshotTx)
		if !ok {
			e.decisions.locked.Add(1)
			return errBehind
		}
		plan = newAheadTx(snap)
		var err error
		resp, err = e.decideAll(ctx, plan, p, batch)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// Whatever kept the push from being decided ahead, deciding it
		// under the lock gives the answer that counts. (A store without a
		// snapshot was counted as such.)
		if plan != nil || !errors.Is(err, errBehind) {
			e.decisions.again.Add(1)
		}
		return nil, errBehind
	}
	if err := e.store.Update(ctx, func(tx RecordTx) error { return plan.commit(ctx, tx) }); err != nil {
		if errors.Is(err, errBehind) {
			e.decisions.again.Add(1)
		}
		return nil, err
	}
	e.decisions.ahead.Add(1)
	return resp, nil
}

// pushDecisions counts how pushes were decided.
type pushDecisions struct {
	ahead, again, locked atomic.Uint64
}

// PushDecisions tells how an engine's pushes were decided: Ahead of the
// store's write lock (see pushAhead); Again under the lock, because what
// they read changed before they were stored or the snapshot could not
// decide them; Locked under the lock only, the push being smaller than
// Config.DecideAheadFrom or the store offering no snapshot to decide it
// on.
type PushDecisions struct {
	Ahead, Again, Locked uint64
}

// PushDecisions tells how the engine's pushes were decided so far.
func (e *Engine) PushDecisions() PushDecisions {
	d := &e.decisions
	return PushDecisions{Ahead: d.ahead.Load(), Again: d.again.Load(), Locked: d.locked.Load()}
}

// aheadTx is the unit of work a push is decided ahead on: reads come from
// a snapshot, except of what the push wrote itself, and writes are kept,
// in order, to be stored once the reads are confirmed (see commit).
type aheadTx struct {
	snap snapshotTx
	// read holds the records read from the snapshot, by collection and
	// id, as first read (nil: missing there).
	read map[schema.Collection]map[string]*Record
	// written holds the records the push wrote, by collection/id, last
	// write only; wroteIn the collections of those.
	written map[string]*Record
	wroteIn map[schema.Collection]bool
	// byRep holds the records in written with a fact of a kind and rep,
	// by kind and rep, then by collection/id.
	byRep map[[2]string]map[string]*Record
	// proofs holds the photo proofs read from the snapshot (nil: missing
	// there) or saved, by user and hash; saved marks those saved.
	proofs map[[2]string]*PhotoProof
	saved  map[[2]string]bool
	// checks are the other reads of the snapshot, to be read again and
	// compared when the push is stored, by what they asked.
	checks map[string]func(context.Context, RecordTx) (bool, error)
	// writes are the push's writes, in order.
	writes []func(context.Context, RecordTx) error
	// seq is the seq of the last write the snapshot holds, once read;
	// since holds, while the push is stored, the records written after
	// it, by collection, once read.
	seq     int64
	seqRead bool
	since   map[schema.Collection][]*Record
}

func newAheadTx(snap snapshotTx) *aheadTx {
	return &aheadTx{snap: snap, read: map[schema.Collection]map[string]*Record{}, written: map[string]*Record{},
		wroteIn: map[schema.Collection]bool{}, byRep: map[[2]string]map[string]*Record{}, proofs: map[[2]string]*PhotoProof{}, saved: map[[2]string]bool{},
		checks: map[string]func(context.Context, RecordTx) (bool, error){}}
}

// commit confirms, in the store's unit of work tx, that what the push
// read of the snapshot still holds, and stores what it wrote; errBehind
// when something it read has changed.
func (a *aheadTx) commit(ctx context.Context, tx RecordTx) error {
	a.since = map[schema.Collection][]*Record{} // the unit of work may run again
	c, ok := tx.(confirmer)
	if !ok {
		return errBehind
	}
	for coll, read := range a.read {
		if ok, err := c.Confirm(ctx, coll, read); err != nil || !ok {
			return cmpErr(err)
		}
	}
	if err := a.confirmProofs(ctx, tx); err != nil {
		return err
	}
	for _, check := range a.checks {
		if ok, err := check(ctx, tx); err != nil || !ok {
			return cmpErr(err)
		}
	}
	for _, write := range a.writes {
		if err := write(ctx, tx); err != nil {
			if errors.Is(err, ErrStale) {
				return errBehind
			}
			return err
		}
	}
	return nil
}

// cmpErr is the error of a comparison that failed: err, or errBehind
// when the comparison found a difference.
func cmpErr(err error) error {
	if err != nil {
		return err
	}
	return errBehind
}

// confirmProofs confirms the photo proofs the push read, each user's in
// one read where the store can.
func (a *aheadTx) confirmProofs(ctx context.Context, tx RecordTx) error {
	byUser := map[string][]string{}
	for k := range a.proofs {
		if !a.saved[k] {
			byUser[k[0]] = append(byUser[k[0]], k[1])
		}
	}
	for user, hashes := range byUser {
		if r, ok := tx.(proofReader); ok {
			if err := r.PhotoProofs(ctx, user, hashes); err != nil {
				return err
			}
		}
		for _, h := range hashes {
			was := a.proofs[[2]string{user, h}]
			now, err := tx.PhotoProof(ctx, user, h)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			if (was == nil) != (now == nil) || (was != nil && (was.Size != now.Size || !was.At.Equal(now.At))) {
				return errBehind
			}
		}
	}
	return nil
}

// snapshotSeq returns the seq of the last write the snapshot holds.
func (a *aheadTx) snapshotSeq(ctx context.Context) (int64, error) {
	if !a.seqRead {
		seq, err := a.snap.FeedSeq(ctx)
		if err != nil {
			return 0, err
		}
		a.seq, a.seqRead = seq, true
	}
	return a.seq, nil
}

// writtenSince returns the records of c that tx holds written after seq.
func (a *aheadTx) writtenSince(ctx context.Context, tx RecordTx, c schema.Collection, seq int64) ([]*Record, error) {
	if recs, ok := a.since[c]; ok {
		return recs, nil
	}
	ws, ok := tx.(writtenSincer)
	if !ok {
		return nil, errBehind
	}
	recs, err := ws.WrittenSince(ctx, c, seq)
	if err != nil {
		return nil, err
	}
	a.since[c] = recs
	return recs, nil
}

func recordKey(c schema.Collection, id string) string { return string(c) + "/" + id }

// note keeps a record as read from the snapshot.
func (a *aheadTx) note(c schema.Collection, id string, r *Record) {
	if a.read[c] == nil {
		a.read[c] = map[string]*Record{}
	}
	a.read[c][id] = r
}

// check keeps a read of the snapshot to compare again when the push is
// stored, once per what it asked.
func (a *aheadTx) check(key string, same func(context.Context, RecordTx) (bool, error)) {
	if _, ok := a.checks[key]; !ok {
		a.checks[key] = same
	}
}

func (a *aheadTx) Record(ctx context.Context, c schema.Collection, id string) (*Record, error) {
	if r, ok := a.written[recordKey(c, id)]; ok {
		return r, nil
	}
	if r, ok := a.read[c][id]; ok {
		if r == nil {
			return nil, ErrNotFound
		}
		return r, nil
	}
	r, err := a.snap.Record(ctx, c, id)
	switch {
	case errors.Is(err, ErrNotFound):
		a.note(c, id, nil)
		return nil, err
	case err != nil:
		return nil, err
	}
	a.note(c, id, r)
	return r, nil
}

func (a *aheadTx) Records(ctx context.Context, c schema.Collection, ids []string) (map[string]*Record, error) {
	out := map[string]*Record{}
	var unknown []string
	for _, id := range ids {
		if r, ok := a.written[recordKey(c, id)]; ok {
			out[id] = r
		} else if r, ok := a.read[c][id]; ok {
			if r != nil {
				out[id] = r
			}
		} else {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) == 0 {
		return out, nil
	}
	found, err := a.snap.Records(ctx, c, unknown)
	if err != nil {
		return nil, err
	}
	for _, id := range unknown {
		a.note(c, id, found[id])
		if r := found[id]; r != nil {
			out[id] = r
		}
	}
	return out, nil
}

// RecordsByRef answers from the snapshot, merged with what the push wrote
// of c: then it reads every record of the snapshot that refers to ref.
func (a *aheadTx) RecordsByRef(ctx context.Context, c schema.Collection, ref, after string, limit int) ([]*Record, error) {
	key := fmt.Sprintf("ref\x00%s\x00%s\x00%s\x00%d", c, ref, after, limit)
	if !a.wroteIn[c] {
		page, err := a.snap.RecordsByRef(ctx, c, ref, after, limit)
		if err != nil {
			return nil, err
		}
		a.check(key, func(ctx context.Context, tx RecordTx) (bool, error) {
			now, err := tx.RecordsByRef(ctx, c, ref, after, limit)
			return err == nil && sameRecords(page, now), err
		})
		return page, nil
	}
	all, err := allByRef(ctx, a.snap, c, ref)
	if err != nil {
		return nil, err
	}
	a.check(fmt.Sprintf("ref\x00%s\x00%s", c, ref), func(ctx context.Context, tx RecordTx) (bool, error) {
		now, err := allByRef(ctx, tx, c, ref)
		return err == nil && sameRecords(all, now), err
	})
	var out []*Record
	for _, r := range all {
		if _, ok := a.written[recordKey(c, r.ID)]; !ok {
			out = append(out, r)
		}
	}
	for _, r := range a.written {
		if r.Collection == c && slices.Contains(r.Refs, ref) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y *Record) int { return strings.Compare(x.ID, y.ID) })
	from := slices.IndexFunc(out, func(r *Record) bool { return r.ID > after })
	if from < 0 {
		return nil, nil
	}
	out = out[from:]
	return out[:min(len(out), limit)], nil
}

// allByRef reads every record of c that refers to ref, or errBehind when
// there are more than maxAheadRefs.
func allByRef(ctx context.Context, tx RecordTx, c schema.Collection, ref string) ([]*Record, error) {
	const page = 500
	var all []*Record
	for after := ""; ; {
		got, err := tx.RecordsByRef(ctx, c, ref, after, page)
		if err != nil {
			return nil, err
		}
		if all = append(all, got...); len(all) > maxAheadRefs {
			return nil, errBehind
		}
		if len(got) < page {
			return all, nil
		}
		after = got[len(got)-1].ID
	}
}

// sameRecords reports whether two reads found the same records at the
// same seqs.
func sameRecords(a, b []*Record) bool {
	return slices.EqualFunc(a, b, func(x, y *Record) bool {
		return x.Collection == y.Collection && x.ID == y.ID && x.Seq == y.Seq
	})
}

// hasFact reports whether facts hold one that satisfies match.
func hasFact(facts []Fact, match func(f *Fact) bool) bool {
	for i := range facts {
		if match(&facts[i]) {
			return true
		}
	}
	return false
}

// snapshotHadFact reports whether a record the push wrote had, as the
// snapshot read it, a fact that satisfies match: the snapshot's answer to
// a question about facts may then rest on what the push changed.
func (a *aheadTx) snapshotHadFact(match func(id string, f *Fact) bool) bool {
	for _, r := range a.written {
		if old := a.read[r.Collection][r.ID]; old != nil && hasFact(old.Facts, func(f *Fact) bool { return match(old.ID, f) }) {
			return true
		}
	}
	return false
}

func (a *aheadTx) RepFactAfter(ctx context.Context, kind, rep string, after time.Time, except string) (bool, error) {
	match := func(id string, f *Fact) bool {
		return id != except && f.Kind == kind && f.Rep == rep && f.At.After(after)
	}
	for _, r := range a.byRep[[2]string{kind, rep}] {
		if hasFact(r.Facts, func(f *Fact) bool { return match(r.ID, f) }) {
			return true, nil
		}
	}
	found, err := a.snap.RepFactAfter(ctx, kind, rep, after, except)
	if err != nil {
		return false, err
	}
	a.check(fmt.Sprintf("fact\x00%s\x00%s\x00%d\x00%s", kind, rep, after.UnixNano(), except), func(ctx context.Context, tx RecordTx) (bool, error) {
		now, err := tx.RepFactAfter(ctx, kind, rep, after, except)
		return err == nil && now == found, err
	})
	if found && a.snapshotHadFact(match) {
		return false, errBehind
	}
	return found, nil
}

func (a *aheadTx) OpenOrders(ctx context.Context, customerID string) (map[string]int64, error) {
	open, err := a.snap.OpenOrders(ctx, customerID)
	if err != nil {
		return nil, err
	}
	seq, err := a.snapshotSeq(ctx)
	if err != nil {
		return nil, err
	}
	a.check("open\x00"+customerID, func(ctx context.Context, tx RecordTx) (bool, error) {
		// Unchanged unless an order written since the snapshot was one of
		// them, or is now.
		since, err := a.writtenSince(ctx, tx, schema.Orders, seq)
		if err != nil {
			return false, err
		}
		for _, r := range since {
			if _, was := open[r.ID]; was || hasFact(r.Facts, func(f *Fact) bool { return f.Kind == FactOpenOrder && f.Customer == customerID }) {
				return false, nil
			}
		}
		return true, nil
	})
	out := maps.Clone(open)
	for _, r := range a.written {
		if r.Collection != schema.Orders {
			continue
		}
		delete(out, r.ID) // as the push left it
		for _, f := range r.Facts {
			if f.Kind == FactOpenOrder && f.Customer == customerID {
				out[r.ID] += f.Amount
			}
		}
	}
	return out, nil
}

func (a *aheadTx) HasStop(ctx context.Context, rep, customer string, at time.Time) (bool, error) {
	match := func(_ string, f *Fact) bool {
		return f.Kind == FactStop && f.Customer == customer && f.At.Equal(at) && f.Rep == rep
	}
	for _, r := range a.byRep[[2]string{FactStop, rep}] {
		if hasFact(r.Facts, func(f *Fact) bool { return match(r.ID, f) }) {
			return true, nil
		}
	}
	found, err := a.snap.HasStop(ctx, rep, customer, at)
	if err != nil {
		return false, err
	}
	a.check(fmt.Sprintf("stop\x00%s\x00%s\x00%d", rep, customer, at.UnixNano()), func(ctx context.Context, tx RecordTx) (bool, error) {
		sf, ok := tx.(stopFinder)
		if !ok {
			return false, nil
		}
		now, err := sf.HasStop(ctx, rep, customer, at)
		return err == nil && now == found, err
	})
	if found && a.snapshotHadFact(match) {
		return false, errBehind
	}
	return found, nil
}

// Put keeps the write, checked against the record as the push sees it.
func (a *aheadTx) Put(ctx context.Context, r *Record, prev int64) error {
	cur, err := a.Record(ctx, r.Collection, r.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if (cur == nil && prev != 0) || (cur != nil && cur.Version != prev) {
		return ErrStale
	}
	stored := *r // as a store keeps it: the writer's record may change after
	key := recordKey(r.Collection, r.ID)
	if old, ok := a.written[key]; ok {
		for _, f := range old.Facts {
			delete(a.byRep[[2]string{f.Kind, f.Rep}], key)
		}
	}
	a.written[key], a.wroteIn[r.Collection] = &stored, true
	for _, f := range stored.Facts {
		k := [2]string{f.Kind, f.Rep}
		if a.byRep[k] == nil {
			a.byRep[k] = map[string]*Record{}
		}
		a.byRep[k][key] = &stored
	}
	a.writes = append(a.writes, func(ctx context.Context, tx RecordTx) error { return tx.Put(ctx, &stored, prev) })
	return nil
}

func (a *aheadTx) PhotoProof(ctx context.Context, userID, sha256 string) (*PhotoProof, error) {
	k := [2]string{userID, sha256}
	p, ok := a.proofs[k]
	if !ok {
		var err error
		if p, err = a.snap.PhotoProof(ctx, userID, sha256); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		a.proofs[k] = p
	}
	if p == nil {
		return nil, ErrNotFound
	}
	return p, nil
}

// PhotoProofs reads the proofs ahead in the snapshot.
func (a *aheadTx) PhotoProofs(ctx context.Context, userID string, hashes []string) error {
	return a.snap.PhotoProofs(ctx, userID, hashes)
}

func (a *aheadTx) SaveProof(ctx context.Context, p *PhotoProof) error {
	if _, err := a.PhotoProof(ctx, p.UserID, p.SHA256); errors.Is(err, ErrNotFound) {
		k := [2]string{p.UserID, p.SHA256}
		a.proofs[k], a.saved[k] = p, true // the first one stays
	} else if err != nil {
		return err
	}
	a.writes = append(a.writes, func(ctx context.Context, tx RecordTx) error { return tx.SaveProof(ctx, p) })
	return nil
}

func (a *aheadTx) Answers(ctx context.Context, userID string, mutationIDs []string) (map[string]*Answer, error) {
	found, err := a.snap.Answers(ctx, userID, mutationIDs)
	if err != nil {
		return nil, err
	}
	answered := slices.Collect(maps.Keys(found)) // the writer adds to found
	a.check(fmt.Sprintf("answers\x00%s\x00%d", userID, len(a.checks)), func(ctx context.Context, tx RecordTx) (bool, error) {
		now, err := tx.Answers(ctx, userID, mutationIDs)
		if err != nil || len(now) != len(answered) {
			return false, err
		}
		for _, id := range answered {
			if now[id] == nil {
				return false, nil
			}
		}
		return true, nil
	})
	return found, nil
}

func (a *aheadTx) SaveAnswer(ctx context.Context, ans *Answer) error {
	a.writes = append(a.writes, func(ctx context.Context, tx RecordTx) error { return tx.SaveAnswer(ctx, ans) })
	return nil
}

// StoresNewAuditEntriesOnly: the snapshot's store does (see snapshotTx).
func (a *aheadTx) StoresNewAuditEntriesOnly() {}
