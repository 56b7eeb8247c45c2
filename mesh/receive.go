package mesh

import (
	"fmt"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
)

// linkHandler is the Node as its relay links see it (relay.Handler). Its
// methods run on link goroutines and never block on anything but short
// locks.
type linkHandler struct{ n *Node }

// Receive routes a batch of payloads: events, and messages of the tree. A
// run of events is routed under one hold of the router's lock. A bad
// payload drops its link (and is counted and reported); the payloads after
// it in the batch are still routed, as they would have been had they come
// in a later read.
func (h linkHandler) Receive(l *relay.Link, payloads [][]byte) {
	r := h.n.router
	for len(payloads) > 0 {
		events := 0
		for events < len(payloads) && wire.IsEvent(payloads[events]) {
			events++
		}
		var err error
		if events > 0 {
			err = r.receiveEvents(l, payloads[:events])
			payloads = payloads[events:]
		} else {
			err = h.receiveOther(l, payloads[0])
			payloads = payloads[1:]
		}
		if err != nil {
			h.reject(l, err)
		}
	}
}

// receiveOther routes a payload that does not look like an event.
func (h linkHandler) receiveOther(l *relay.Link, payload []byte) error {
	kind, err := wire.PayloadKind(payload)
	if err != nil {
		return err
	}
	switch kind {
	case wire.KindEvent:
		return h.n.router.receiveEvents(l, [][]byte{payload})
	case wire.KindIHave, wire.KindGraft, wire.KindPrune, wire.KindGrant:
		return h.n.router.receiveTree(l, kind, payload)
	}
	return fmt.Errorf("mesh: unknown payload kind %d", kind)
}

// reject drops a link that sent a bad payload.
func (h linkHandler) reject(l *relay.Link, err error) {
	n := h.n
	n.stats.badPayloads.Add(1)
	n.log.Warn("dropping a link that sent a bad payload", "peer", l.RemoteID(), "addr", l.Addr(), "error", err)
	n.pdisp.peerEvent(PeerEvent{Kind: Rejected, Peer: n.peerOf(l), PeerID: l.RemoteID(), Addr: l.Addr(), Err: err})
	l.Drop(err)
}

// Identify refuses a link to ourselves, and a member link answered by
// another node than the member it was dialled for (an address taken over,
// or a stale one): relay has checked, under TLS, that the remote proves
// the id it claims; this checks that it is the one we meant.
func (h linkHandler) Identify(l *relay.Link, remote relay.Hello) error {
	n := h.n
	if remote.NodeID == n.id {
		return fmt.Errorf("mesh: %s is this node (%s)", l.Addr(), n.id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, p := range n.members {
		if p.link == l && id != remote.NodeID {
			return fmt.Errorf("mesh: %s answered as %q, not the member %q dialled there", l.Addr(), remote.NodeID, id)
		}
	}
	return nil
}

// Event turns a link's lifecycle notice into PeerEvents; drops go to the
// loss reporter, which aggregates them.
func (h linkHandler) Event(l *relay.Link, ev relay.Event) {
	n := h.n
	p := n.peerOf(l)
	pe := PeerEvent{Peer: p, PeerID: ev.PeerID, Addr: ev.Addr, Err: ev.Err,
		Delay: ev.Delay, Attempt: ev.Attempt, Seq: ev.Seq, Dropped: ev.Dropped}
	switch ev.Kind {
	case relay.EventConnect:
		pe.Kind = Connect
	case relay.EventHandshake:
		n.router.linkUp(l)
		pe.Kind = PeerID
		n.pdisp.peerEvent(pe)
		pe.Kind = Initialized
	case relay.EventAcknowledge:
		n.router.resumeIfHeld() // its buffer drained
		pe.Kind = Acknowledge
	case relay.EventConfirmed:
		if p != nil {
			n.confirmInbound(p)
		}
		return
	case relay.EventDisconnect:
		pe.Kind = Disconnect
		if p != nil && n.abandonInbound(p) {
			// A dialer that never completed the handshake: forgotten at
			// once (admission.go), one debug line.
			n.log.Debug("dropped a link whose dialer did not complete the handshake", "peer", ev.PeerID, "addr", ev.Addr, "error", ev.Err)
			n.pdisp.peerEvent(pe)
			return
		}
		n.router.linkDown(l)
	case relay.EventReconnect:
		pe.Kind = Reconnect
	case relay.EventBackoff:
		pe.Kind = Backoff
	case relay.EventRejected:
		pe.Kind = Rejected
	case relay.EventOverflow:
		n.router.linkLost(l)
		n.stats.overflowed.Add(uint64(ev.Dropped))
		n.losses.add(lossKey{link: l, err: ev.Err}, p, ev.Dropped)
		return
	case relay.EventExpired:
		pe.Kind = Expired
		n.stats.expired.Add(uint64(ev.Dropped))
	default:
		return
	}
	switch pe.Kind {
	case Disconnect, Rejected, Expired:
		n.log.Info("peer "+pe.Kind.String(), "peer", ev.PeerID, "addr", ev.Addr, "dropped", ev.Dropped, "error", ev.Err)
	}
	n.pdisp.peerEvent(pe)
}
