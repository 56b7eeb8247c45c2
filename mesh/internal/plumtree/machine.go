package plumtree

import (
	"time"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// Timing of the tree. The grace must stay well under the orderer's
// ReorderTimeout so that a graft repairs a broken path before the orderer
// gives up on the gap.
const (
	RoundInterval = 5 * time.Millisecond   // lazy notices are batched this long
	graftGrace    = 3 * RoundInterval      // a noticed event missing this long is grafted
	graftRetry    = 50 * RoundInterval     // a graft unanswered this long goes to the next announcer
	pruneRetry    = 20 * RoundInterval     // a peer still eager after a PRUNE is pruned again
	pathPatience  = 50 * RoundInterval     // a watermark stopped this long on a path whose links are up is grafted
	maxWaits      = 64                     // notices remembered per missing (origin, boot)
	minAsks       = 4                      // grafts without progress before a missing range is given up
	sweepInterval = 500 * time.Millisecond // idle origins are forgotten this often
)

// PeerID names a peer (one of the caller's links). AddPeer hands them out
// and reuses them after RemovePeer.
type PeerID int32

// NoPeer is no peer at all.
const NoPeer PeerID = -1

// Watermarks is what the caller's orderer says of (origin, boot): every seq
// below next was released (or declared lost) there; ok is false for a boot
// it would refuse.
type Watermarks interface {
	Next(origin string, boot uint64) (next uint64, ok bool)
	// Holding reports whether events of (origin, boot) wait behind a gap at
	// next: something on the way was lost, and the wait for it is bounded.
	Holding(origin string, boot uint64) bool
}

// Config configures a Machine.
type Config struct {
	Self     string // this node's id
	SelfBoot uint64 // this node's boot: its first event's seq
	// Flood keeps every peer eager: no notice, no PRUNE sent, PRUNEs
	// ignored; IHAVE and GRAFT are still answered.
	Flood bool
	// GiveUp bounds how long a missing (origin, boot) is grafted: as long
	// as the orderer waits for a gap, and long enough for a second graft.
	GiveUp time.Duration
	// IdleTimeout forgets an origin with no event for this long.
	IdleTimeout time.Duration
	// Reach is how far past its watermark the caller's orderer holds an
	// event (its window): a node that falls half of it behind a notice
	// grafts, whether its path moves or not, before a new link's live
	// events land beyond it. 0: no such bound.
	Reach    uint64
	Released Watermarks
}

// Ready is what the caller must carry out, in order, before its next
// input: Sends first, then Resends.
type Ready struct {
	Sends   []Send
	Resends []Resend
	// Known are the (peer, origin) pairs newly known not to need this
	// node's copies of the origin's events: the peer has them from
	// another path (see Tentative).
	Known []Known
	// Abandoned are events that neighbours announced and that nothing
	// brings: grafted for GiveUp twice without the watermark moving, the
	// second time stalled, while the provider's link was up. The caller
	// declares them lost (and reports them), so that delivery goes on.
	Abandoned []Abandoned
}

// Abandoned says that (Origin, Boot)'s events below Upto cannot come.
type Abandoned struct {
	Origin string
	Boot   uint64
	Upto   uint64
}

// Known says that Peer has Origin's events by another path.
type Known struct {
	Peer   PeerID
	Origin string
}

// Send is a message to encode and send to a peer.
type Send struct {
	To  PeerID
	Msg wire.TreeMessage
}

// Resend asks for the stored events of (Origin, Boot) from From to Upto,
// in order, on To: the answer to To's GRAFT.
type Resend struct {
	To         PeerID
	Origin     string
	Boot       uint64
	From, Upto uint64
}

// Machine is one node's broadcast tree. The zero value is not usable: New.
type Machine struct {
	cfg     Config
	ownNext uint64 // next seq of this node's own events
	peers   []peer // by PeerID
	freeIDs []PeerID
	down    int // live peers that are down
	live    int // live peers
	origins map[string]*origin
	// The origin of the previous event: consecutive events mostly share
	// it, and hashing the origin for each lookup was a large part of the
	// router's cost.
	lastName   string
	lastOrigin *origin

	notices notices
	missing map[originBoot]*missing

	out       Ready
	fwd       []PeerID // Emit's and Release's answer, reused
	tent      []PeerID // Release's tentative peers, reused
	due       bool     // work appeared since TakeDue last said so
	lastSweep time.Time
}

type originBoot struct {
	origin string
	boot   uint64
}

// peer is what the machine knows of one of the caller's links.
type peer struct {
	live       bool   // the ID is in use
	up         bool   // connected: a lazy peer gets notices; a peer that is down gets every event in full
	node       string // remote node id, "" before the first handshake
	remoteBoot uint64
	announce   bool // re-announce every lazy origin at the next round (reconnected)
	// ownUpto is this node's last event when the peer came up (0: none):
	// the announcement of its own origin names no later one (see
	// sendNotices).
	ownUpto uint64
}

// New returns a machine with no peer.
func New(cfg Config) *Machine {
	cfg.GiveUp = max(cfg.GiveUp, 2*graftRetry)
	return &Machine{
		cfg:     cfg,
		ownNext: cfg.SelfBoot,
		origins: make(map[string]*origin),
		notices: notices{dirty: make(map[originBoot]uint64)},
		missing: make(map[originBoot]*missing),
	}
}

// Ready returns the outputs of the inputs since the last call. The slices
// are reused by the next input: carry them out first.
func (m *Machine) Ready() Ready {
	r := m.out
	m.out.Sends, m.out.Resends, m.out.Known = m.out.Sends[:0], m.out.Resends[:0], m.out.Known[:0]
	m.out.Abandoned = m.out.Abandoned[:0]
	return r
}

// TakeDue reports whether work appeared (notices to send, events missing,
// a peer to re-announce to) since it last said so: the caller then makes
// sure a Round comes within RoundInterval.
func (m *Machine) TakeDue() bool {
	d := m.due
	m.due = false
	return d
}

func (m *Machine) send(to PeerID, msg wire.TreeMessage) {
	m.out.Sends = append(m.out.Sends, Send{To: to, Msg: msg})
}

// AddPeer starts tracking a new link, down until PeerUp.
func (m *Machine) AddPeer() PeerID {
	var id PeerID
	if k := len(m.freeIDs); k > 0 {
		id, m.freeIDs = m.freeIDs[k-1], m.freeIDs[:k-1]
	} else {
		id = PeerID(len(m.peers))
		m.peers = append(m.peers, peer{})
	}
	m.peers[id] = peer{live: true}
	m.down++
	m.live++
	return id
}

// PeerUp notes a completed handshake with node (boot remoteBoot) on p. A
// remote that restarted has forgotten its tree: p is eager again for every
// origin. Either way the lazy origins are re-announced on p at the next
// round, since no notice goes to a peer that is down.
func (m *Machine) PeerUp(p PeerID, node string, remoteBoot uint64) {
	pr := m.peer(p)
	if pr == nil {
		return
	}
	if pr.remoteBoot != remoteBoot {
		pr.remoteBoot = remoteBoot
		m.unmark(p)
	}
	if !pr.up {
		pr.up = true
		m.down--
	}
	pr.node = node
	pr.announce, m.due = true, true
	pr.ownUpto = 0
	if m.ownNext > m.cfg.SelfBoot {
		pr.ownUpto = m.ownNext - 1
	}
}

// PeerDown notes that p's connection is lost; it buffers what it is sent.
func (m *Machine) PeerDown(p PeerID) {
	if pr := m.peer(p); pr != nil && pr.up {
		pr.up = false
		m.down++
	}
}

// RemovePeer forgets p; its ID may be handed out again.
func (m *Machine) RemovePeer(p PeerID) {
	pr := m.peer(p)
	if pr == nil {
		return
	}
	if !pr.up {
		m.down--
	}
	m.unmark(p)
	for _, ms := range m.missing {
		ms.forget(p)
	}
	m.live--
	m.peers[p] = peer{}
	m.freeIDs = append(m.freeIDs, p)
}

func (m *Machine) peer(p PeerID) *peer {
	if p < 0 || int(p) >= len(m.peers) || !m.peers[p].live {
		return nil
	}
	return &m.peers[p]
}

// unmark drops p's marks in every origin's tree.
func (m *Machine) unmark(p PeerID) {
	for _, o := range m.origins {
		o.setDefault(p)
		if o.provider == p {
			o.provider = NoPeer
		}
	}
}

// origin returns the tree of name, made if there is none.
func (m *Machine) origin(name string, now time.Time) *origin {
	if m.lastOrigin != nil && name == m.lastName {
		m.lastOrigin.last = now
		return m.lastOrigin
	}
	o := m.origins[name]
	if o == nil {
		o = &origin{relayed: !m.cfg.Flood && name != m.cfg.Self, provider: NoPeer}
		m.origins[name] = o
	}
	m.lastName, m.lastOrigin = name, o
	o.last = now
	return o
}

func (m *Machine) forgetOrigin(name string) {
	delete(m.origins, name)
	if name == m.lastName {
		m.lastName, m.lastOrigin = "", nil
	}
}

// skip reports whether an event of o goes to peer p as a notice only: p is
// lazy for it and connected. A peer that is down gets events in full,
// whether eager or lazy, as with flooding: its retransmit buffer keeps them
// for the absent node, who gets exactly what it missed when it is back (the
// resent copies it already had are duplicates that prune it again).
// Otherwise an absent node's backlog would sit only in its parent's buffer,
// and a crash of the parent would lose it.
func (m *Machine) skip(o *origin, p PeerID) bool {
	return m.peers[p].up && o.isLazy(p)
}

// Emit decides where this node's own event seq goes: the peers it returns
// get it in full (valid until the next call), the lazy ones a notice.
func (m *Machine) Emit(seq uint64, now time.Time) []PeerID {
	o := m.origin(m.cfg.Self, now)
	m.fwd = m.fwd[:0]
	for i := range m.peers {
		p := PeerID(i)
		if m.peers[i].live && !m.skip(o, p) {
			m.fwd = append(m.fwd, p)
		}
	}
	m.ownNext = seq + 1
	m.advanced(o, m.cfg.Self, m.cfg.SelfBoot, seq)
	return m.fwd
}

// Release decides where an event the orderer released goes: in full to the
// peers it returns (valid until the next call): the eager ones and those
// down, but not from, the peer it came over, nor a peer whose node is on
// path; the lazy ones get a notice at the next round.
//
// A peer whose link has never completed a handshake gets no relayed event
// at all: it is not yet in this node's tree (as Plumtree's NeighborUp comes
// with the connection). Its node has the origin's events by its other links,
// or it is new; either way, once up it is lazy for every relayed origin, is
// announced all of them (PeerUp) and grafts what it lacks from the stores.
// Buffered for it instead, a blast filled its retransmit buffer while the
// dial was under way (a partial view's new neighbour: 4,096 events in
// 60 ms at 100 nodes), overflowed, and reported thousands of events dropped
// that its node had, or would have been resent anyway.
func (m *Machine) Release(origin string, boot, seq uint64, from PeerID, path []string, now time.Time) []PeerID {
	o := m.origin(origin, now)
	m.fwd, m.tent = m.fwd[:0], m.tent[:0]
	if !o.leaf() || m.down > 0 || o.relayed && o.eagerN+o.lazyN < m.live {
		for i := range m.peers {
			p := PeerID(i)
			// node is "" until the first handshake (a HELLO names one):
			// such a peer is not live in the tree yet.
			if m.peers[i].node == "" || p == from || onPath(path, m.peers[i].node) {
				continue
			}
			if !m.skip(o, p) {
				m.fwd = append(m.fwd, p)
			} else if o.relayed && o.modeOf(p) == unmarked {
				m.tent = append(m.tent, p)
			}
		}
	}
	m.advanced(o, origin, boot, seq)
	return m.fwd
}

// Tentative returns the peers the last Release noticed the event to
// without knowing whether they have it from another path: connected,
// unmarked for a relayed origin, neither the sender nor on the path. Such a
// peer may depend on this node (a line, or the far side of a ring), so the
// caller keeps the event for it (flow control holds it) until the peer
// grafts it or is Known to have it elsewhere: otherwise this node could run
// ahead of what its stores keep for the peer's GRAFT. Valid until the next
// call.
func (m *Machine) Tentative() []PeerID { return m.tent }

// know marks p lazy for o (it has o's events by another path) if it was
// unmarked, and reports it.
func (m *Machine) know(o *origin, name string, p PeerID) {
	if o.relayed && o.modeOf(p) == unmarked {
		o.setLazy(p, time.Time{})
		m.out.Known = append(m.out.Known, Known{Peer: p, Origin: name})
	}
}

func onPath(path []string, node string) bool {
	if node == "" {
		return false
	}
	for _, id := range path {
		if id == node {
			return true
		}
	}
	return false
}

// advanced records that o's (origin, boot) released up to seq.
func (m *Machine) advanced(o *origin, name string, boot, seq uint64) {
	switch {
	case boot > o.boot:
		o.boot, o.upto = boot, seq
	case boot == o.boot && seq > o.upto:
		o.upto = seq
	}
	if m.cfg.Flood || !o.relayed && o.lazyN == 0 {
		return // nobody to notify
	}
	if m.notices.mark(originBoot{name, boot}, seq) {
		m.due = true
	}
}

// Fresh records that a fresh event of origin came over p.
func (m *Machine) Fresh(origin string, p PeerID, now time.Time) {
	o := m.origin(origin, now)
	// A fresh event over a peer this node pruned was sent before the PRUNE
	// got there: that peer stops, so the provider stays the eager path
	// that goes on (its duplicates must not prune it, or no path is left).
	if p != o.provider { // mostly it is: nothing to look up per event
		if sent, lazy := o.prunedAt(p); !lazy || sent.IsZero() || o.provider == NoPeer {
			o.provider = p
		}
	}
	if o.relayed && o.modeOf(p) == unmarked && m.peer(p) != nil {
		m.know(o, origin, p)
	}
}

// Duplicate handles an event of origin that arrived again, over p: another
// path delivered it first, so p need not carry origin's events in full. p
// is pruned (and pruned again, at most every pruneRetry, while duplicates
// keep coming over it: the two sides' views crossed).
func (m *Machine) Duplicate(origin string, p PeerID, now time.Time) {
	if m.cfg.Flood || origin == m.cfg.Self || m.peer(p) == nil {
		return
	}
	o := m.origin(origin, now)
	m.know(o, origin, p)
	if p == o.provider {
		return
	}
	if m.peers[p].node == origin && o.provider != NoPeer {
		// The origin's own link is never pruned: one hop is the best path
		// there is, and a full mesh then settles on the origin's star,
		// where nothing is forwarded. The peer that happened to win the
		// race is pruned instead.
		p, o.provider = o.provider, p
	}
	if sent, lazy := o.prunedAt(p); lazy && now.Sub(sent) < pruneRetry {
		return
	}
	o.setLazy(p, now)
	m.send(p, wire.NewPrune(origin))
}

// Prune handles a PRUNE from p: origin's events go to p as notices only.
func (m *Machine) Prune(p PeerID, origin string, now time.Time) {
	if m.cfg.Flood || m.peer(p) == nil {
		return
	}
	o := m.origin(origin, now)
	if _, lazy := o.prunedAt(p); !lazy {
		o.setLazy(p, time.Time{})
	}
}

// Graft handles a GRAFT from p: p is eager for the origin again, and is
// resent what this node released of (origin, boot) from seq from on.
func (m *Machine) Graft(p PeerID, g *wire.Graft, now time.Time) {
	if m.peer(p) == nil {
		return
	}
	m.origin(g.Origin, now).setEager(p)
	next, ok := m.released(g.Origin, g.Boot)
	if !ok || next <= g.From {
		return
	}
	m.out.Resends = append(m.out.Resends, Resend{To: p, Origin: g.Origin, Boot: g.Boot, From: g.From, Upto: next - 1})
}

// Released is the watermark of (origin, boot): every seq below it was
// released here (or emitted, for this node's own). ok is false for a boot
// this node would refuse. A GRAFT from next on asks for nothing.
func (m *Machine) Released(origin string, boot uint64) (next uint64, ok bool) {
	return m.released(origin, boot)
}

// released is the watermark of (origin, boot): every seq below it was
// released here. ok is false for a boot this node would refuse.
func (m *Machine) released(origin string, boot uint64) (uint64, bool) {
	if origin == m.cfg.Self {
		return m.ownNext, boot == m.cfg.SelfBoot
	}
	return m.cfg.Released.Next(origin, boot)
}

// Provider is the peer the last fresh event of origin came over (its
// parent in origin's tree), NoPeer if none.
func (m *Machine) Provider(origin string) PeerID {
	if o := m.origins[origin]; o != nil {
		return o.provider
	}
	return NoPeer
}

// Counts returns the (origin, peer) pairs that are eager and lazy, over the
// origins the machine knows (this node included) and the live peers,
// leaving out a peer that is the origin itself.
func (m *Machine) Counts() (eager, lazy int) {
	for name, o := range m.origins {
		for i := range m.peers {
			switch pr := &m.peers[i]; {
			case !pr.live || pr.node == name:
			case o.isLazy(PeerID(i)):
				lazy++
			default:
				eager++
			}
		}
	}
	return eager, lazy
}
