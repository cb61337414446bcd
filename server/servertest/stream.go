package servertest

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Event is one server-sent event, or a comment (Name "comment").
type Event struct {
	Name string
	Data string
	At   time.Time // when it was read
}

// Stream is an open GET /v1/sync/stream, read in the background.
type Stream struct {
	// Status and Header are the response's.
	Status int
	Header http.Header
	// Body is the response body when the stream was refused.
	Body string

	events chan Event
	cancel context.CancelFunc
	ended  chan struct{}
}

// OpenStream opens a live stream at baseURL with a bearer token and an
// optional query ("collections=customers"); it is closed when the test
// ends.
func OpenStream(tb testing.TB, baseURL, token, query string) *Stream {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	url := baseURL + "/v1/sync/stream"
	if query != "" {
		url += "?" + query
	}
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	require.NoError(tb, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		require.NoError(tb, err)
	}
	s := &Stream{Status: resp.StatusCode, Header: resp.Header, events: make(chan Event, 1024), cancel: cancel, ended: make(chan struct{})}
	tb.Cleanup(s.Close)
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			b.WriteString(sc.Text())
		}
		resp.Body.Close()
		s.Body = b.String()
		close(s.events)
		close(s.ended)
		return s
	}
	go s.read(resp)
	return s
}

// read parses events until the body ends.
func (s *Stream) read(resp *http.Response) {
	defer close(s.ended)
	defer close(s.events)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var ev Event
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.Name != "" {
				ev.At = time.Now()
				s.events <- ev
			}
			ev = Event{}
		case strings.HasPrefix(line, ":"):
			ev = Event{Name: "comment", Data: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "event: "):
			ev.Name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			ev.Data = line[len("data: "):]
		}
	}
}

// Next returns the next event other than a comment, or false when none
// comes within wait or the stream ends.
func (s *Stream) Next(wait time.Duration) (Event, bool) {
	return s.next(wait, false)
}

// NextAny is Next counting comments as events.
func (s *Stream) NextAny(wait time.Duration) (Event, bool) {
	return s.next(wait, true)
}

func (s *Stream) next(wait time.Duration, comments bool) (Event, bool) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return Event{}, false
			}
			if ev.Name == "comment" && !comments {
				continue
			}
			return ev, true
		case <-timer.C:
			return Event{}, false
		}
	}
}

// Drain forgets the events already read and not yet taken by Next.
func (s *Stream) Drain() {
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

// Ended is closed when the stream has ended; events read before may
// still wait for Next.
func (s *Stream) Ended() <-chan struct{} { return s.ended }

// Close drops the connection.
func (s *Stream) Close() { s.cancel() }
