package mesh

import (
	"sync/atomic"
	"time"

	"github.com/verbosemesh/verbose/dedup"
)

// stats are the node's counters, updated with atomics on the event path.
type stats struct {
	emitted       atomic.Uint64
	received      atomic.Uint64
	duplicates    atomic.Uint64
	forwarded     atomic.Uint64
	overflowed    atomic.Uint64
	expired       atomic.Uint64
	released      atomic.Uint64
	badPayloads   atomic.Uint64
	stale         atomic.Uint64
	notices       atomic.Uint64
	grafts        atomic.Uint64
	prunes        atomic.Uint64
	graftResent   atomic.Uint64
	graftMisses   atomic.Uint64
	graftsRefused atomic.Uint64
	// Flow control.
	grants        atomic.Uint64
	slowConsumers atomic.Uint64
	emitWaits     atomic.Uint64
	emitWaited    atomic.Uint64 // nanoseconds
	// The partial view.
	viewDropped atomic.Uint64
}

// Stats is a snapshot of a node's counters since New.
type Stats struct {
	Emitted        uint64 // events emitted by this node
	Received       uint64 // event frames received on all links (duplicates included)
	Delivered      uint64 // events released to this node's handlers
	Duplicates     uint64 // event frames dropped as already seen
	Forwarded      uint64 // event frames relayed to other links
	Overflowed     uint64 // events dropped from peer buffers at BufferMax
	Expired        uint64 // events dropped with a peer gone for BufferTimeout or found unable to link (ErrViewMismatch), or unacknowledged when this node closed
	Released       uint64 // events freed unsent for a member that left the cluster or the partial view, or a link whose dialer never completed its handshake: not losses (the peer left, or its tree grafts them)
	HandlerDropped uint64 // deliveries dropped because handlers were too slow
	Skipped        uint64 // events declared lost after ReorderTimeout
	Late           uint64 // events that arrived after a skip had declared them lost: dropped, reported as Overflow with ErrLate
	Stale          uint64 // events dropped because what would tell them new was forgotten (an origin's long-gone boot)
	BadPayloads    uint64 // malformed event payloads (their link was dropped)
	Peers          int    // relay links
	Buffered       int    // unacknowledged events over all links

	// The epidemic broadcast tree (all zero with Config.Flood, but for
	// GraftResent and GraftMisses when tree nodes graft from this one).
	Notices     uint64 // IHAVE batches sent on lazy links
	Grafts      uint64 // GRAFTs sent: a noticed event was missing after the grace
	Prunes      uint64 // PRUNEs sent: a duplicate arrived over an eager link
	GraftResent uint64 // events resent from the recent-event store to answer GRAFTs
	GraftMisses uint64 // events asked for by a GRAFT that the store no longer held
	// GraftsRefused counts GRAFTs not answered because the stores no longer
	// held the range's head while the grafter's eager path was still
	// bringing it (an answer would have opened a gap ahead of that path).
	GraftsRefused uint64
	EagerLinks    int // (origin, link) pairs that carry events in full, over known origins
	LazyLinks     int // (origin, link) pairs that carry notices only

	// Back-pressure (Config.SlowConsumer).
	Grants        uint64        // GRANT batches sent: credit given to upstream links
	SlowConsumers uint64        // consumers (a link, or this node's handlers) declared slow
	EmitWaits     uint64        // Emit calls that waited for consumers
	EmitWaited    time.Duration // the time they waited, in all
	Held          bool          // flow control holds events for some consumer now

	// The partial view (Config.ActiveView; all zero without one).
	ActiveView  int // neighbours in the active view: the members it keeps relay links with
	PassiveView int // members held in reserve, to repair the active view from
	// ViewDropped counts the view's own messages lost here: a full inbox
	// or outbox, or a send that failed. No event is in them; the view's
	// timeouts repair what they carried. A steady rise means gossip
	// streams fail (a starved node, a cut network).
	ViewDropped uint64
}

// Redundancy is event frames received per event delivered: 1.0 when every
// event arrives once, N-1 when flooding a full mesh of N. It is 0 before
// anything was delivered. Compute it over the difference of two snapshots
// for a steady-state figure.
func (s Stats) Redundancy() float64 {
	if s.Delivered == 0 {
		return 0
	}
	return float64(s.Received) / float64(s.Delivered)
}

// Sub returns the counters of s minus those of an earlier snapshot; the
// gauges (Peers, Buffered, EagerLinks, LazyLinks, ActiveView, PassiveView)
// are s's.
func (s Stats) Sub(earlier Stats) Stats {
	d := s
	d.Emitted -= earlier.Emitted
	d.Received -= earlier.Received
	d.Delivered -= earlier.Delivered
	d.Duplicates -= earlier.Duplicates
	d.Forwarded -= earlier.Forwarded
	d.Overflowed -= earlier.Overflowed
	d.Expired -= earlier.Expired
	d.Released -= earlier.Released
	d.HandlerDropped -= earlier.HandlerDropped
	d.Skipped -= earlier.Skipped
	d.Late -= earlier.Late
	d.Stale -= earlier.Stale
	d.BadPayloads -= earlier.BadPayloads
	d.Notices -= earlier.Notices
	d.Grafts -= earlier.Grafts
	d.Prunes -= earlier.Prunes
	d.GraftResent -= earlier.GraftResent
	d.GraftMisses -= earlier.GraftMisses
	d.GraftsRefused -= earlier.GraftsRefused
	d.Grants -= earlier.Grants
	d.SlowConsumers -= earlier.SlowConsumers
	d.EmitWaits -= earlier.EmitWaits
	d.EmitWaited -= earlier.EmitWaited
	d.ViewDropped -= earlier.ViewDropped
	return d
}

// Add returns the counters and gauges of s plus those of o: a cluster's
// totals, summed node by node (Held: either holds).
func (s Stats) Add(o Stats) Stats {
	t := s
	t.Emitted += o.Emitted
	t.Received += o.Received
	t.Delivered += o.Delivered
	t.Duplicates += o.Duplicates
	t.Forwarded += o.Forwarded
	t.Overflowed += o.Overflowed
	t.Expired += o.Expired
	t.Released += o.Released
	t.HandlerDropped += o.HandlerDropped
	t.Skipped += o.Skipped
	t.Late += o.Late
	t.Stale += o.Stale
	t.BadPayloads += o.BadPayloads
	t.Peers += o.Peers
	t.Buffered += o.Buffered
	t.Notices += o.Notices
	t.Grafts += o.Grafts
	t.Prunes += o.Prunes
	t.GraftResent += o.GraftResent
	t.GraftMisses += o.GraftMisses
	t.GraftsRefused += o.GraftsRefused
	t.EagerLinks += o.EagerLinks
	t.LazyLinks += o.LazyLinks
	t.Grants += o.Grants
	t.SlowConsumers += o.SlowConsumers
	t.EmitWaits += o.EmitWaits
	t.EmitWaited += o.EmitWaited
	t.Held = t.Held || o.Held
	t.ActiveView += o.ActiveView
	t.PassiveView += o.PassiveView
	t.ViewDropped += o.ViewDropped
	return t
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
		Released:       n.stats.released.Load(),
		HandlerDropped: n.disp.handlerDropped.Load(),
		BadPayloads:    n.stats.badPayloads.Load(),
		Stale:          n.stats.stale.Load(),
		Notices:        n.stats.notices.Load(),
		Grafts:         n.stats.grafts.Load(),
		Prunes:         n.stats.prunes.Load(),
		GraftResent:    n.stats.graftResent.Load(),
		GraftMisses:    n.stats.graftMisses.Load(),
		GraftsRefused:  n.stats.graftsRefused.Load(),
		Grants:         n.stats.grants.Load(),
		SlowConsumers:  n.stats.slowConsumers.Load(),
		EmitWaits:      n.stats.emitWaits.Load(),
		EmitWaited:     time.Duration(n.stats.emitWaited.Load()),
		Held:           n.router.flowHeld.Load(),
		ViewDropped:    n.stats.viewDropped.Load(),
	}
	if n.ov != nil {
		s.ActiveView, s.PassiveView = n.ov.sizes()
	}
	var os dedup.Stats
	s.EagerLinks, s.LazyLinks, os = n.router.counts()
	s.Skipped, s.Late = os.Skipped, os.Late
	for _, l := range n.router.snapshot() {
		s.Peers++
		s.Buffered += l.Buffered()
	}
	return s
}
