package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/schema"
	"github.com/fieldsync/fieldsync/sync"
)

// Live stream defaults.
const (
	defaultHeartbeat         = 15 * time.Second
	defaultRecheck           = time.Minute
	defaultMaxStreams        = 10_000
	defaultMaxStreamsPerUser = 8
	// streamWriteTimeout bounds each write to a stream: a client that
	// stops reading is dropped after it.
	streamWriteTimeout = 30 * time.Second
	// recheckTimeout bounds the store reads of a recheck.
	recheckTimeout = 10 * time.Second
)

// streams keeps count of the open live streams of one server, refuses
// more than its caps allow, and ends them all on shutdown.
type streams struct {
	max, perUser int

	mu      gosync.Mutex
	byUser  map[string][]*liveStream // oldest first
	n       int
	closing bool
}

// liveStream is one open stream; done closes when the server wants it
// to end.
type liveStream struct {
	user string
	done chan struct{}
	once gosync.Once
}

func (l *liveStream) end() { l.once.Do(func() { close(l.done) }) }

var (
	errTooManyStreams = schema.Errorf(schema.CodeUnavailable, "this server holds as many live streams as it may; try again later")
	errShuttingDown   = schema.Errorf(schema.CodeUnavailable, "the server is shutting down; try again")
)

// open admits a stream of a user. Past the per-user cap the user's
// oldest stream ends (most likely a connection its device has already
// left); past the server's cap the new one is refused.
func (ss *streams) open(userID string) (*liveStream, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch {
	case ss.closing:
		return nil, errShuttingDown
	case ss.n >= ss.max:
		return nil, errTooManyStreams
	}
	if mine := ss.byUser[userID]; len(mine) >= ss.perUser {
		mine[0].end()
		ss.byUser[userID] = mine[1:]
		ss.n--
	}
	l := &liveStream{user: userID, done: make(chan struct{})}
	ss.byUser[userID] = append(ss.byUser[userID], l)
	ss.n++
	return l, nil
}

// close forgets a stream that has ended.
func (ss *streams) close(l *liveStream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	mine := ss.byUser[l.user]
	if i := slices.Index(mine, l); i >= 0 {
		ss.byUser[l.user] = slices.Delete(mine, i, i+1)
		ss.n--
	}
	if len(ss.byUser[l.user]) == 0 {
		delete(ss.byUser, l.user)
	}
}

// shutdown ends every stream and refuses new ones.
func (ss *streams) shutdown() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closing = true
	for _, mine := range ss.byUser {
		for _, l := range mine {
			l.end()
		}
	}
}

// stream answers GET /v1/sync/stream: server-sent events that tell the
// caller when to pull. It is woken by the server's one watcher of the
// change feed; its events carry no records.
func (s *Server) stream(c *fiber.Ctx) error {
	p := *principal(c)
	cols, err := parseCollections(c.Query("collections"))
	if err != nil {
		return err
	}
	// Writes the caller's next pull would bring anyway are not news.
	known, err := s.store.Watermark(c.UserContext())
	if err != nil {
		return err
	}
	l, err := s.streams.open(p.UserID)
	if err != nil {
		c.Set(fiber.HeaderRetryAfter, "5")
		return err
	}
	sub := s.watcher.Subscribe(schema.TokensIn(schema.ReadTokens(p), cols), known)
	s.metrics.streamsOpen.Inc()
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no")
	st := &sse{conn: c.Context().Conn(), metrics: s.metrics}
	exp := expiry(c)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() {
			sub.Close()
			s.streams.close(l)
			s.metrics.streamsOpen.Dec()
		}()
		st.w = w
		s.runStream(st, l, sub, p, cols, exp)
	})
	return nil
}

// runStream writes a stream's events until it ends: the token expires,
// the login or user stops being good (seen at a recheck), the server
// shuts down, or the client goes away (a write fails).
func (s *Server) runStream(st *sse, l *liveStream, sub *sync.Subscription, p schema.Principal, cols []schema.Collection, exp time.Time) {
	if !st.event("ready", struct{}{}) {
		return
	}
	heartbeat := time.NewTicker(s.cfg.StreamHeartbeat)
	defer heartbeat.Stop()
	recheck := time.NewTicker(s.cfg.StreamRecheck)
	defer recheck.Stop()
	expires := time.NewTimer(exp.Sub(s.now()))
	defer expires.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-expires.C:
			st.event("expired", map[string]string{"reason": "token_expired"})
			return
		case <-sub.Wake():
			changed := sub.Take()
			if len(changed) == 0 { // already told with an earlier wake
				continue
			}
			if !st.event("changes", changesEvent{Collections: changed}) {
				return
			}
		case <-heartbeat.C:
			if !st.comment("ping") {
				return
			}
		case <-recheck.C:
			ctx, cancel := context.WithTimeout(context.Background(), recheckTimeout)
			now, err := s.caller(ctx, p.UserID, p.LoginID)
			cancel()
			var se *schema.Error
			switch {
			case errors.As(err, &se) && se.Code == schema.CodeUnauthorized:
				st.event("expired", map[string]string{"reason": "signed_out"})
				return
			case err != nil:
				s.log.Warn("rechecking a live stream's caller", slog.Any("err", err))
			case !sameScope(p, *now):
				// Pull backfills the new scope; the stream listens to it.
				p = *now
				sub.SetTokens(schema.TokensIn(schema.ReadTokens(p), cols))
				if !st.event("changes", changesEvent{Collections: collectionsOf(p, cols)}) {
					return
				}
			}
		}
	}
}

// changesEvent is the data of a changes event: which collections to pull.
type changesEvent struct {
	Collections []schema.Collection `json:"collections"`
}

// collectionsOf returns the collections p reads, among cols if any.
func collectionsOf(p schema.Principal, cols []schema.Collection) []schema.Collection {
	var out []schema.Collection
	for _, t := range schema.TokensIn(schema.ReadTokens(p), cols) {
		if c := schema.TokenCollection(t); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// sameScope reports whether two principals read the same records.
func sameScope(a, b schema.Principal) bool {
	return slices.Equal(schema.ReadTokens(a), schema.ReadTokens(b))
}

// sse writes server-sent events to one stream.
type sse struct {
	w       *bufio.Writer
	conn    net.Conn
	metrics *metrics
}

// event writes one event with data as JSON and reports whether it
// reached the connection.
func (e *sse) event(name string, data any) bool {
	raw, err := json.Marshal(data)
	if err != nil {
		return false
	}
	e.w.WriteString("event: " + name + "\ndata: ")
	e.w.Write(raw)
	e.w.WriteString("\n\n")
	if !e.flush() {
		return false
	}
	e.metrics.streamEvents.WithLabelValues(name).Inc()
	return true
}

// comment writes a comment line, which clients ignore.
func (e *sse) comment(text string) bool {
	e.w.WriteString(": " + text + "\n\n")
	return e.flush()
}

func (e *sse) flush() bool {
	// The server's write deadline was set once for the whole response:
	// each event gets its own.
	if e.conn != nil {
		e.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	}
	return e.w.Flush() == nil
}

// parseCollections reads a comma-separated list of collection names;
// nil for none.
func parseCollections(list string) ([]schema.Collection, error) {
	if list == "" {
		return nil, nil
	}
	var names []schema.Collection
	for _, n := range strings.Split(list, ",") {
		names = append(names, schema.Collection(strings.TrimSpace(n)))
	}
	return sync.CollectionSet("collections", names)
}
