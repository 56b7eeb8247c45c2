package mesh

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/verbosemesh/verbose/relay"
)

// linkHandler is the Node as the relay links see it. Its methods run on
// link goroutines and never block on anything but short locks.
type linkHandler struct{ n *Node }

// Receive routes a batch of payloads: events, and messages of the tree. A
// run of events is routed under one hold of the router's lock. A bad
// payload drops its link (and is counted and reported); the payloads after
// it in the batch are still routed, as they would have been had they come
// in a later read.
func (h linkHandler) Receive(l *relay.Link, payloads [][]byte, at time.Time) {
	n := h.n
	for len(payloads) > 0 {
		events := 0
		for events < len(payloads) && isEvent(payloads[events]) {
			events++
		}
		var err error
		if events > 0 {
			err = n.receiveEvents(l, payloads[:events], at)
			payloads = payloads[events:]
		} else {
			err = n.receiveOther(l, payloads[0], at)
			payloads = payloads[1:]
		}
		if err != nil {
			n.reject(l, err)
		}
	}
}

// isEvent is a cheap look at a payload's kind (payloadKind checks it
// whole): [kind, …] with kind 1 starts 0x97 0x01.
func isEvent(p []byte) bool {
	return len(p) > 1 && p[0] == 0x97 && p[1] == kindEvent
}

// receiveOther routes a payload that does not look like an event.
func (n *Node) receiveOther(l *relay.Link, payload []byte, at time.Time) error {
	kind, err := payloadKind(payload)
	if err != nil {
		return err
	}
	switch kind {
	case kindEvent:
		return n.receiveEvents(l, [][]byte{payload}, at)
	case kindIHave, kindGraft, kindPrune:
		return n.receiveTree(l, kind, payload)
	}
	return fmt.Errorf("mesh: unknown payload kind %d", kind)
}

// reject drops a link that sent a bad payload.
func (n *Node) reject(l *relay.Link, err error) {
	n.stats.badPayloads.Add(1)
	n.log.Warn("dropping a link that sent a bad payload", "peer", l.RemoteID(), "addr", l.Addr(), "error", err)
	n.pdisp.peerEvent(PeerEvent{Kind: Rejected, Peer: n.peerOf(l), PeerID: l.RemoteID(), Addr: l.Addr(), Err: err})
	l.Drop(err)
}

// receiveEvents routes a run of event payloads under one hold of the
// router's lock; the first bad one's error is returned (the others are
// counted).
func (n *Node) receiveEvents(l *relay.Link, payloads [][]byte, now time.Time) error {
	n.routeMu.Lock()
	defer n.routeMu.Unlock()
	// The link's reading of the clock: one per read from the connection.
	// The router only needs it for timers of milliseconds and more (a
	// gap's grace, idle origins, the store's age bound, prune retries), and
	// reading it per event was ~3% of a receiver's CPU.
	if now.Before(n.routeNow) {
		now = n.routeNow // links read the clock at different moments: never go back
	}
	n.routeNow = now
	var first error
	for _, p := range payloads {
		if err := n.receiveEvent(l, p, now); err != nil {
			if first == nil {
				first = err
			} else {
				n.stats.badPayloads.Add(1)
			}
		}
	}
	n.stats.received.Add(n.received) // once per batch: an atomic add per event cost ~2%
	n.received = 0
	n.disp.commit() // what the batch released, queued for the handlers at once
	return first
}

// receiveEvent dedups and orders one event, then delivers what the orderer
// releases and forwards it along the tree. A duplicate prunes its link.
// payload is the link's (valid during the call): what outlives it is copied
// (see inbound). Called with routeMu held.
func (n *Node) receiveEvent(l *relay.Link, payload []byte, now time.Time) error {
	in := n.nextInbound()
	env := &in.env
	if err := parseEnvelopeInto(env, in.path[:0], payload, &n.strs); err != nil {
		return err
	}
	in.from, in.raw = l, payload
	n.received++
	if env.Boot == n.boot && env.Origin == n.id {
		n.stats.duplicates.Add(1) // our own event came back round a cycle
		return nil
	}
	ready, fresh := n.order.Offer(env.Origin, env.Boot, env.Seq, in, now, n.ready[:0])
	if !fresh {
		if late := n.order.Stats().Late; late != n.lateSeen {
			// A copy of an event the orderer had declared lost: dropped to
			// keep the origin's order, and reported like any other drop.
			n.lateSeen = late
			n.log.Warn("dropped an event that arrived after ReorderTimeout", "origin", env.Origin, "seq", env.Seq, "peer", l.RemoteID())
			n.pdisp.peerEvent(PeerEvent{Kind: Overflow, Peer: n.peerOf(l), PeerID: l.RemoteID(), Addr: l.Addr(), Dropped: 1, Err: ErrLate})
			return nil
		}
		n.stats.duplicates.Add(1)
		n.tree.duplicate(env.Origin, l, now)
		return nil
	}
	n.takeInbound() // in is taken: the orderer holds or releases it
	n.tree.fresh(env.Origin, l, now)
	if !slices.Contains(ready, in) {
		in.own() // held behind a gap, beyond this call
	}
	n.release(ready, now)
	if len(ready) == 0 {
		// Held behind a gap: make sure the tick loop has a timer for it.
		select {
		case n.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// inbound is an arriving event: its envelope, the link it came over, its
// encoding as it came (env.Args aliases it), and the room for a path of up
// to three ids (the origin, a forwarder, this node). The router reuses
// inbounds: one is taken per fresh event and free again once the event is
// released (forwarded, stored, queued for the handlers: each keeps a copy
// of what it needs), so that a steady stream of events allocates none.
// raw is the link's read buffer, valid while the link's Receive runs; an
// event held behind a gap outlives it and owns a copy (own).
type inbound struct {
	env  envelope
	from *relay.Link
	raw  []byte
	path [3]string
}

// own copies raw, which env.Args ends, out of the link's buffer.
func (in *inbound) own() {
	raw := bytes.Clone(in.raw)
	in.env.Args = raw[len(raw)-len(in.env.Args):]
	in.raw = raw
}

// inboundChunk inbounds are allocated at once when none is spare.
const (
	inboundChunk = 32
	maxSpare     = 64 // spare inbounds the router keeps (after a burst of held events)
)

// nextInbound returns the inbound the next arrival is parsed into. It stays
// the next one (and is overwritten) until takeInbound, so a duplicate or a
// bad payload costs nothing. Called with routeMu held.
func (n *Node) nextInbound() *inbound {
	if k := len(n.spare); k > 0 {
		return n.spare[k-1]
	}
	if len(n.inbounds) == 0 {
		n.inbounds = make([]inbound, inboundChunk)
	}
	return &n.inbounds[0]
}

// takeInbound takes the inbound nextInbound returned.
func (n *Node) takeInbound() {
	if k := len(n.spare); k > 0 {
		n.spare[k-1] = nil
		n.spare = n.spare[:k-1]
		return
	}
	n.inbounds = n.inbounds[1:]
}

// reuse makes in spare: nothing refers to it any more.
func (n *Node) reuse(in *inbound) {
	if in != nil && len(n.spare) < maxSpare {
		n.spare = append(n.spare, in)
	}
}

// receiveTree handles IHAVE, GRAFT and PRUNE.
func (n *Node) receiveTree(l *relay.Link, kind uint8, payload []byte) error {
	var (
		ih  *ihaveMsg
		gr  *graftMsg
		pr  *pruneMsg
		err error
	)
	switch kind {
	case kindIHave:
		ih, err = decodeIHave(payload)
	case kindGraft:
		gr, err = decodeGraft(payload)
	default:
		pr, err = decodePrune(payload)
	}
	if err != nil {
		return err
	}
	n.routeMu.Lock()
	defer n.routeMu.Unlock()
	now := time.Now()
	switch {
	case ih != nil:
		if n.tree.ihave(ih, l, now) {
			n.kickTree()
		}
	case gr != nil:
		n.tree.graft(gr, l, now)
	default:
		n.tree.prune(pr, l, now)
	}
	return nil
}

// release delivers and forwards events in the order the orderer released
// them, so that every link carries each origin's events in origin order.
// now is the caller's reading of the clock: the clock is read once per
// arrival, not again here (it was ~5% of the router's CPU). Called with
// routeMu held.
func (n *Node) release(ready []*inbound, now time.Time) {
	if len(ready) == 0 {
		return
	}
	links := n.links()
	due := false
	for i, in := range ready {
		if n.tree.release(in, links, now) {
			due = true
		}
		if in.env.Origin != n.id {
			n.disp.stage(&in.env)
		}
		n.reuse(in) // the dispatcher staged a copy of what handlers see
		ready[i] = nil
	}
	n.ready = ready[:0]
	if due {
		n.kickTree()
	}
}

// Control carries unsequenced protocol messages; none are defined yet.
func (h linkHandler) Control(l *relay.Link, payload []byte) {}

// Identify refuses a link to ourselves.
func (h linkHandler) Identify(l *relay.Link, remote relay.Hello) error {
	if remote.NodeID == h.n.id {
		return fmt.Errorf("mesh: %s is this node (%s)", l.Addr(), h.n.id)
	}
	return nil
}

// Event turns a link's lifecycle notice into PeerEvents.
func (h linkHandler) Event(l *relay.Link, ev relay.Event) {
	n := h.n
	pe := PeerEvent{Peer: n.peerOf(l), PeerID: ev.PeerID, Addr: ev.Addr, Err: ev.Err,
		Delay: ev.Delay, Attempt: ev.Attempt, Seq: ev.Seq, Dropped: ev.Dropped}
	switch ev.Kind {
	case relay.EventConnect:
		pe.Kind = Connect
	case relay.EventHandshake:
		n.routeMu.Lock()
		due := n.tree.linkUp(l, l.RemoteBoot())
		n.routeMu.Unlock()
		if due {
			n.kickTree()
		}
		pe.Kind = PeerID
		n.pdisp.peerEvent(pe)
		pe.Kind = Initialized
	case relay.EventAcknowledge:
		pe.Kind = Acknowledge
	case relay.EventDisconnect:
		pe.Kind = Disconnect
	case relay.EventReconnect:
		pe.Kind = Reconnect
	case relay.EventBackoff:
		pe.Kind = Backoff
	case relay.EventRejected:
		pe.Kind = Rejected
	case relay.EventOverflow:
		pe.Kind = Overflow
		n.stats.overflowed.Add(uint64(ev.Dropped))
	case relay.EventExpired:
		pe.Kind = Expired
		n.stats.expired.Add(uint64(ev.Dropped))
	default:
		return
	}
	switch pe.Kind {
	case Disconnect, Rejected, Overflow, Expired:
		n.log.Info("peer "+pe.Kind.String(), "peer", ev.PeerID, "addr", ev.Addr, "dropped", ev.Dropped, "error", ev.Err)
	}
	n.pdisp.peerEvent(pe)
}

// tickLoop releases events held behind a gap once ReorderTimeout passes.
func (n *Node) tickLoop() {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-n.stop:
			timer.Stop()
			return
		case <-n.kick:
		case <-timer.C:
		}
		n.routeMu.Lock()
		now := time.Now()
		before := n.order.Stats().Skipped
		n.release(n.order.Tick(now, n.ready[:0]), now)
		n.disp.commit()
		if skipped := n.order.Stats().Skipped - before; skipped > 0 {
			n.log.Debug("skipped events declared lost", "count", skipped)
		}
		next, ok := n.order.NextDeadline()
		n.routeMu.Unlock()
		if ok {
			timer.Reset(max(next.Sub(now), time.Millisecond))
		}
	}
}
