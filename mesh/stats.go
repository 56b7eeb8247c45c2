package mesh

import "sync/atomic"

// stats are the node's counters, updated with atomics on the event path.
type stats struct {
	emitted     atomic.Uint64
	received    atomic.Uint64
	duplicates  atomic.Uint64
	forwarded   atomic.Uint64
	overflowed  atomic.Uint64
	expired     atomic.Uint64
	badPayloads atomic.Uint64
}

// Stats is a snapshot of a node's counters since New.
type Stats struct {
	Emitted        uint64 // events emitted by this node
	Received       uint64 // event frames received on all links (duplicates included)
	Delivered      uint64 // events released to this node's handlers
	Duplicates     uint64 // event frames dropped as already seen
	Forwarded      uint64 // event frames relayed to other links
	Overflowed     uint64 // events dropped from peer buffers at BufferMax
	Expired        uint64 // events dropped with a peer gone for BufferTimeout
	HandlerDropped uint64 // deliveries dropped because handlers were too slow
	Skipped        uint64 // events declared lost after ReorderTimeout
	Late           uint64 // events delivered after a skip declared them lost
	BadPayloads    uint64 // malformed event payloads (their link was dropped)
	Peers          int    // relay links
	Buffered       int    // unacknowledged events over all links
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := Stats{
		Emitted:        n.stats.emitted.Load(),
		Received:       n.stats.received.Load(),
		Delivered:      n.disp.delivered.Load(),
		Duplicates:     n.stats.duplicates.Load(),
		Forwarded:      n.stats.forwarded.Load(),
		Overflowed:     n.stats.overflowed.Load(),
		Expired:        n.stats.expired.Load(),
		HandlerDropped: n.disp.handlerDropped.Load(),
		BadPayloads:    n.stats.badPayloads.Load(),
	}
	n.routeMu.Lock()
	os := n.order.Stats()
	n.routeMu.Unlock()
	s.Skipped, s.Late = os.Skipped, os.Late
	for _, l := range n.links() {
		s.Peers++
		s.Buffered += l.Buffered()
	}
	return s
}
