// Package mongotest runs a Mongo-protocol store for tests: the pinned
// FerretDB, embedded, behind a proxy that executes one command at a time.
//
// FerretDB v1 is not atomic under concurrency: two updates that run at the
// same time may both read a document and both write it back, so a version
// guard can let two writers win and $inc can lose counts. The proxy makes
// every command of every connection run alone, which restores the
// atomicity of each single-document write that MongoDB gives, and so lets
// clients with normal connection pools, in several processes, share one
// store in tests. It serialises more than MongoDB does: commands never
// overlap at all, so tests on it exercise the interleavings between
// commands, never those within one (see docs/consistency.md).
package mongotest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	gosync "sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Bed is a running FerretDB and its serialising proxy, in this process
// or, for tests, in a testmongo process of their own (see ForTest).
type Bed struct {
	proxy   *Proxy
	backend string
	cancel  context.CancelFunc
	stopped chan error
	// proc is the testmongo process of a bed run apart, and uri and
	// direct are the URIs it printed.
	proc        *process
	uri, direct string

	closeOnce gosync.Once
	closeErr  error
}

// Config says where a Bed keeps its files and what it logs.
type Config struct {
	// Dir holds FerretDB's SQLite files; it must exist.
	Dir string
	// Listen is the proxy's address; 127.0.0.1:0 when empty.
	Listen string
	// Durable keeps SQLite's fsyncs; without it writes are faster and a
	// machine crash may lose the latest ones (a process crash does not).
	Durable bool
	// Logger receives FerretDB's errors and the proxy's; nothing is
	// logged when nil.
	Logger *slog.Logger
}

// Start runs FerretDB on a loopback port and the proxy in front of it,
// and waits until FerretDB answers. Close stops both.
func Start(ctx context.Context, cfg Config) (*Bed, error) {
	const op = "mongotest.Start"
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	url := "file:" + cfg.Dir + "/"
	if !cfg.Durable {
		url += "?_pragma=synchronous(off)"
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: url,
		Logger:    logger.With("part", "ferretdb"),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	b := &Bed{cancel: cancel, stopped: make(chan error, 1)}
	go func() { b.stopped <- f.Run(runCtx) }()
	b.backend, err = hostPort(f.MongoDBURI()) // waits for the listener
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	b.proxy, err = Listen(listen, b.backend, logger.With("part", "proxy"))
	if err != nil {
		b.stop()
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := awaitBackend(ctx, b.backend); err != nil {
		b.Close()
		return nil, fmt.Errorf("%s: FerretDB does not answer: %w", op, err)
	}
	return b, nil
}

// URI is the MongoDB URI of the proxy, ending in "/": append a database
// name and options.
func (b *Bed) URI() string {
	if b.proc != nil {
		return b.uri
	}
	return "mongodb://" + b.proxy.Addr() + "/"
}

// DirectURI is the MongoDB URI of FerretDB itself, bypassing the proxy:
// for tests that show what the proxy prevents.
func (b *Bed) DirectURI() string {
	if b.proc != nil {
		return b.direct
	}
	return "mongodb://" + b.backend + "/"
}

// Close stops the proxy, closing its connections, then FerretDB. Later
// calls do nothing and return the first call's error.
func (b *Bed) Close() error {
	b.closeOnce.Do(func() {
		if b.proc != nil {
			b.closeErr = b.proc.stop()
			return
		}
		b.closeErr = b.proxy.Close()
		b.stop()
	})
	return b.closeErr
}

func (b *Bed) stop() {
	b.cancel()
	<-b.stopped
}

// hostPort returns the host:port of a mongodb:// URI with no credentials.
func hostPort(uri string) (string, error) {
	const prefix = "mongodb://"
	if len(uri) <= len(prefix) || uri[:len(prefix)] != prefix {
		return "", fmt.Errorf("unexpected FerretDB URI %q", uri)
	}
	rest := uri[len(prefix):]
	for i, c := range rest {
		if c == '/' || c == '?' {
			return rest[:i], nil
		}
	}
	return rest, nil
}

// awaitBackend waits until the backend accepts a connection.
func awaitBackend(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Proxy forwards the MongoDB wire protocol from its clients to one
// backend, one message at a time across all its connections: a request
// is sent and its reply read back while no other request is in flight.
// Each client connection gets a backend connection of its own, so
// cursors and sessions behave as they would without the proxy.
type Proxy struct {
	ln      net.Listener
	backend string
	logger  *slog.Logger

	turn gosync.Mutex // held from sending a request to reading its reply

	mu     gosync.Mutex
	conns  map[net.Conn]bool
	closed bool
	wg     gosync.WaitGroup
}

// Listen starts a proxy on addr in front of the backend at backend.
func Listen(addr, backend string, logger *slog.Logger) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mongotest.Listen: %w", err)
	}
	p := &Proxy{ln: ln, backend: backend, logger: logger, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

// track adds c to the connections Close closes; false when closing.
func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			back, err := net.Dial("tcp", p.backend)
			if err != nil {
				p.logger.Error("backend unreachable", "err", err)
				return
			}
			if !p.track(back) {
				return
			}
			defer p.untrack(back)
			if err := p.relay(c, back); err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				p.logger.Debug("connection ended", "err", err)
			}
		}()
	}
}

// Wire protocol constants (MongoDB's OP_MSG).
const (
	opMsg            = 2013
	flagMoreToCome   = 1 << 1
	flagExhaustAllow = 1 << 16
	flagChecksum     = 1 << 0
	maxMessage       = 48 << 20 // MongoDB's maxMessageSizeBytes
)

// relay forwards the requests read from client to back and the replies
// back, each exchange alone.
func (p *Proxy) relay(client, back net.Conn) error {
	for {
		req, err := readMessage(client)
		if err != nil {
			return err
		}
		reply, err := p.exchange(back, req)
		if err != nil {
			return err
		}
		for _, r := range reply {
			if _, err := client.Write(r); err != nil {
				return err
			}
		}
	}
}

// exchange sends req to back and reads its replies, holding the turn: a
// request marked moreToCome has none. A request may not ask for an
// exhaust stream of replies, which would hold the turn for ever: the flag
// is cleared, and the server answers once.
func (p *Proxy) exchange(back net.Conn, req []byte) ([][]byte, error) {
	expectReply := true
	if opCode(req) == opMsg && len(req) >= 20 {
		flags := binary.LittleEndian.Uint32(req[16:20])
		if flags&flagExhaustAllow != 0 && flags&flagChecksum == 0 {
			binary.LittleEndian.PutUint32(req[16:20], flags&^flagExhaustAllow)
		}
		expectReply = flags&flagMoreToCome == 0
	}
	p.turn.Lock()
	defer p.turn.Unlock()
	if _, err := back.Write(req); err != nil {
		return nil, err
	}
	var replies [][]byte
	for expectReply {
		r, err := readMessage(back)
		if err != nil {
			return nil, err
		}
		replies = append(replies, r)
		expectReply = opCode(r) == opMsg && len(r) >= 20 && binary.LittleEndian.Uint32(r[16:20])&flagMoreToCome != 0
	}
	return replies, nil
}

// readMessage reads one length-prefixed wire message.
func readMessage(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.LittleEndian.Uint32(head[:])))
	if n < 16 || n > maxMessage {
		return nil, fmt.Errorf("wire message of %d bytes", n)
	}
	msg := make([]byte, n)
	copy(msg, head[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

func opCode(msg []byte) int32 { return int32(binary.LittleEndian.Uint32(msg[12:16])) }
