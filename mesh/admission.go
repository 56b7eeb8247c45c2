package mesh

import (
	"errors"
	"fmt"
	"time"

	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/relay"
)

// Admission: who gets one of the MaxPeers slots of the peer table.
//
// An accepted link is provisional from its dialer's HELLO until the
// dialer's first frame after our HELLO (relay's EventConfirmed; a dialer
// sends one at once): it is routed (so that a real peer misses nothing
// from its first instant) but holds no slot, and a provisional link whose
// connection ends is forgotten at once, with no buffer kept and nothing to
// redial. A client that sends a HELLO and vanishes so costs a goroutine
// for a round trip, not a slot, a 1000-event buffer and BufferTimeout of
// bookkeeping. At most maxUnconfirmed links are provisional at once.
//
// When a slot is needed at MaxPeers (a link confirmed, a dial), the
// longest-disconnected peer that is not a current member and that this
// node did not Connect to itself is released (an Expired PeerEvent with
// ErrEvicted, its buffer counted in Stats.Expired): a peer that is gone
// never locks out one that is here. Everyone else keeps the promise of
// BufferTimeout: a client that drops and comes back in time gets what it
// missed.

// maxUnconfirmed bounds the accepted links whose dialer has not completed
// the handshake yet. A real dialer completes it in a round trip.
const maxUnconfirmed = 64

// ErrEvicted is the Err of the Expired PeerEvent that reports a
// disconnected peer released to make room for another at MaxPeers.
var ErrEvicted = errors.New("mesh: disconnected peer released to make room (MaxPeers)")

// errUnconfirmed is why events routed to a provisional link whose dialer
// vanished before completing the handshake are dropped.
var errUnconfirmed = errors.New("mesh: link closed before its dialer completed the handshake")

// slotsUsedLocked is how many of the MaxPeers slots are taken.
func (n *Node) slotsUsedLocked() int { return len(n.peers) - n.unconfirmed }

// evictableLocked returns the peer to release when a slot is needed: the
// one disconnected longest among accepted links and member links whose
// remote is not a current (alive or suspect) member. Links made by Connect
// redial until closed, by contract: never released. nil if none.
func (n *Node) evictableLocked(except *Peer) *Peer {
	alive := map[string]bool{}
	if n.mem != nil {
		// memberlist never calls us under its locks (membership queues its
		// events), so asking it under n.mu cannot deadlock.
		for _, m := range n.mem.Members() {
			if m.State == membership.StateAlive || m.State == membership.StateSuspect {
				alive[m.Name] = true
			}
		}
	}
	memberOf := make(map[*Peer]string, len(n.members))
	for id, p := range n.members {
		memberOf[p] = id
	}
	var victim *Peer
	var oldest time.Time
	for _, p := range n.peers {
		if p == except || p.provisional {
			continue
		}
		id, member := memberOf[p]
		if p.link.Outbound() && !member {
			continue // Connect's
		}
		if !member {
			id = p.ID()
		}
		if alive[id] {
			continue
		}
		since := p.link.DownSince()
		if since.IsZero() {
			continue // connected
		}
		if victim == nil || since.Before(oldest) {
			victim, oldest = p, since
		}
	}
	return victim
}

// detachLocked takes p out of the peer table and the router; the caller
// closes its link (outside n.mu) and reports. It returns how many events
// flow control held for it.
func (n *Node) detachLocked(p *Peer) (held int) {
	held = n.router.removeLink(p.link)
	delete(n.peers, p.link)
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
	return held
}

// evicted closes a peer detached to make room and reports what it held.
func (n *Node) evicted(p *Peer, held int, forID string) {
	id, addr := p.ID(), p.Addr()
	dropped := n.expire(p, id, held, ErrEvicted)
	n.log.Info("released the longest-disconnected peer to make room", "peer", id, "addr", addr, "dropped", dropped, "for", forID, "max_peers", n.cfg.MaxPeers)
}

// expire closes p, already detached from the node, and reports what it
// held as never to be sent: its buffer and the events flow control held
// for it (held), counted in Stats.Expired and in the Expired PeerEvent
// about peer id that says why. The caller logs it; expire returns the
// count.
func (n *Node) expire(p *Peer, id string, held int, why error) (dropped int) {
	addr := p.Addr()
	p.link.Close()
	dropped = p.link.Buffered() + held
	n.stats.expired.Add(uint64(dropped))
	n.pdisp.peerEvent(PeerEvent{Kind: Expired, Peer: p, PeerID: id, Addr: addr, Err: why, Dropped: dropped})
	return dropped
}

// confirmInbound gives a provisional link its slot: its dialer completed
// the handshake. At MaxPeers the longest-disconnected releasable peer makes
// room; if there is none, the link is dropped (it stays provisional, so
// its disconnection forgets it) and the refusal reported.
func (n *Node) confirmInbound(p *Peer) {
	n.mu.Lock()
	if !p.provisional || n.isClosed() {
		n.mu.Unlock()
		return
	}
	var victim *Peer
	held := 0
	if n.slotsUsedLocked() >= n.cfg.MaxPeers {
		if victim = n.evictableLocked(p); victim == nil {
			n.mu.Unlock()
			err := fmt.Errorf("%w: MaxPeers is %d, every peer is connected or kept", ErrMaxPeers, n.cfg.MaxPeers)
			n.log.Warn("refused a peer", "peer", p.ID(), "addr", p.Addr(), "error", err)
			n.pdisp.peerEvent(PeerEvent{Kind: Rejected, Peer: p, PeerID: p.ID(), Addr: p.Addr(), Err: err})
			p.link.Drop(err)
			return
		}
		held = n.detachLocked(victim)
	}
	p.provisional = false
	n.unconfirmed--
	n.mu.Unlock()
	if victim != nil {
		n.evicted(victim, held, p.ID())
	}
}

// abandonInbound forgets a provisional link whose connection ended before
// its dialer completed the handshake; watchInbound closes it. It reports
// whether p was provisional.
func (n *Node) abandonInbound(p *Peer) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !p.provisional || n.isClosed() {
		return false
	}
	p.provisional = false
	n.unconfirmed--
	p.abandonHeld = n.detachLocked(p)
	close(p.abandon)
	return true
}

// closeAbandoned closes an abandoned provisional link. What was routed to
// it in its round trip is released (Stats.Released, one log line per
// link), not counted lost: its dialer never confirmed the link, and if it
// comes back its next link shows it the gap, which its tree grafts from
// this node's stores or from its other neighbours (as for the relayed
// events of a closed link, reportUnacked). A dialer that never comes back
// misses nothing it would have delivered.
func (n *Node) closeAbandoned(p *Peer) {
	p.link.Close()
	if freed := p.link.Buffered() + p.abandonHeld; freed > 0 {
		n.stats.released.Add(uint64(freed))
		n.log.Info("released what was routed to a link whose dialer did not complete the handshake; it grafts them if it comes back",
			"peer", p.ID(), "addr", p.Addr(), "released", freed, "error", errUnconfirmed)
	}
}

// makeRoomLocked frees a slot for a dial at MaxPeers by detaching the
// peer evictableLocked picks; the caller reports it with evicted once
// n.mu is released. false if no slot can be freed.
func (n *Node) makeRoomLocked() (victim *Peer, held int, ok bool) {
	if n.slotsUsedLocked() < n.cfg.MaxPeers {
		return nil, 0, true
	}
	if victim = n.evictableLocked(nil); victim == nil {
		return nil, 0, false
	}
	return victim, n.detachLocked(victim), true
}

// authError is the reason a connection that cannot prove its NodeID is
// refused while that NodeID has a live link.
func authError(id string) error {
	return fmt.Errorf("%w: %q has a live link and this connection does not prove that NodeID", relay.ErrIdentity, id)
}
