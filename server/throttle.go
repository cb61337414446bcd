package server

import (
	"context"
	"math"
	gosync "sync"
	"time"
)

// Sign-in throttling counts failed sign-ins per username and client
// address together, so that nobody can keep a user out from another
// address. The first LoginFailureLimit failures of a pair in a window are
// answered at once; after them the pair slows down: its next attempt is
// allowed LoginBackoff after the window opened, the one after that
// 2×LoginBackoff later, then 4×, … but never later than the window's
// end. A correct password from the same pair clears its count.

// throttleKey is what failures are counted under: the client address
// (which holds no space) and the username.
func throttleKey(addr, username string) string { return addr + " " + username }

// throttleWait returns how long a pair with failures counted in the window
// that ends at until must still wait at now before its next attempt.
func (s *Server) throttleWait(failures int, until, now time.Time) time.Duration {
	extra := failures - s.cfg.LoginFailureLimit
	if extra < 0 {
		return 0
	}
	start := until.Add(-s.cfg.LoginFailureWindow)
	steps := math.Exp2(float64(min(extra+1, 62))) - 1
	next := until
	if d := float64(s.cfg.LoginBackoff) * steps; d < float64(s.cfg.LoginFailureWindow) {
		next = start.Add(time.Duration(d))
	}
	return max(next.Sub(now), 0)
}

// hashQueue hands out the password-check slots (one per core) fairly
// between client addresses: each address waits in its own line, and a
// freed slot goes to the next address in turn. A flood of sign-ins from
// one address then waits behind itself, and a sign-in from another
// address waits for at most one check per address ahead of it.
type hashQueue struct {
	mu      gosync.Mutex
	free    int
	lines   map[string][]chan struct{} // waiters per address, first first
	turns   []string                   // addresses with waiters, next first
	waiters int
}

func newHashQueue(slots int) *hashQueue {
	return &hashQueue{free: slots, lines: map[string][]chan struct{}{}}
}

// acquire takes a slot for addr, waiting its turn; ctx's error when ctx
// ends first.
func (q *hashQueue) acquire(ctx context.Context, addr string) error {
	q.mu.Lock()
	if q.free > 0 && q.waiters == 0 {
		q.free--
		q.mu.Unlock()
		return nil
	}
	granted := make(chan struct{})
	if len(q.lines[addr]) == 0 {
		q.turns = append(q.turns, addr)
	}
	q.lines[addr] = append(q.lines[addr], granted)
	q.waiters++
	q.mu.Unlock()

	select {
	case <-granted:
		return nil
	case <-ctx.Done():
		q.mu.Lock()
		waiting := q.leave(addr, granted)
		q.mu.Unlock()
		if !waiting { // granted meanwhile: pass the slot on
			q.release()
		}
		return ctx.Err()
	}
}

// leave takes a waiter out of its line and reports whether it was still
// waiting. q.mu is held.
func (q *hashQueue) leave(addr string, granted chan struct{}) bool {
	line := q.lines[addr]
	for i, ch := range line {
		if ch != granted {
			continue
		}
		q.waiters--
		if line = append(line[:i:i], line[i+1:]...); len(line) > 0 {
			q.lines[addr] = line
			return true
		}
		delete(q.lines, addr)
		for j, a := range q.turns {
			if a == addr {
				q.turns = append(q.turns[:j:j], q.turns[j+1:]...)
				break
			}
		}
		return true
	}
	return false
}

// release frees a slot: it goes to the first waiter of the address whose
// turn it is, and that address goes to the back of the turns.
func (q *hashQueue) release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.turns) == 0 {
		q.free++
		return
	}
	addr := q.turns[0]
	q.turns = q.turns[1:]
	line := q.lines[addr]
	granted := line[0]
	q.waiters--
	if len(line) > 1 {
		q.lines[addr] = line[1:]
		q.turns = append(q.turns, addr)
	} else {
		delete(q.lines, addr)
	}
	close(granted)
}
