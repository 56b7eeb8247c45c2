package mesh

import (
	"fmt"
	"net"
	"time"

	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/relay"
)

// Member is one node of the cluster as memberlist sees it.
type Member struct {
	Name      string // the member's NodeID
	Addr      string // its gossip host:port
	RelayAddr string // where it accepts relay links ("" if it does not listen)
	State     string // "alive", "suspect", "dead" or "left"
}

func (n *Node) startMembership() error {
	mem, err := membership.New(membership.Config{
		NodeID:        n.id,
		Channel:       n.cfg.Channel,
		BindAddr:      n.cfg.GossipAddr,
		AdvertiseAddr: n.cfg.AdvertiseAddr,
		Key:           n.cfg.GossipKey,
		Meta:          membership.Meta{Channel: n.cfg.Channel, Version: relay.Version, ActiveView: n.cfg.ActiveView},
		Logger:        n.log,
		Events:        n.memberEvent,
		MetricSink:    n.cfg.MetricSink,
		GlobalMetrics: n.cfg.GlobalMetrics,
		Transport:     n.cfg.options().GossipTransport,
		ProbeFast:     n.cfg.options().FastGossip,
		Messages:      n.viewMessage,
	})
	if err != nil {
		return fmt.Errorf("mesh: membership: %w", err)
	}
	n.mem = mem
	return nil
}

// leave announces this node's departure: the others see it "left" and
// release their links to it at once.
func (n *Node) leave() {
	if err := n.mem.Leave(min(n.cfg.Timeout, 3*time.Second)); err != nil {
		n.log.Warn("leaving the cluster", "error", err)
	}
}

func (n *Node) shutdownMembership() error {
	if err := n.mem.Shutdown(); err != nil {
		return fmt.Errorf("mesh: membership shutdown: %w", err)
	}
	return nil
}

// advertiseRelay tells the cluster where our relay listener is. A wildcard
// bind address is replaced by the gossip address's host.
func (n *Node) advertiseRelay(addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ghost, _, err := net.SplitHostPort(n.mem.Local().Addr); err == nil {
			host = ghost
		}
	}
	meta := membership.Meta{RelayAddr: net.JoinHostPort(host, port), Channel: n.cfg.Channel, Version: relay.Version, ActiveView: n.cfg.ActiveView}
	if err := n.mem.SetMeta(meta); err != nil {
		n.log.Warn("cannot advertise the relay address", "error", err)
	}
}

// Join joins the cluster through the given seeds' gossip addresses and
// returns how many answered. Members of this node's channel are then
// linked automatically: the member with the lower NodeID dials. A member
// that dies keeps its links and buffer for BufferTimeout and is redialled
// at once when it is seen alive again; a member that leaves (Close) is
// released at once: its links closed, its buffer freed (Stats.Released,
// an Expired PeerEvent with ErrPeerLeft). Links made by Connect are not
// membership's: they redial until closed.
//
// Whether a node is ready (joined, and linked to the members it should
// be) reads from Members and Peers: every other alive member with a
// RelayAddr has a Connected Peer of its Name, up to MaxPeers.
func (n *Node) Join(seeds ...string) (int, error) {
	if n.mem == nil {
		return 0, ErrNoMembership
	}
	if n.isClosed() {
		return 0, ErrClosed
	}
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: join: no seed given", ErrBadAddress)
	}
	for _, s := range seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return 0, fmt.Errorf("%w: join %q: %v", ErrBadAddress, s, err)
		}
	}
	return n.mem.Join(seeds...)
}

// ActiveView returns the members of this node's partial view that it
// keeps relay links with (Config.ActiveView), sorted; nil without one, and
// empty, not nil, while a view has no neighbour yet.
func (n *Node) ActiveView() []string {
	if n.ov == nil {
		return nil
	}
	if v := n.ov.activeView(); v != nil {
		return v
	}
	return []string{}
}

// Members returns memberlist's view of the cluster, this node included.
// Without GossipAddr it returns nil.
func (n *Node) Members() []Member {
	if n.mem == nil {
		return nil
	}
	ms := n.mem.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{Name: m.Name, Addr: m.Addr, RelayAddr: m.RelayAddr, State: m.State})
	}
	return out
}

// GossipAddr returns the bound gossip host:port, "" without membership.
func (n *Node) GossipAddr() string {
	if n.mem == nil {
		return ""
	}
	return n.mem.Addr()
}

// memberEvent links members of our channel as they appear: one link per
// pair, dialled by the lower NodeID. A member that dies keeps its links
// (disconnected, redialling, buffering) until BufferTimeout expires them; one
// that comes back alive under the same NodeID is the same peer: its link is
// redialled at once (at its new address if it moved), back-off reset. A
// member that leaves gracefully is released at once (releaseLeft).
func (n *Node) memberEvent(ev membership.Event) {
	m := ev.Member
	if err := n.checkMember(m, ev.Kind); err != nil {
		n.unlinkForeign(m.Name, err)
		return
	}
	if !n.ours(m) {
		return
	}
	if ev.Kind == membership.MemberMoved {
		n.followMoved(m)
		return
	}
	if ev.Kind == membership.MemberLeave && m.State == membership.StateLeft {
		n.releaseLeft(m.Name)
	}
	if n.ov != nil {
		n.ov.memberEvent(ev) // the view decides which members to link
		return
	}
	if ev.Kind == membership.MemberLeave {
		return
	}
	if m.RelayAddr == "" || n.id > m.Name {
		return
	}
	n.mu.Lock()
	p := n.members[m.Name]
	n.mu.Unlock()
	if p != nil {
		p.link.Redial(m.RelayAddr)
		return
	}
	if _, err := n.dial(m.RelayAddr, m.Name); err != nil {
		n.log.Warn("cannot link a member", "member", m.Name, "addr", m.RelayAddr, "error", err)
	}
}

// viewMessage takes a partial-view message from membership.
func (n *Node) viewMessage(msg []byte) {
	if n.ov != nil {
		n.ov.deliver(msg)
	}
}

// left is a member that left gracefully: the boot id of the incarnation
// that left, so that its last redials are refused while a restart (a new
// boot) is welcome, and when it left, so that the record is dropped in time.
type left struct {
	boot uint64
	at   time.Time
}

// releaseLeft unlinks a member that left the cluster: its member link and
// its accepted link are closed and their buffers freed at once (it will not
// come back for them: a restart under the same NodeID is linked anew), each
// counted in Stats.Released, logged and reported as an Expired PeerEvent
// with ErrPeerLeft. Links made by Connect keep their contract: they redial
// until closed.
func (n *Node) releaseLeft(id string) {
	now := time.Now()
	n.mu.Lock()
	if n.isClosed() {
		n.mu.Unlock()
		return
	}
	gone := n.memberPeersLocked(id)
	rec := left{at: now}
	for _, p := range gone {
		if b := p.link.RemoteBoot(); b != 0 {
			rec.boot = b
		}
	}
	for k, l := range n.left {
		if now.Sub(l.at) > n.cfg.BufferTimeout {
			delete(n.left, k)
		}
	}
	n.left[id] = rec
	n.mu.Unlock()
	for _, p := range gone {
		addr := p.Addr()
		freed := n.release(p)
		n.log.Info("member left the cluster: link released", "peer", id, "addr", addr, "freed", freed)
		n.pdisp.peerEvent(PeerEvent{Kind: Expired, Peer: p, PeerID: id, Addr: addr, Err: ErrPeerLeft, Dropped: freed})
	}
}

// ours reports whether m is another member of this node's channel that
// speaks its protocol version and agrees on keeping a partial view: one it
// may link.
func (n *Node) ours(m membership.Member) bool {
	return m.Name != n.id && m.Channel == n.cfg.Channel && m.Version == relay.Version && n.sameView(m)
}

// sameView reports whether m keeps a partial view exactly when this node
// does (their sizes may differ). A member that does not say, a build
// before Meta.ActiveView, is taken to agree.
func (n *Node) sameView(m membership.Member) bool {
	return m.ActiveView < 0 || (m.ActiveView > 0) == (n.cfg.ActiveView > 0)
}

// checkMember reports, once per member and difference, a member of this
// node's channel that it can never link: one that speaks another relay
// protocol version (a cluster half upgraded: the handshake would refuse
// it), or one that differs on keeping a partial view (a node that links
// every member waits for the lower NodeID to dial it, which a partial
// view does only for its neighbours, and is refused when it dials one).
// Each is an error log line and a Rejected PeerEvent (ErrVersionMismatch,
// ErrViewMismatch): unsaid, each side would miss the other's events and
// nobody would know why. It returns the difference, nil if none.
func (n *Node) checkMember(m membership.Member, kind membership.EventKind) error {
	if m.Name == n.id || m.Channel != n.cfg.Channel {
		return nil
	}
	var err error
	var advice string
	var theirs, ours int
	switch {
	case m.Version != relay.Version:
		err = ErrVersionMismatch
		advice, theirs, ours = "it speaks another protocol version; run one version in a cluster", m.Version, relay.Version
	case !n.sameView(m):
		err = ErrViewMismatch
		advice, theirs, ours = "give every node the same ActiveView (meshnode --active-view)", m.ActiveView, n.cfg.ActiveView
	}
	if err != nil {
		err = fmt.Errorf("%w: %s has %d, this node %d", err, m.Name, theirs, ours)
	}
	n.mu.Lock()
	if kind == membership.MemberLeave || err == nil {
		delete(n.mismatched, m.Name)
		n.mu.Unlock()
		return nil
	}
	was, reported := n.mismatched[m.Name]
	n.mismatched[m.Name] = err.Error()
	n.mu.Unlock()
	if !reported || was != err.Error() {
		n.log.Error("member cannot be linked: "+advice, "member", m.Name, "error", err)
		n.pdisp.peerEvent(PeerEvent{Kind: Rejected, PeerID: m.Name, Addr: m.RelayAddr, Err: err})
	}
	return err
}

// unlinkForeign closes for good the links of a member that this node can
// no longer link (checkMember said why): a neighbour that restarted with
// another ActiveView under the same NodeID would otherwise be redialled by
// its old link, accepted by a node that links every member, and kept as a
// neighbour while the rest of the view cannot reach it. What the links
// held for it will never reach it: counted in Stats.Expired and reported
// with the reason, an Expired PeerEvent whose Dropped counts it and a
// warning. A partial view forgets the member and repairs around it.
func (n *Node) unlinkForeign(id string, why error) {
	n.mu.Lock()
	gone := n.memberPeersLocked(id)
	n.mu.Unlock()
	for _, p := range gone {
		addr := p.Addr()
		if dropped := n.expire(p, id, n.removePeer(p), why); dropped > 0 {
			n.log.Warn("link closed: the member cannot be linked; what it held is dropped", "peer", id, "addr", addr, "dropped", dropped, "error", why)
		} else {
			n.log.Info("link closed: the member cannot be linked", "peer", id, "addr", addr, "error", why)
		}
	}
	if n.ov != nil {
		n.ov.forget(id)
	}
}

// memberPeersLocked returns member id's links: the one this node dialled
// and the one it accepted (once if they are the same). Called with mu held.
func (n *Node) memberPeersLocked(id string) []*Peer {
	var out []*Peer
	for _, p := range []*Peer{n.members[id], n.inbound[id]} {
		if p != nil && (len(out) == 0 || out[0] != p) {
			out = append(out, p)
		}
	}
	return out
}

// release closes p for good and frees what it held (its buffer, and what
// flow control held for it) into Stats.Released, returning how much: the
// peer left, so these are not losses.
func (n *Node) release(p *Peer) (freed int) {
	held := n.removePeer(p)
	p.link.Close()
	freed = p.link.Buffered() + held
	n.stats.released.Add(uint64(freed))
	return freed
}
