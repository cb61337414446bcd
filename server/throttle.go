package server

import (
	"math"
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
