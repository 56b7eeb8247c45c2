package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
)

// batchLimit bounds the bytes one write carries, so that a large resend is
// written in several batches instead of one huge allocation.
const batchLimit = 256 << 10

var errReplaced = errors.New("relay: connection replaced by a newer one")

// Link carries payloads to one remote node exactly once and in order, across
// dropped connections and redials, within BufferMax and BufferTimeout.
type Link struct {
	cfg      Config
	h        Handler
	log      hclog.Logger
	addr     string // dial address; "" for inbound links
	outbound bool

	ctx    context.Context // cancelled by Close: aborts a dial
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: something to write, an attach, a drop
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when run returns
	once   sync.Once

	mu          sync.Mutex
	m           *machine
	state       State
	closed      bool
	conn        net.Conn // current connection (handshaking or live)
	connAddr    string
	attach      *attachment
	dropErr     error
	space       chan struct{} // closed and replaced when WaitSpace should look again
	spaceWanted bool
}

type attachment struct {
	conn   net.Conn
	remote Hello
}

// Dial returns a link that dials addr, handshakes and redials with back-off
// until Close. The error is for a bad config only.
func Dial(cfg Config, addr string, h Handler) (*Link, error) {
	if cfg.Transport == nil {
		return nil, errors.New("relay: Transport is required for dialing")
	}
	if addr == "" {
		return nil, errors.New("relay: dial address must not be empty")
	}
	return newLink(cfg, addr, h)
}

// NewInbound returns a link that only serves connections handed to it by
// Attach. It stops for good once disconnected for BufferTimeout.
func NewInbound(cfg Config, h Handler) (*Link, error) {
	return newLink(cfg, "", h)
}

func newLink(cfg Config, addr string, h Handler) (*Link, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("relay: Handler must not be nil")
	}
	cfg = cfg.withDefaults()
	l := &Link{
		cfg: cfg, h: h, addr: addr, outbound: addr != "",
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		space: make(chan struct{}),
	}
	l.log = cfg.Logger.Named("relay")
	if addr != "" {
		l.log = l.log.With("addr", addr)
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.m = newMachine(cfg, l.outbound, time.Now())
	go l.run()
	return l, nil
}

// Send appends payload to the retransmit buffer; it never blocks. The link
// keeps payload until it is acknowledged: the caller must not modify it. A
// full buffer drops its oldest payload and reports Overflow.
func (l *Link) Send(payload []byte) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.m.Send(payload)
	evs := l.takeEventsLocked()
	l.mu.Unlock()
	l.poke()
	l.report(evs)
}

// SendControl queues an unsequenced, unbuffered CTRL frame: best effort,
// false if not connected (or too large).
func (l *Link) SendControl(payload []byte) bool {
	l.mu.Lock()
	ok := !l.closed && l.m.SendControl(payload)
	l.mu.Unlock()
	if ok {
		l.poke()
	}
	return ok
}

// WaitSpace returns nil once Buffered() < BufferMax or the link is not
// Connected, and ctx.Err() if ctx ends first.
func (l *Link) WaitSpace(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.m.buffered() < l.cfg.BufferMax || l.state != Connected {
			l.mu.Unlock()
			return nil
		}
		l.spaceWanted = true
		ch := l.space
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Buffered is the number of unacknowledged payloads held.
func (l *Link) Buffered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.buffered()
}

// State is the link's connection state.
func (l *Link) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// RemoteID is the remote NodeID from the last handshake; "" before the first.
func (l *Link) RemoteID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.peer.NodeID
}

// RemoteBoot is the remote boot id from the last handshake.
func (l *Link) RemoteBoot() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.peer.Boot
}

// Addr is the dial address, or the remote address of the current (or last)
// connection of an inbound link.
func (l *Link) Addr() string {
	if l.outbound {
		return l.addr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connAddr
}

// Outbound reports whether the link was created by Dial.
func (l *Link) Outbound() bool { return l.outbound }

// Drop closes the current connection with reason; a dialing link redials.
func (l *Link) Drop(reason error) {
	if reason == nil {
		reason = errors.New("relay: connection dropped")
	}
	l.mu.Lock()
	if l.conn != nil {
		l.dropErr = reason
		l.conn.Close()
	}
	l.mu.Unlock()
	l.poke()
}

// Close stops the link for good and waits for its goroutines. Idempotent.
func (l *Link) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		if l.conn != nil {
			l.conn.Close()
		}
		l.mu.Unlock()
		l.cancel()
		close(l.stop)
	})
	<-l.done
	return nil
}

// Done is closed when the link has stopped for good (Close, inbound expiry,
// or a back-off policy that gave up).
func (l *Link) Done() <-chan struct{} { return l.done }

// Attach hands an accepted connection (remote HELLO already read by Accept)
// to the link: it replaces any current connection, writes our HELLO,
// resends per the resend rule and runs.
func (l *Link) Attach(conn net.Conn, remote Hello) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		conn.Close()
		return
	}
	if l.attach != nil {
		l.attach.conn.Close()
	}
	l.attach = &attachment{conn: conn, remote: remote}
	if l.conn != nil {
		l.conn.Close() // unblock the current session; it ends as replaced
	}
	l.mu.Unlock()
	l.poke()
}

func (l *Link) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// takeEventsLocked drains the machine's events, stamped with the address.
func (l *Link) takeEventsLocked() []Event {
	evs := l.m.takeEvents()
	addr := l.addr
	if addr == "" {
		addr = l.connAddr
	}
	for i := range evs {
		if evs[i].Addr == "" {
			evs[i].Addr = addr
		}
		if evs[i].Kind == EventAcknowledge || evs[i].Kind == EventExpired {
			l.signalSpaceLocked()
		}
	}
	return evs
}

func (l *Link) report(evs []Event) {
	for _, ev := range evs {
		switch ev.Kind {
		case EventOverflow, EventExpired, EventRejected:
			l.log.Warn("link event", "event", ev.Kind, "peer", ev.PeerID, "dropped", ev.Dropped, "error", ev.Err)
		case EventDisconnect:
			l.log.Info("link event", "event", ev.Kind, "peer", ev.PeerID, "error", ev.Err)
		default:
			l.log.Debug("link event", "event", ev.Kind, "peer", ev.PeerID, "seq", ev.Seq)
		}
		l.h.Event(l, ev)
	}
}

func (l *Link) event(ev Event) {
	l.mu.Lock()
	l.m.emit(ev)
	evs := l.takeEventsLocked()
	l.mu.Unlock()
	l.report(evs)
}

func (l *Link) signalSpaceLocked() {
	if l.spaceWanted {
		close(l.space)
		l.space, l.spaceWanted = make(chan struct{}), false
	}
}

func (l *Link) setStateLocked(s State) {
	l.state = s
	l.signalSpaceLocked()
}

// run is the link's loop: it obtains connections (dial or attach), serves
// them, backs off between attempts and services timers while down.
func (l *Link) run() {
	defer l.finish()
	bo := l.cfg.NewBackoff()
	bo.Reset()
	attempt, wait := 0, false
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if a := l.takeAttach(); a != nil {
			if l.serve(a.conn, bufio.NewReader(a.conn), a.remote, true) {
				bo.Reset()
				attempt = 0
			}
			wait = true
			continue
		}
		if !l.outbound {
			if !l.idle(time.Time{}) {
				return
			}
			continue
		}
		if wait {
			delay := bo.NextBackOff()
			if delay == backoff.Stop {
				l.log.Warn("back-off policy gave up; link stopped")
				return
			}
			attempt++
			l.event(Event{Kind: EventBackoff, Delay: delay, Attempt: attempt})
			if !l.idle(time.Now().Add(delay)) {
				return
			}
			if l.hasAttach() {
				continue
			}
		}
		wait = true
		conn, br, remote, ok := l.dial()
		if ok && l.serve(conn, br, remote, false) {
			bo.Reset()
			attempt = 0
		}
	}
}

func (l *Link) finish() {
	l.mu.Lock()
	l.closed = true
	if l.attach != nil {
		l.attach.conn.Close()
		l.attach = nil
	}
	l.setStateLocked(Closed)
	l.mu.Unlock()
	l.cancel()
	close(l.done)
}

func (l *Link) takeAttach() *attachment {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.attach
	l.attach = nil
	return a
}

func (l *Link) hasAttach() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attach != nil
}

// idle waits while disconnected until until (zero: indefinitely), an attach
// or Close, ticking the machine so that the buffer expires on time. It
// returns false when the link must stop.
func (l *Link) idle(until time.Time) bool {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.attach != nil {
			l.mu.Unlock()
			return true
		}
		next := l.m.NextDeadline()
		l.mu.Unlock()
		now := time.Now()
		if !until.IsZero() {
			if !now.Before(until) {
				return true
			}
			if until.Before(next) {
				next = until
			}
		}
		timer.Reset(max(next.Sub(now), 0))
		select {
		case <-l.stop:
			return false
		case <-l.wake:
		case <-timer.C:
			l.mu.Lock()
			expired, _ := l.m.Tick(time.Now())
			evs := l.takeEventsLocked()
			l.mu.Unlock()
			l.report(evs)
			if expired && !l.outbound {
				l.log.Debug("inbound link expired; stopping")
				return false
			}
		}
	}
}

// serve runs one connection until it ends. attached connections still need
// our HELLO; dialed ones have finished the handshake. It reports whether
// the connection got as far as Connected.
func (l *Link) serve(conn net.Conn, br *bufio.Reader, remote Hello, attached bool) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		conn.Close()
		return false
	}
	l.conn, l.dropErr = conn, nil
	if attached {
		l.connAddr = conn.RemoteAddr().String()
	}
	hello := l.m.hello()
	l.mu.Unlock()
	if attached {
		l.event(Event{Kind: EventConnect, PeerID: remote.NodeID})
		if err := writeFrame(conn, Frame{Type: FrameHello, Hello: hello}, l.cfg.Timeout); err != nil {
			l.endHandshake(conn, fmt.Errorf("relay: handshake with %s: %w", conn.RemoteAddr(), err))
			return false
		}
	}
	l.mu.Lock()
	l.m.Connected(remote, time.Now())
	l.setStateLocked(Connected)
	evs := l.takeEventsLocked()
	l.mu.Unlock()
	l.report(evs)

	var cause firstErr
	readerDone := make(chan struct{})
	go l.read(conn, br, &cause, readerDone)
	l.write(conn, &cause, readerDone)
	conn.Close()
	<-readerDone
	err := cause.get()
	l.mu.Lock()
	switch {
	case l.closed:
		err = ErrClosed
	case l.dropErr != nil:
		err = l.dropErr
	case l.attach != nil:
		err = errReplaced
	}
	l.conn, l.dropErr = nil, nil
	l.m.Disconnected(err, time.Now())
	l.setStateLocked(Disconnected)
	evs = l.takeEventsLocked()
	l.mu.Unlock()
	l.report(evs)
	return true
}

// firstErr keeps the first reason a connection ended: later errors are
// mostly the echo of the close that the first one caused.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// write is the connection's writer and timer loop; it returns when the
// connection must end, having recorded why in cause (unless serve knows
// better: Close, Drop, Attach).
func (l *Link) write(conn net.Conn, cause *firstErr, readerDone <-chan struct{}) {
	var buf []byte
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.closed || l.dropErr != nil || l.attach != nil {
			l.mu.Unlock()
			return
		}
		now := time.Now()
		buf = l.m.AppendPending(buf[:0], now, batchLimit)
		more := l.m.Pending()
		next := l.m.NextDeadline()
		l.mu.Unlock()
		if len(buf) > 0 {
			// One write per batch: frames were appended back to back.
			_ = conn.SetWriteDeadline(now.Add(l.cfg.Timeout))
			if _, err := conn.Write(buf); err != nil {
				cause.set(fmt.Errorf("relay: write: %w", err))
				return
			}
			if cap(buf) > 4*batchLimit {
				buf = nil // do not pin a huge one-off batch
			}
		}
		if more {
			continue
		}
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-readerDone:
			return
		case <-timer.C:
			l.mu.Lock()
			_, err := l.m.Tick(time.Now())
			evs := l.takeEventsLocked()
			l.mu.Unlock()
			l.report(evs)
			if err != nil {
				cause.set(err)
				return
			}
		}
	}
}

// read is the connection's reader: decode, let the machine judge, deliver.
// On error it records the cause and closes conn, which also unblocks a
// writer stuck on a peer that stopped reading.
func (l *Link) read(conn net.Conn, br *bufio.Reader, cause *firstErr, done chan<- struct{}) {
	defer close(done)
	fail := func(err error) {
		cause.set(err)
		conn.Close()
	}
	for {
		f, err := ReadFrame(br, l.cfg.MaxFrameSize)
		if err != nil {
			fail(fmt.Errorf("relay: read: %w", err))
			return
		}
		l.mu.Lock()
		p, seq, ctl, err := l.m.Receive(f, time.Now())
		evs := l.takeEventsLocked()
		l.mu.Unlock()
		l.report(evs)
		if err != nil {
			fail(err)
			return
		}
		if seq != 0 {
			l.h.Receive(l, p)
			l.mu.Lock()
			l.m.Delivered(seq)
			due := l.m.Pending()
			l.mu.Unlock()
			if due {
				l.poke()
			}
		} else if ctl != nil {
			l.h.Control(l, ctl)
		}
	}
}
