package hyparview

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Errors of the Machine's inputs.
var (
	// ErrNotLinked: a message came from a peer the machine holds no up link
	// to (the caller reported no LinkUp, or delivered it after a Disconnect).
	ErrNotLinked = errors.New("hyparview: message from a peer without a link")
	// ErrBusy: Join found as many requests pending as the active view holds.
	ErrBusy = errors.New("hyparview: too many pending requests")
)

// Machine is one node's HyParView overlay as a pure state machine: the
// caller feeds it inputs and carries out the outputs it drains. It starts
// no goroutine, reads no clock and does no IO. Not safe for concurrent use.
type Machine struct {
	id       string
	cfg      Config
	capacity int
	rng      *rand.Rand
	now      time.Time // the latest Tick's (or New's) time

	active  view
	passive view
	pending []request // JOIN and NEIGHBOR requests awaiting their reply
	links   []*link   // every link the machine holds, up or being opened

	nextShuffle time.Time
	shuffled    []string // our last SHUFFLE's sample while its reply is awaited

	fillBackoff time.Duration // wait after a rejected low-priority request
	fillAt      time.Time     // no low-priority request before this

	succ, pred string    // the ring's neighbours (Ring), "" if none
	ringAt     time.Time // no request to the successor before this

	out []Output
}

// New returns the machine of node id, with an empty overlay. Zero fields of
// cfg take their defaults. rng is the machine's only source of randomness
// (seed it for reproducible runs); now starts its clock.
func New(id string, cfg Config, rng *rand.Rand, now time.Time) (*Machine, error) {
	if err := checkID(id); err != nil {
		return nil, fmt.Errorf("hyparview: node id: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rng == nil {
		return nil, errors.New("hyparview: nil random source")
	}
	cfg = cfg.withDefaults()
	m := &Machine{id: id, cfg: cfg, capacity: cfg.capacity(), rng: rng, now: now}
	// A random first shuffle spreads the nodes' shuffles over the period.
	m.nextShuffle = now.Add(time.Duration(rng.Int64N(int64(cfg.ShuffleInterval))) + 1)
	return m, nil
}

// Active returns a copy of the active view: the peers this node keeps a
// broadcast link with.
func (m *Machine) Active() []string { return m.active.copy() }

// Passive returns a copy of the passive view.
func (m *Machine) Passive() []string { return m.passive.copy() }

// Sizes returns how many peers the active and passive views hold.
func (m *Machine) Sizes() (active, passive int) { return m.active.len(), m.passive.len() }

// Wants reports whether the machine needs a link to peer: peer is in the
// active view, or a request to it is pending.
func (m *Machine) Wants(peer string) bool { return m.needed(peer) }

// Ready reports whether the outbox holds outputs to drain.
func (m *Machine) Ready() bool { return len(m.out) > 0 }

// Drain returns the outputs in the order they must be carried out and empties
// the outbox. The caller owns the returned slice.
func (m *Machine) Drain() []Output {
	out := m.out
	m.out = nil
	return out
}

func (m *Machine) emit(o Output) { m.out = append(m.out, o) }

// valid reports whether id can be a peer: a well-formed id other than ours.
func (m *Machine) valid(id string) bool { return id != m.id && checkID(id) == nil }

// Join asks contact to take this node into the overlay: it sends a JOIN
// (opening a link first) and adds contact to the active view when the reply
// comes. A failed join leaves the repair of Tick to connect the node through
// its passive view (see Candidates).
func (m *Machine) Join(contact string) error {
	if !m.valid(contact) {
		return fmt.Errorf("hyparview: join: bad contact %q", contact)
	}
	if m.isPending(contact) {
		return nil
	}
	if len(m.pending) >= m.capacity {
		return fmt.Errorf("hyparview: join %s: %w", contact, ErrBusy)
	}
	if !m.active.has(contact) {
		m.pending = append(m.pending, request{peer: contact, high: true, deadline: m.now.Add(m.cfg.NeighborTimeout)})
	}
	m.send(contact, Message{Kind: KindJoin})
	return nil
}

// Receive handles msg, which came from the peer from over its link. A
// message that is malformed (ErrBadMessage) or from a peer without an up link
// (ErrNotLinked) is refused and changes nothing. A forwarded SHUFFLE's Send
// shares msg.Sample: do not modify it after the call.
func (m *Machine) Receive(from string, msg Message) error {
	if !m.valid(from) {
		return fmt.Errorf("%w: %s from %q", ErrBadMessage, msg.Kind, from)
	}
	if err := msg.Validate(); err != nil {
		return err
	}
	if msg.Kind == KindForwardJoin && msg.Node == from {
		// The contact starts the walks of another node; the joining node
		// never forwards its own.
		return fmt.Errorf("%w: %s: walk of %q forwarded by itself", ErrBadMessage, msg.Kind, from)
	}
	l := m.linkOf(from)
	if l == nil || !l.up {
		return fmt.Errorf("%w: %s from %q", ErrNotLinked, msg.Kind, from)
	}
	l.expires = m.now.Add(m.cfg.NeighborTimeout)
	switch msg.Kind {
	case KindJoin:
		m.onJoin(from)
	case KindForwardJoin:
		m.onForwardJoin(from, msg.Node, int(msg.TTL))
	case KindNeighbor:
		m.onNeighbor(from, msg.High)
	case KindNeighborReply:
		m.onNeighborReply(from, msg.Accept)
	case KindDisconnect:
		m.onDisconnect(from, msg.Alive)
	case KindShuffle:
		m.onShuffle(from, msg.Node, int(msg.TTL), msg.Sample)
	case KindShuffleReply:
		m.onShuffleReply(msg.Sample)
	}
	m.releaseIfIdle(from)
	return nil
}

// LinkUp reports that the link to peer is established: one this machine
// asked for by Connect, or one the peer opened. Messages queued for peer go
// out; a link the peer opened waits for its first message.
func (m *Machine) LinkUp(peer string) {
	if !m.valid(peer) {
		return
	}
	l := m.linkOf(peer)
	if l == nil {
		m.links = append(m.links, &link{peer: peer, up: true, expires: m.now.Add(m.cfg.NeighborTimeout)})
		return
	}
	if l.up {
		return
	}
	l.up = true
	for _, msg := range l.queue {
		m.emit(Send{To: peer, Msg: msg})
	}
	l.queue = nil
	m.releaseIfIdle(peer)
}

// LinkDown reports that the link to peer is lost for good, or could not be
// opened. An active peer so lost, or a peer that failed to answer a request,
// is taken for failed: it leaves both views and the active view is repaired.
func (m *Machine) LinkDown(peer string) {
	if m.dropLink(peer) == nil {
		return
	}
	failed := m.clearPending(peer)
	if m.dropActive(peer) {
		failed = true
		m.resetBackoff()
	}
	if failed {
		m.passive.remove(peer)
	}
	m.repair()
}

// Candidates hands the machine nodes that membership knows to be alive. They
// fill free room in the passive view (in random order), and an active view
// below its target asks them at once, so that a node with an empty passive
// view bootstraps and repairs from membership alone.
func (m *Machine) Candidates(ids []string) {
	if m.passive.len() < m.cfg.PassiveSize {
		for _, i := range m.rng.Perm(len(ids)) {
			if id := ids[i]; m.valid(id) && !m.active.has(id) {
				m.passive.add(id)
			}
			if m.passive.len() >= m.cfg.PassiveSize {
				break
			}
		}
	}
	m.repair()
}

// Forget reports that membership declared id dead or gone: it leaves both
// views, any request to it is dropped and its link closed.
func (m *Machine) Forget(id string) {
	if !m.valid(id) {
		return
	}
	m.passive.remove(id)
	m.clearPending(id)
	if m.dropActive(id) {
		m.resetBackoff()
	}
	if m.linkOf(id) != nil {
		m.closeLink(id)
	}
	m.repair()
}

// Tick advances the machine's clock to now (a time before the current one is
// taken as the current one): requests without a reply for NeighborTimeout
// fail, links nothing needs are closed, a SHUFFLE is sent every
// ShuffleInterval, and an active view below its target is refilled.
func (m *Machine) Tick(now time.Time) {
	if now.After(m.now) {
		m.now = now
	}
	m.expirePending()
	m.expireLinks()
	if !m.now.Before(m.nextShuffle) {
		m.nextShuffle = m.now.Add(m.cfg.ShuffleInterval)
		m.shuffle()
	}
	m.repair()
}

// Leave tells every active peer that this node is going away for good (a
// DISCONNECT that asks to be dropped from their passive views too), then
// closes every link and empties both views. Feed the machine nothing more.
func (m *Machine) Leave() {
	for _, peer := range m.active.copy() {
		m.dropActive(peer)
		m.send(peer, Message{Kind: KindDisconnect})
	}
	m.pending = nil
	for len(m.links) > 0 {
		m.closeLink(m.links[0].peer)
	}
	m.passive = view{}
	m.shuffled = nil
}
