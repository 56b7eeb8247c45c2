package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// batchLimit bounds the bytes one write carries, so that a large resend is
// written in several batches instead of one huge allocation.
const batchLimit = 256 << 10

// maxBatch bounds the payloads of one Handler.Receive, so that a handler's
// lock is never held for a whole read buffer of tiny frames.
const maxBatch = 128

var errReplaced = errors.New("relay: connection replaced by a newer one")

// Link carries payloads to one remote node exactly once and in order, across
// dropped connections and redials, within BufferMax and BufferTimeout.
type Link struct {
	cfg      Config
	h        Handler
	log      hclog.Logger
	addr     string // dial address, guarded by mu (Redial moves it); "" for inbound links
	outbound bool

	ctx    context.Context // cancelled by Close: aborts a dial
	cancel context.CancelFunc
	wake   chan struct{} // cap 1: something to write, an attach, a drop
	stop   chan struct{} // closed by Close
	done   chan struct{} // closed when run returns
	once   sync.Once

	mu sync.Mutex
	m  *machine
	// state and remoteID are written under mu but read without it: the
	// router asks every link for them on every event it forwards.
	state    atomic.Int32 // a State
	remoteID atomic.Pointer[string]
	// buffered mirrors m.buffered(), stored under mu after every input
	// that can change it (each ends in takeEventsLocked), so that Emit's
	// back-pressure check of every link per event takes no lock.
	buffered    atomic.Int64
	closed      bool
	conn        net.Conn // current connection (handshaking or live)
	connAddr    string
	attach      *attachment
	dropErr     error
	space       chan struct{} // closed and replaced when WaitSpace should look again
	spaceWanted bool
	redial      bool      // Redial asked: dial now, back-off reset
	lastReport  time.Time // when idle last reported the machine's events (drops while down)
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
// full buffer drops its oldest payload and reports Overflow (from the
// link's goroutine, as every Handler call). After the link has stopped,
// Send does nothing.
func (l *Link) Send(payload []byte) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	quiet := len(l.m.events) == 0
	l.m.Send(payload)
	l.buffered.Store(int64(l.m.buffered()))
	// Connected, the writer sends it and reports what the machine decided.
	// Down, there is nothing to write: the loop is woken only by the first
	// drop since its last report, which it reports at most once per
	// reportInterval (idle), so that an Emit to a thousand absent peers
	// costs a thousand buffer appends, not a thousand wake-ups.
	wake := l.State() == Connected || quiet && len(l.m.events) > 0
	l.mu.Unlock()
	if wake {
		l.poke()
	}
}

// WaitSpace returns nil once Buffered() < BufferMax or the link is not
// Connected, and ctx.Err() if ctx ends first.
func (l *Link) WaitSpace(ctx context.Context) error {
	for {
		l.mu.Lock()
		if l.m.buffered() < l.cfg.BufferMax || l.State() != Connected {
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

// Buffered is the number of unacknowledged payloads held, as of the last
// Send, acknowledgement, disconnection or expiry; it takes no lock.
func (l *Link) Buffered() int { return int(l.buffered.Load()) }

// State is the link's connection state.
func (l *Link) State() State { return State(l.state.Load()) }

// RemoteID is the remote NodeID from the last handshake; "" before the first.
func (l *Link) RemoteID() string {
	if id := l.remoteID.Load(); id != nil {
		return *id
	}
	return ""
}

// RemoteBoot is the remote boot id from the last handshake.
func (l *Link) RemoteBoot() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.peer.Boot
}

// RemoteWindow is the remote's BufferMax from the last handshake (its
// HELLO's Window); 0 before the first.
func (l *Link) RemoteWindow() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.peer.Window
}

// DownSince is when the link was last seen connected (or made, if it
// never was); zero while it is connected. For an owner choosing which
// absent peer to give up first.
func (l *Link) DownSince() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m.up {
		return time.Time{}
	}
	return l.m.downSince
}

// Addr is the dial address, or the remote address of the current (or last)
// connection of an inbound link.
func (l *Link) Addr() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.outbound {
		return l.addr
	}
	return l.connAddr
}

// EachUnacked calls fn with every payload sent and not yet acknowledged,
// oldest first, with the link's lock held: fn must not call the link, and
// must not keep the payload. For an owner that must tell what a stopped
// link could not deliver.
func (l *Link) EachUnacked(fn func(payload []byte)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.m.pay[l.m.head:] {
		fn(p)
	}
}

// Redial makes a dialing link that is not connected dial again at once,
// with its back-off reset, at addr when addr is not "" (the remote came
// back at another address: a live connection to the old one is dropped).
// The buffer is kept and resent as after any reconnect. It does nothing on
// an inbound or stopped link, nor on a connected one that has not moved.
func (l *Link) Redial(addr string) {
	if !l.outbound {
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	moved := addr != "" && addr != l.addr
	if moved {
		l.log.Info("remote moved; redialing", "from", l.addr, "to", addr)
		l.addr = addr
		if l.conn != nil {
			l.dropErr = fmt.Errorf("relay: remote moved to %s", addr)
			l.conn.Close()
		}
	}
	if moved || l.State() != Connected {
		l.redial = true
	}
	l.mu.Unlock()
	l.poke()
}

// takeRedial reports whether Redial asked for a redial, and clears it.
func (l *Link) takeRedial() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.redial
	l.redial = false
	return r
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
// resends per the resend rule and runs. On a stopped link (see Done) it just
// closes conn: the owner must make a new link.
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

// takeEventsLocked drains the machine's events, stamped with the address,
// and publishes the buffered count: every input to the machine on the
// link's goroutines ends here (Send publishes the count and pokes the
// writer, which drains its events).
func (l *Link) takeEventsLocked() []Event {
	l.buffered.Store(int64(l.m.buffered()))
	if len(l.m.events) == 0 {
		return nil // the common case, as for every Send of a healthy link
	}
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

// report hands evs to the Handler. Drops are logged by the Handler, which
// aggregates them per interval; only the link's own troubles are logged
// here.
func (l *Link) report(evs []Event) {
	for _, ev := range evs {
		switch ev.Kind {
		case EventRejected:
			l.log.Warn("link event", "event", ev.Kind, "peer", ev.PeerID, "error", ev.Err)
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
	l.state.Store(int32(s))
	l.signalSpaceLocked()
}
