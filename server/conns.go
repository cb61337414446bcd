package server

import (
	"errors"
	"net"
	gosync "sync"
	"sync/atomic"
	"syscall"
)

// trackingListener remembers the connections it accepted that are still
// open, and which of them have sent a byte: fasthttp counts a connection
// that has not sent its first request as one whose request is being read,
// so a graceful shutdown would wait for it until the read timeout.
type trackingListener struct {
	net.Listener
	mu    gosync.Mutex
	conns map[*trackedConn]struct{}
}

func trackConns(ln net.Listener) *trackingListener {
	return &trackingListener{Listener: ln, conns: map[*trackedConn]struct{}{}}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// closeSilent closes the open connections that never sent a byte: no
// request of theirs can be in flight.
func (l *trackingListener) closeSilent() {
	var silent []*trackedConn
	l.mu.Lock()
	for c := range l.conns {
		if !c.spoke.Load() {
			silent = append(silent, c)
		}
	}
	l.mu.Unlock()
	for _, c := range silent {
		c.Close()
	}
}

// trackedConn is a connection of a trackingListener.
type trackedConn struct {
	net.Conn
	l     *trackingListener
	spoke atomic.Bool
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.spoke.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}

// SyscallConn gives the connection's descriptor, for looking whether its
// client is still there (see whileConnected).
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("server: connection has no descriptor")
	}
	return sc.SyscallConn()
}
