package memnet

import (
	"io"
	"net"
	"sync"
	"time"
)

// bufferSize bounds the bytes buffered per direction of a connection,
// including bytes still in flight under latency; a Write blocks while it is
// full, which gives the network back-pressure like a TCP window.
const bufferSize = 1 << 20

// chunk is a run of bytes written at once, readable from at on.
type chunk struct {
	b  []byte
	at time.Time
}

// stream is one direction of a connection.
type stream struct {
	chunks   []chunk
	size     int       // bytes in chunks
	last     time.Time // readiness of the newest chunk: later chunks are never earlier
	eof      bool      // the writer closed: EOF after the chunks
	eofAt    time.Time // when the EOF itself arrives (after latency)
	shutdown bool      // the reader closed: writes fail, data is dropped
}

// readyAt returns when bytes (or EOF) written now become readable.
func (s *stream) readyAt(now time.Time, latency time.Duration) time.Time {
	at := now.Add(latency)
	if at.Before(s.last) {
		at = s.last
	}
	s.last = at
	return at
}

// wire is the shared state of one connection: two streams and the faults
// applied to it. Side 0 is the dialer, side 1 the accepted end; side i
// writes into streams[i] and reads streams[1-i].
type wire struct {
	net   *Network
	hosts [2]string
	addrs [2]Addr

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every state change
	streams [2]stream
	closed  [2]bool
	cut     bool
	latency time.Duration
}

func newWire(n *Network, hosts [2]string, addrs [2]Addr, latency time.Duration) *wire {
	return &wire{net: n, hosts: hosts, addrs: addrs, latency: latency, changed: make(chan struct{})}
}

// signal wakes every waiter; the caller holds w.mu.
func (w *wire) signal() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// cutLocked fails both sides at once and drops data in flight; the caller
// holds w.mu. It reports whether the wire was open before.
func (w *wire) cutLocked() bool {
	if w.cut || (w.closed[0] && w.closed[1]) {
		return false
	}
	w.cut = true
	w.streams = [2]stream{}
	w.signal()
	return true
}

// conn is one end of a wire; it implements net.Conn.
type conn struct {
	w      *wire
	side   int
	rd, wd *deadline
}

func newConn(w *wire, side int) *conn {
	return &conn{w: w, side: side, rd: newDeadline(), wd: newDeadline()}
}

func (c *conn) LocalAddr() net.Addr  { return c.w.addrs[c.side] }
func (c *conn) RemoteAddr() net.Addr { return c.w.addrs[1-c.side] }

func (c *conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: network, Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Read reads bytes that have arrived; it blocks until some have, or EOF, a
// close, a cut or the read deadline.
func (c *conn) Read(b []byte) (int, error) {
	w := c.w
	w.mu.Lock()
	for {
		s := &w.streams[1-c.side]
		switch {
		case w.closed[c.side]:
			w.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		case w.cut:
			w.mu.Unlock()
			return 0, c.opError("read", ErrCut)
		case c.rd.expired():
			w.mu.Unlock()
			return 0, c.opError("read", errTimeout)
		case len(b) == 0:
			w.mu.Unlock()
			return 0, nil
		}
		now := time.Now()
		if n := s.take(b, now); n > 0 {
			w.signal() // room for the writer
			w.mu.Unlock()
			return n, nil
		}
		var wake time.Time // when the head chunk or the EOF arrives
		switch {
		case len(s.chunks) > 0:
			wake = s.chunks[0].at
		case s.eof && !now.Before(s.eofAt):
			w.mu.Unlock()
			return 0, io.EOF
		case s.eof:
			wake = s.eofAt
		}
		changed := w.changed
		w.mu.Unlock()
		c.block(changed, c.rd, wake)
		w.mu.Lock()
	}
}

// take copies ready bytes into b and reports how many.
func (s *stream) take(b []byte, now time.Time) int {
	n := 0
	for n < len(b) && len(s.chunks) > 0 && !s.chunks[0].at.After(now) {
		head := &s.chunks[0]
		k := copy(b[n:], head.b)
		n += k
		head.b = head.b[k:]
		if len(head.b) == 0 {
			s.chunks[0] = chunk{}
			s.chunks = s.chunks[1:]
		}
	}
	s.size -= n
	if len(s.chunks) == 0 {
		s.chunks = nil // let the backing array go
	}
	return n
}

// block waits for a state change, the deadline, or the wake time if set.
func (c *conn) block(changed chan struct{}, d *deadline, wake time.Time) {
	if wake.IsZero() {
		select {
		case <-changed:
		case <-d.wait():
		}
		return
	}
	t := time.NewTimer(time.Until(wake))
	defer t.Stop()
	select {
	case <-changed:
	case <-d.wait():
	case <-t.C:
	}
}

// Write writes all of b, blocking while the direction's buffer is full. On a
// close, a cut or the write deadline it returns how much was written.
func (c *conn) Write(b []byte) (int, error) {
	w := c.w
	n := 0
	w.mu.Lock()
	for {
		s := &w.streams[c.side]
		switch {
		case w.closed[c.side]:
			w.mu.Unlock()
			return n, c.opError("write", net.ErrClosed)
		case w.cut:
			w.mu.Unlock()
			return n, c.opError("write", ErrCut)
		case c.wd.expired():
			w.mu.Unlock()
			return n, c.opError("write", errTimeout)
		case s.shutdown:
			w.mu.Unlock()
			return n, c.opError("write", ErrBrokenPipe)
		case n == len(b):
			w.mu.Unlock()
			return n, nil
		}
		if room := bufferSize - s.size; room > 0 {
			k := min(room, len(b)-n)
			s.push(b[n:n+k], time.Now(), w.latency)
			n += k
			w.signal()
			continue
		}
		changed := w.changed
		w.mu.Unlock()
		c.block(changed, c.wd, time.Time{})
		w.mu.Lock()
	}
}

// push appends a copy of p, readable after latency.
func (s *stream) push(p []byte, now time.Time, latency time.Duration) {
	at := s.readyAt(now, latency)
	s.size += len(p)
	if k := len(s.chunks); k > 0 && s.chunks[k-1].at.Equal(at) {
		s.chunks[k-1].b = append(s.chunks[k-1].b, p...)
		return
	}
	s.chunks = append(s.chunks, chunk{b: append([]byte(nil), p...), at: at})
}

// Close closes this end: the peer reads what was sent, then io.EOF, and its
// writes fail; data not yet read by this end is dropped.
func (c *conn) Close() error {
	w := c.w
	w.mu.Lock()
	if w.closed[c.side] {
		w.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	w.closed[c.side] = true
	if !w.cut {
		out := &w.streams[c.side]
		out.eof = true
		out.eofAt = out.readyAt(time.Now(), w.latency)
		in := &w.streams[1-c.side]
		in.chunks, in.size, in.shutdown = nil, 0, true
	}
	done := w.closed[0] && w.closed[1]
	w.signal()
	w.mu.Unlock()
	c.rd.stop()
	c.wd.stop()
	if done {
		w.net.forget(w)
	}
	return nil
}

func (c *conn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *conn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wd.set(t)
	return nil
}
