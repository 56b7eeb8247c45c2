package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/dedup"
	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/relay"
)

// Errors returned by Node. Match them with errors.Is.
var (
	ErrClosed        = errors.New("mesh: node closed")
	ErrInvalidConfig = errors.New("mesh: invalid config")
	ErrBadAddress    = errors.New("mesh: bad address")
	ErrBadEvent      = errors.New("mesh: bad event")
	ErrMaxPeers      = errors.New("mesh: too many peers")
	ErrListening     = errors.New("mesh: already listening")
	ErrNoMembership  = errors.New("mesh: no membership: GossipAddr is not set")
	ErrSlowConsumer  = errors.New("mesh: handler queue full: a handler is too slow")
	ErrPeerStuck     = errors.New("mesh: peer acknowledged nothing for Timeout with a full buffer")
	ErrLate          = errors.New("mesh: event arrived after ReorderTimeout had declared it lost; dropped to keep its origin's order")
)

// MaxNameLen is the longest event name accepted.
const MaxNameLen = 1024

// Node is one member of the event bus. All methods are safe for concurrent
// use. Handlers run on one dispatcher goroutine per node, in delivery order;
// a handler must not call Close (call it from another goroutine).
type Node struct {
	cfg  Config
	id   string
	boot uint64
	log  hclog.Logger
	rcfg relay.Config
	h    linkHandler

	emitMu   sync.Mutex
	seq      uint64      // next seq to stamp; guarded by emitMu
	payloads payloadSlab // own events' payloads; guarded by emitMu
	clock    monoClock   // Emit's reading of the time, for the router
	// selfPath is the Path of this node's own events, shared by all of
	// them: read-only, and its capacity of 1 makes any append copy.
	selfPath []string

	mu      sync.Mutex
	closed  atomic.Bool // set under mu (with what Close tears down), read without it: Emit asks per event
	peers   map[*relay.Link]*Peer
	inbound map[string]*Peer // remote NodeID → accepted link, so a reconnect resumes its buffer
	members map[string]*Peer // remote NodeID → link dialled because membership found it
	ln      net.Listener
	pending map[net.Conn]struct{} // accepted connections still handshaking
	// linkSnap is the links of peers, rebuilt under mu whenever peers
	// changes: the router reads it per released batch without a lock or an
	// allocation. Readers must not modify the slice.
	linkSnap atomic.Pointer[[]*relay.Link]

	routeMu  sync.Mutex
	order    *dedup.Orderer[*inbound]
	ready    []*inbound // reused by the router; guarded by routeMu
	strs     interner   // origins, names and path ids seen; guarded by routeMu
	lateSeen uint64     // the orderer's Late count already reported; guarded by routeMu
	inbounds []inbound  // the chunk arrivals are parsed into; guarded by routeMu
	spare    []*inbound // released inbounds to parse into again; guarded by routeMu
	routeNow time.Time  // the router's latest clock reading; guarded by routeMu
	received uint64     // events parsed in the batch being received, for stats.received; guarded by routeMu
	tree     *tree      // guarded by routeMu

	handlers *handlerTable
	disp     *dispatcher // events, to On handlers
	pdisp    *dispatcher // peer events, to OnPeer handlers
	stats    stats

	mem *membership.Membership

	kick      chan struct{}
	treeKick  chan struct{}
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New builds a node from cfg. It starts no listener; see Listen, Connect and Join.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if cfg.NodeID == "" {
		cfg.NodeID = uuid.NewString()
	}
	if cfg.Transport == nil {
		cfg.Transport = TCP()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "verbose", Level: hclog.Info})
	}
	n := &Node{
		cfg:      cfg,
		id:       cfg.NodeID,
		boot:     newBoot(),
		log:      cfg.Logger.With("node", cfg.NodeID),
		peers:    make(map[*relay.Link]*Peer),
		inbound:  make(map[string]*Peer),
		members:  make(map[string]*Peer),
		pending:  make(map[net.Conn]struct{}),
		handlers: newHandlerTable(),
		kick:     make(chan struct{}, 1),
		treeKick: make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	n.seq = n.boot
	n.clock = newMonoClock()
	n.selfPath = []string{n.id}
	n.h = linkHandler{n}
	n.rcfg = relay.Config{
		NodeID:        n.id,
		Channel:       cfg.Channel,
		Boot:          n.boot,
		Timeout:       cfg.Timeout,
		BufferTimeout: cfg.BufferTimeout,
		BufferMax:     cfg.BufferMax,
		AckInterval:   cfg.AcknowledgeInterval,
		MaxFrameSize:  cfg.MaxFrameSize,
		Transport:     cfg.Transport,
		Logger:        n.log,
	}
	if err := n.rcfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	n.order = dedup.New[*inbound](dedup.Config{
		Window:   max(4096, 4*cfg.BufferMax),
		Grace:    cfg.ReorderTimeout,
		DropLate: true, // order holds without exception; a late copy is a reported drop
		// An idle origin is forgotten only once no copy of its events can
		// still be in flight (buffers keep them BufferTimeout per hop) nor
		// held behind a gap (ReorderTimeout): forgetting sooner would let a
		// late copy through as new.
		IdleTimeout: 4 * max(cfg.BufferTimeout, cfg.ReorderTimeout),
	})
	n.tree = newTree(n, cfg.Flood, 4*cfg.BufferMax)
	n.disp, n.pdisp = newDispatchers(cfg.HandlerQueue, n.handlers, n.log)
	if cfg.GossipAddr != "" || cfg.GossipTransport != nil {
		if err := n.startMembership(); err != nil {
			n.disp.close()
			n.pdisp.close()
			return nil, err
		}
	}
	n.wg.Add(2)
	go n.tickLoop()
	go n.treeLoop()
	return n, nil
}

// newBoot stamps a process incarnation from the clock: an origin's seqs
// start at its boot, so a restarted node's events are above its old ones.
func newBoot() uint64 {
	b := uint64(time.Now().UnixNano())
	if r := relay.NewBoot() & 0xffff; b > r {
		b -= r // two nodes booting in the same nanosecond still differ
	}
	return b
}

// ID returns this node's id.
func (n *Node) ID() string { return n.id }

// Listen starts the relay listener on addr; Addr reports the bound address.
func (n *Node) Listen(addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%w: listen %q: %v", ErrBadAddress, addr, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed() {
		return ErrClosed
	}
	if n.ln != nil {
		return ErrListening
	}
	ln, err := n.cfg.Transport.Listen(addr)
	if err != nil {
		return fmt.Errorf("mesh: listen %s: %w", addr, err)
	}
	n.ln = ln
	n.wg.Add(1)
	go n.acceptLoop(ln)
	n.log.Info("listening", "addr", ln.Addr().String())
	n.pdisp.peerEvent(PeerEvent{Kind: Listening, Addr: ln.Addr().String()})
	if n.mem != nil {
		n.advertiseRelay(ln.Addr().String())
	}
	return nil
}

// Addr returns the relay listener's address, or nil before Listen.
func (n *Node) Addr() net.Addr {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ln == nil {
		return nil
	}
	return n.ln.Addr()
}

// Connect links this node to the node listening at addr. It returns at
// once; the link dials, handshakes and redials with back-off until the Peer
// or the Node is closed.
func (n *Node) Connect(addr string) (*Peer, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("%w: connect %q: %v", ErrBadAddress, addr, err)
	}
	return n.dial(addr, "")
}

func (n *Node) dial(addr, member string) (*Peer, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.isClosed() {
		return nil, ErrClosed
	}
	if len(n.peers) >= n.cfg.MaxPeers {
		return nil, fmt.Errorf("%w: connect %s: MaxPeers is %d", ErrMaxPeers, addr, n.cfg.MaxPeers)
	}
	link, err := relay.Dial(n.rcfg, addr, n.h)
	if err != nil {
		return nil, fmt.Errorf("mesh: connect %s: %w", addr, err)
	}
	p := &Peer{node: n, link: link}
	n.peers[link] = p
	n.peersChangedLocked()
	if member != "" {
		n.members[member] = p
	}
	return p, nil
}

// Peers returns the current relay links.
func (n *Node) Peers() []*Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Peer, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, p)
	}
	return out
}

// links returns the current links: a shared snapshot, not to be modified.
func (n *Node) links() []*relay.Link {
	if p := n.linkSnap.Load(); p != nil {
		return *p
	}
	return nil
}

// peersChangedLocked rebuilds the links snapshot; called with mu held after
// every change to peers.
func (n *Node) peersChangedLocked() {
	out := make([]*relay.Link, 0, len(n.peers))
	for l := range n.peers {
		out = append(out, l)
	}
	n.linkSnap.Store(&out)
}

func (n *Node) peerOf(l *relay.Link) *Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers[l]
}

func (n *Node) removePeer(p *Peer) {
	n.routeMu.Lock()
	n.tree.forgetLink(p.link)
	n.routeMu.Unlock()
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.peers, p.link)
	n.peersChangedLocked()
	for id, q := range n.inbound {
		if q == p {
			delete(n.inbound, id)
		}
	}
	for id, q := range n.members {
		if q == p {
			delete(n.members, id)
		}
	}
}

// Emit sends an event to every other node; this node's own handlers never
// see it. It returns once the event is in every link's buffer. It may wait
// while a connected peer's buffer is full, never longer than Timeout (that
// peer is then dropped and redialled).
func (n *Node) Emit(name string, args ...any) error {
	return n.EmitContext(context.Background(), name, args...)
}

// EmitContext is Emit with a context: if ctx ends while Emit waits for
// buffer space, it returns ctx.Err() and emits nothing.
func (n *Node) EmitContext(ctx context.Context, name string, args ...any) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: name must be 1 to %d bytes, got %d", ErrBadEvent, MaxNameLen, len(name))
	}
	if args == nil {
		args = []any{}
	}
	raw, release, err := encodeArgs(args)
	defer release()
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadEvent, name, err)
	}
	n.emitMu.Lock()
	defer n.emitMu.Unlock()
	if n.isClosed() {
		return ErrClosed
	}
	links := n.links()
	if err := n.waitSpace(ctx, links); err != nil {
		return err
	}
	env := &envelope{Kind: kindEvent, Origin: n.id, Boot: n.boot, Seq: n.seq, Name: name, Path: n.selfPath, Args: raw}
	payload := n.payloads.envelope(env)
	if len(payload)+64 > n.cfg.MaxFrameSize {
		return fmt.Errorf("%w: %q: %d bytes encoded, MaxFrameSize is %d", ErrBadEvent, name, len(payload), n.cfg.MaxFrameSize)
	}
	n.seq++
	// Under routeMu, so that a GRAFT for our own events sees each one either
	// stored or not yet sent, never half-way.
	n.routeMu.Lock()
	due := n.tree.emit(env, payload, links, n.clock.now())
	n.routeMu.Unlock()
	if due {
		n.kickTree()
	}
	n.stats.emitted.Add(1)
	return nil
}

// waitSpace is Emit's back-pressure: it waits while a connected peer's
// buffer is full, at most Timeout per peer; a peer stuck that long is dropped.
//
// The check per link is two atomic loads (relay keeps Buffered lock-free
// for this); only a full buffer takes the link's lock, in WaitSpace.
func (n *Node) waitSpace(ctx context.Context, links []*relay.Link) error {
	waited := false
	for _, l := range links {
		if l.State() != relay.Connected || l.Buffered() < n.cfg.BufferMax {
			continue
		}
		waited = true
		wctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		err := l.WaitSpace(wctx)
		cancel()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Warn("dropping a stuck peer", "peer", l.RemoteID(), "addr", l.Addr(), "buffered", l.Buffered())
		l.Drop(ErrPeerStuck)
	}
	// EmitContext checked before the wait; Close may have come during it.
	if waited && n.isClosed() {
		return ErrClosed
	}
	return nil
}

func (n *Node) isClosed() bool { return n.closed.Load() }

// On registers fn for every remote event named name ("*" for all). It
// returns a function that removes the registration.
func (n *Node) On(name string, fn func(Event)) (off func()) {
	return n.handlers.on(name, fn)
}

// OnRaw is On for handlers that read the args themselves, with Event.Scan
// or Event.RawArgs: fn's Event has Args nil, always. Raw handlers run on the
// same dispatcher with the same guarantees, ordered with the On handlers as
// On handlers are among themselves (named ones, then "*" ones, each in
// registration order). An event that reaches only raw handlers is never
// decoded into []any, and its args are lent to the handlers: the Event
// (its RawArgs' bytes, what Scan reads) is valid until fn returns, and
// the node reuses the bytes after that, which saves a copy's allocation on
// a hot path. A handler that keeps the event keeps e.Clone(); what Scan
// decoded is the handler's.
func (n *Node) OnRaw(name string, fn func(Event)) (off func()) {
	return n.handlers.onRaw(name, fn)
}

// OnPeer registers fn for link lifecycle events.
func (n *Node) OnPeer(fn func(PeerEvent)) (off func()) {
	return n.handlers.onPeer(fn)
}

// Close leaves the cluster, closes every link and the listener, and waits
// for the node's goroutines. It is idempotent.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.closed.Store(true)
		ln := n.ln
		peers := make([]*Peer, 0, len(n.peers))
		for _, p := range n.peers {
			peers = append(peers, p)
		}
		for c := range n.pending {
			c.Close()
		}
		n.mu.Unlock()

		var errs []error
		if n.mem != nil {
			errs = append(errs, n.stopMembership())
		}
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		for _, p := range peers {
			p.link.Close()
		}
		close(n.stop)
		n.wg.Wait()
		n.disp.close()
		n.pdisp.close()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
