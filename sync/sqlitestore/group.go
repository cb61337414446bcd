package sqlitestore

import (
	"context"
	"database/sql"
	"maps"
	gosync "sync"

	"github.com/fieldsync/fieldsync/sync"
)

// maxGroup is the most units of work one write transaction runs: enough
// that a burst of small pushes shares one WAL sync, few enough that the
// first of them is not kept waiting long by the others.
const maxGroup = 64

// committer runs units of work in groups: the units that arrive while a
// write transaction runs wait, and the next transaction runs them all, each
// in its own savepoint, and commits them with one WAL sync. Its zero value
// is ready to use.
type committer struct {
	mu gosync.Mutex
	// pending holds the units waiting for a transaction, in arrival order.
	pending []*unit
	// leading is true while some Update call runs a group or has been
	// handed the next one.
	leading bool
	// groups, units and sizes count the groups run, their units, and
	// the groups of at most groupBounds[i] units.
	groups, units uint64
	sizes         [len(groupBounds)]uint64
}

// groupBounds are the bounds of the group sizes counted.
var groupBounds = [...]int{1, 2, 4, 8, 16, 32, maxGroup}

// CommitGroups tells how many units of work the store's write
// transactions held.
func (s *Store) CommitGroups() sync.CommitGroups {
	g := &s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	out := sync.CommitGroups{Transactions: g.groups, Units: g.units, AtMost: append([]uint64(nil), g.sizes[:]...)}
	for _, b := range groupBounds {
		out.Bounds = append(out.Bounds, float64(b))
	}
	return out
}

// unit is one Update call waiting in a group.
type unit struct {
	fn func(sync.RecordTx) error
	// turn receives the unit's outcome once its group committed or it
	// failed, or the lead when the unit is to run the next group.
	turn chan turn
}

// turn is what a waiting unit is told.
type turn struct {
	err  error
	lead bool
}

// Update runs fn as one unit of work in a write transaction, which holds
// SQLite's write lock from its start, so that seqs are taken and committed
// in the same order. Calls that arrive while another transaction runs
// share the next one: each runs in its own savepoint, so that fn's error
// undoes fn's writes and no other's, and all are committed together. Update
// returns only after the transaction that holds fn's writes has committed,
// in the order the calls' units ran, which is the order of their seqs.
//
// fn may run more than once: when the transaction it shared is undone for
// another unit's failure (SQLite gave up the whole transaction) or fails
// to commit, it runs again, with its own transaction. It must start afresh
// each time it runs.
func (s *Store) Update(ctx context.Context, fn func(sync.RecordTx) error) error {
	u := &unit{turn: make(chan turn, 1), fn: func(tx sync.RecordTx) error {
		if err := ctx.Err(); err != nil {
			return err // given up while it waited
		}
		return fn(tx)
	}}
	g := &s.group
	g.mu.Lock()
	g.pending = append(g.pending, u)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		t := <-u.turn
		if !t.lead {
			return t.err
		}
	}
	return s.lead(context.WithoutCancel(ctx), u)
}

// lead runs the next group, which starts with own, answers the others of
// it and hands the lead to the first unit still waiting, if any.
func (s *Store) lead(ctx context.Context, own *unit) error {
	g := &s.group
	g.mu.Lock()
	n := min(len(g.pending), maxGroup)
	group := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.groups++
	g.units += uint64(n)
	for i, b := range groupBounds {
		if n <= b {
			g.sizes[i]++
		}
	}
	g.mu.Unlock()

	errs := s.runGroup(ctx, group)

	var ownErr error
	for i, u := range group {
		if u == own {
			ownErr = errs[i]
			continue
		}
		u.turn <- turn{err: errs[i]}
	}
	g.mu.Lock()
	var next *unit
	if len(g.pending) > 0 {
		next = g.pending[0]
	} else {
		g.leading = false
		g.pending = nil
	}
	g.mu.Unlock()
	if next != nil {
		next.turn <- turn{lead: true}
	}
	return ownErr
}

// runGroup runs the units in one write transaction and returns each one's
// error. A unit whose fn fails is rolled back to its savepoint (a unit
// alone needs none: its transaction is rolled back); when SQLite
// gave up the whole transaction instead, the other units run again in a
// new one. When the commit fails, each unit runs again alone, so that a
// unit's writes that cannot commit fail that unit only.
func (s *Store) runGroup(ctx context.Context, group []*unit) []error {
	errs := make([]error, len(group))
	todo := make([]int, len(group))
	for i := range todo {
		todo[i] = i
	}
	for len(todo) > 0 {
		t, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			for _, i := range todo {
				errs[i] = errorf("sqlitestore: begin: %w", err)
			}
			return errs
		}
		x := newTx(s.qw, t, &s.names)
		if len(todo) == 1 {
			// Alone in its transaction, a unit needs no savepoint: its
			// error undoes the transaction.
			i := todo[0]
			if errs[i] = call(ctx, group[i].fn, x); errs[i] != nil {
				t.Rollback()
			} else {
				errs[i] = x.commit(ctx)
			}
			return errs
		}
		var done []int
		broken := -1
		for k, i := range todo {
			err, undone := x.runUnit(ctx, group[i].fn)
			if undone {
				errs[i] = err
				broken = k
				break
			}
			if err != nil {
				errs[i] = err
				continue
			}
			done = append(done, i)
		}
		if broken >= 0 {
			t.Rollback()
			todo = append(done, todo[broken+1:]...)
			continue
		}
		err = x.commit(ctx)
		switch {
		case err == nil || len(done) == 0:
		case len(done) == 1:
			errs[done[0]] = err
		default:
			for _, i := range done {
				errs[i] = s.runGroup(ctx, group[i:i+1])[0]
			}
		}
		return errs
	}
	return errs
}

// runUnit runs fn in a savepoint of the transaction. When fn fails, its
// writes are undone and the transaction goes on; undone reports that the
// whole transaction was lost instead (SQLite rolls it all back on some
// errors), so that nothing of it may be committed.
func (t *tx) runUnit(ctx context.Context, fn func(sync.RecordTx) error) (err error, undone bool) {
	// The rows the units before this one left waiting are stored outside
	// its savepoint, so that what waits from here on is this unit's own.
	if err := t.flushBatches(ctx); err != nil {
		return errorf("sqlitestore: %w", err), true
	}
	if err := t.exec(ctx, "SAVEPOINT unit"); err != nil {
		return errorf("sqlitestore: savepoint: %w", err), true
	}
	seq, answers := t.seq, len(t.answers)
	if err := call(ctx, fn, t); err != nil {
		// What fn read or wrote is forgotten with its writes.
		for _, a := range t.answers[answers:] {
			delete(t.saved, [2]string{a.UserID, a.MutationID})
		}
		t.seq, t.answers = seq, t.answers[:answers]
		maps.DeleteFunc(t.byRef, func(_ string, i int) bool { return i >= answers })
		t.tokenRows.truncate(0)
		t.auditRows.truncate(0)
		t.facts.forget()
		t.inserts.forget()
		clear(t.sameAsData)
		clear(t.known)
		clear(t.recs)
		clear(t.proofs)
		t.newNames = nil
		if rerr := t.exec(ctx, "ROLLBACK TO unit"); rerr != nil {
			return err, true
		}
		if rerr := t.exec(ctx, "RELEASE unit"); rerr != nil {
			return err, true
		}
		return err, false
	}
	if err := t.exec(ctx, "RELEASE unit"); err != nil {
		return errorf("sqlitestore: release: %w", err), true
	}
	return nil, false
}

// call runs fn in t and turns a panic of fn into its error: the units of
// a group run in the goroutine of one of them, and the others, waiting for
// their answers, must get one.
func call(ctx context.Context, fn func(sync.RecordTx) error, t *tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errorf("sqlitestore: unit of work panicked: %v", r)
		}
	}()
	if err := fn(t); err != nil {
		return err
	}
	// What the unit created is stored within it, so that a failure to
	// store it fails the unit.
	return t.flushInserts(ctx)
}

// newTx wraps a database transaction run with the statements q and the
// store's cache of names.
func newTx(q *queries, t *sql.Tx, names *nameCache) *tx {
	x := &tx{q: q, t: t, names: names, stmts: map[*sql.Stmt]*sql.Stmt{}, known: map[string]*sync.Record{}, recs: map[string]int64{}}
	var facts *batch
	x.tokenRows, x.auditRows, facts = newBatches()
	x.facts = factRows{rows: facts}
	return x
}

// commit stores what the transaction keeps until its end (answers, the
// feed counter) and commits it; on failure it is rolled back.
func (t *tx) commit(ctx context.Context) error {
	if err := t.flushBatches(ctx); err != nil {
		t.t.Rollback()
		return errorf("sqlitestore: %w", err)
	}
	if err := t.flushAnswers(ctx); err != nil {
		t.t.Rollback()
		return errorf("sqlitestore: answers: %w", err)
	}
	if t.seq != 0 {
		if _, err := t.stmt(ctx, t.q.setFeed).ExecContext(ctx, t.seq); err != nil {
			t.t.Rollback()
			return errorf("sqlitestore: feed: %w", err)
		}
	}
	if err := t.t.Commit(); err != nil {
		return errorf("sqlitestore: commit: %w", err)
	}
	t.names.add(t.newNames)
	return nil
}
