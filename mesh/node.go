package mesh

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/mesh/internal/slab"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
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
	ErrLate          = errors.New("mesh: event arrived after ReorderTimeout had declared it lost; dropped to keep its origin's order")
	ErrGap           = errors.New("mesh: events never arrived within ReorderTimeout; declared lost")
	// ErrPeerLeft is the Err of the Expired PeerEvent that reports a link
	// released because its member left the cluster gracefully.
	ErrPeerLeft = errors.New("mesh: peer left the cluster")
	// ErrViewMismatch is the Err of the Rejected PeerEvent that reports a
	// member which keeps a partial view while this node links every member,
	// or the reverse: the two never link (Config.ActiveView).
	ErrViewMismatch = errors.New("mesh: member differs on keeping a partial view (ActiveView): the two cannot link")
	// ErrVersionMismatch is the Err of the Rejected PeerEvent that reports
	// a member of this node's channel speaking another relay protocol
	// version: the two never link.
	ErrVersionMismatch = errors.New("mesh: member speaks another protocol version: the two cannot link")
)

// MaxNameLen is the longest event name accepted.
const MaxNameLen = 1024

// Node is one member of the event bus. All methods are safe for concurrent
// use. Handlers run on one dispatcher goroutine per node, in delivery order;
// a handler must not call Close (call it from another goroutine).
//
// Locks, in the order they may be taken (never the other way round):
// emitMu, then mu, then the router's; below those, a link's, the
// dispatchers' and the loss reporter's, which are never held while another
// is taken. See doc.go.
type Node struct {
	cfg  Config
	id   string
	boot uint64
	log  hclog.Logger
	rcfg relay.Config
	h    linkHandler

	// Emit's state, guarded by emitMu: the next seq to stamp, where own
	// events' payloads are cut, and the path of every own event (shared by
	// all: read-only, and its capacity of 1 makes any append copy).
	emitMu   sync.Mutex
	seq      uint64
	payloads slab.Chunks
	selfPath []string

	// The peer table, guarded by mu.
	mu      sync.Mutex
	closed  atomic.Bool // set under mu (with what Close tears down), read without it: Emit asks per event
	peers   map[*relay.Link]*Peer
	inbound map[string]*Peer // remote NodeID → accepted link, so a reconnect resumes its buffer
	members map[string]*Peer // remote NodeID → link dialled because membership found it
	left    map[string]left  // remote NodeID → the member's incarnation that left (see releaseLeft)
	// mismatched: remote NodeID → why a member of the channel cannot be
	// linked, once reported (checkMember).
	mismatched map[string]string
	ln         net.Listener
	pending    map[net.Conn]struct{} // accepted connections still handshaking
	// unconfirmed counts the provisional accepted links: in peers, but
	// holding no slot (admission.go).
	unconfirmed int
	// open: the transport proves no NodeID (not TLS), so a newer
	// connection may replace a live link, as anyone may claim any id.
	open bool

	router   *router
	handlers *handlerTable
	disp     *dispatcher     // events, to On and OnRaw handlers
	pdisp    *peerDispatcher // peer events, to OnPeer handlers
	losses   *lossReporter
	stats    stats
	mem      *membership.Membership
	ov       *overlay // the partial view; nil when every member is linked

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
		cfg:        cfg,
		id:         cfg.NodeID,
		boot:       newBoot(),
		log:        cfg.Logger.With("node", cfg.NodeID),
		peers:      make(map[*relay.Link]*Peer),
		inbound:    make(map[string]*Peer),
		members:    make(map[string]*Peer),
		left:       make(map[string]left),
		mismatched: make(map[string]string),
		pending:    make(map[net.Conn]struct{}),
		handlers:   newHandlerTable(),
		stop:       make(chan struct{}),
	}
	if err := n.secureRelay(); err != nil {
		return nil, err
	}
	n.seq = n.boot
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
		Transport:     n.cfg.Transport,
		Logger:        n.log,
	}
	if err := n.rcfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	n.pdisp = newPeerDispatcher(n.handlers)
	n.losses = newLossReporter(n.log, n.pdisp)
	n.disp = newDispatcher(cfg.HandlerQueue, n.handlers, n.log, n.losses)
	n.router = newRouter(n)
	n.disp.taken = n.router.resumeIfHeld
	if cfg.GossipAddr != "" || cfg.options().GossipTransport != nil {
		if cfg.ActiveView > 0 {
			ov, err := newOverlay(n)
			if err != nil {
				n.closeDispatchers()
				return nil, fmt.Errorf("%w: ActiveView: %v", ErrInvalidConfig, err)
			}
			n.ov = ov
		}
		if err := n.startMembership(); err != nil {
			n.closeDispatchers()
			return nil, err
		}
		if n.ov != nil {
			n.ov.start()
		}
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		n.router.tickLoop(n.stop)
	}()
	go func() {
		defer n.wg.Done()
		n.router.treeLoop(n.stop)
	}()
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
	if n.isClosed() {
		n.mu.Unlock()
		return nil, ErrClosed
	}
	victim, held, ok := n.makeRoomLocked()
	if !ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: connect %s: MaxPeers is %d", ErrMaxPeers, addr, n.cfg.MaxPeers)
	}
	link, err := relay.Dial(n.rcfg, addr, n.h)
	if err != nil {
		n.mu.Unlock()
		if victim != nil {
			n.evicted(victim, held, addr)
		}
		return nil, fmt.Errorf("mesh: connect %s: %w", addr, err)
	}
	p := &Peer{node: n, link: link}
	n.peers[link] = p
	n.router.addLink(link, p)
	if member != "" {
		n.members[member] = p
	}
	n.mu.Unlock()
	if victim != nil {
		n.evicted(victim, held, addr)
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

func (n *Node) peerOf(l *relay.Link) *Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.peers[l]
}

// removeClosed forgets p, whose link is closed for good (Peer.Close, or an
// accepted link that expired): events flow control still held for it are
// dropped, counted and reported like an expired buffer's.
func (n *Node) removeClosed(p *Peer) {
	if held := n.removePeer(p); held > 0 {
		n.stats.expired.Add(uint64(held))
		n.losses.add(lossKey{link: p.link, err: relay.ErrClosed}, p, held)
	}
}

// removePeer forgets p. It returns how many events flow control held for
// it; removeClosed reports them, a released member counts them (members.go).
func (n *Node) removePeer(p *Peer) (held int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.detachLocked(p)
}

func (n *Node) isClosed() bool { return n.closed.Load() }

// On registers fn for every remote event named name ("*" for all but
// system events, whose names start with SystemPrefix). It returns a
// function that removes the registration.
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
//
// A graceful departure, in this order: no more Emit (ErrClosed) and no new
// links; a short wait (at most Timeout, and twice AcknowledgeInterval) for
// the peers to acknowledge what they were sent, so that this node's last
// events are delivered; then the leave, after which every member releases
// its link to this node at once; then the links close. Own events still
// unacknowledged then are counted (Stats.Expired) and reported: an Expired
// PeerEvent with ErrClosed and a log line per link (see reportUnacked).
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
		if ln != nil {
			if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		n.flush(peers, min(n.cfg.Timeout, 2*n.cfg.AcknowledgeInterval))
		if n.mem != nil {
			n.leave()
		}
		for _, p := range peers {
			p.link.Close()
			n.reportUnacked(p)
		}
		if n.mem != nil {
			errs = append(errs, n.shutdownMembership())
		}
		close(n.stop)
		n.wg.Wait()
		n.closeDispatchers()
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}

// reportUnacked tells what a closed link leaves unacknowledged. Events this
// node relayed are not lost: their origin still has them, and the peer's
// tree grafts them from another neighbour; they are logged. This node's own
// events go with it: counted in Stats.Expired (as a peer's buffer dropped
// at BufferTimeout is), logged, reported as Expired with ErrClosed. For
// that peer they are lost unless a neighbour that acknowledged them passes
// them on (the tree does, when one did): the count is what this node could
// not deliver to that peer itself, an upper bound on the loss.
func (n *Node) reportUnacked(p *Peer) {
	if p.link.Buffered() == 0 {
		return
	}
	own, relayed := 0, 0
	var env wire.Envelope
	var parser *wire.Parser // nil: a plain parse, no interning
	p.link.EachUnacked(func(b []byte) {
		if !wire.IsEvent(b) || parser.Parse(&env, nil, b) != nil {
			return // a tree message: nothing to deliver
		}
		if env.Origin == n.id {
			own++
		} else {
			relayed++
		}
	})
	if relayed > 0 {
		n.log.Info("closed with relayed events a peer had not acknowledged; it grafts them from others", "peer", p.ID(), "addr", p.Addr(), "relayed", relayed)
	}
	if own > 0 {
		n.stats.expired.Add(uint64(own))
		n.log.Warn("closed with own events a peer had not acknowledged: lost for it unless a neighbour passes them on", "peer", p.ID(), "addr", p.Addr(), "dropped", own)
		n.pdisp.peerEvent(PeerEvent{Kind: Expired, Peer: p, PeerID: p.ID(), Addr: p.Addr(), Err: ErrClosed, Dropped: own})
	}
}

// flush waits until every connected peer has acknowledged all it was sent,
// or for wait at most. A disconnected peer cannot acknowledge: it is not
// waited for.
func (n *Node) flush(peers []*Peer, wait time.Duration) {
	settled := func() bool {
		for _, p := range peers {
			if p.link.Buffered() > 0 && p.link.State() == relay.Connected {
				return false
			}
		}
		return true
	}
	if settled() {
		return
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !settled() {
		select {
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// closeDispatchers stops the handlers' goroutines and the loss reports.
func (n *Node) closeDispatchers() {
	n.disp.close()
	n.losses.close()
	n.pdisp.close()
}
