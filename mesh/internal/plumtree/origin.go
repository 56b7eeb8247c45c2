package plumtree

import "time"

// origin is the tree of one origin as this node sees it: a mark per peer
// that is not in the default mode, lazy for another node's origin (it
// turns eager when the peer grafts) and eager for this node's own (it
// turns lazy when the peer prunes).
//
// Relayed origins start lazy, unlike Plumtree's all-eager start: the
// origin pushes its events over every one of its own links, so in a full
// mesh every node already has them first hand, and an all-eager start
// floods each event N² times until the PRUNEs, queued behind that very
// flood, get through (meshbench, 20 nodes: redundancy 12). A node two hops
// away hears of the origin's events by notice and grafts its neighbour once
// (after the graft grace), which builds the tree from the origin outward.
type origin struct {
	relayed bool
	marks   []mark // by PeerID; missing entries are unmarked
	eagerN  int    // marks that are eager
	lazyN   int    // marks that are lazy
	// provider is the peer of the last fresh event: a duplicate over it
	// proves no other path, so it is not pruned for it.
	provider   PeerID
	boot, upto uint64 // newest boot released and its highest seq, for re-announcing
	last       time.Time
}

type mode uint8

const (
	unmarked mode = iota
	eager
	lazy
)

// mark is one peer's mode for an origin; pruneSent is when this node sent
// PRUNE on it (zero when the remote pruned first).
type mark struct {
	mode      mode
	pruneSent time.Time
}

func (o *origin) modeOf(p PeerID) mode {
	if int(p) < len(o.marks) {
		return o.marks[p].mode
	}
	return unmarked
}

// leaf reports whether no peer is eager for a relayed origin: the common
// case, every receiver of a star, which asks nothing per peer.
func (o *origin) leaf() bool { return o.relayed && o.eagerN == 0 }

// isLazy reports whether p gets o's events as notices only.
func (o *origin) isLazy(p PeerID) bool {
	if o.relayed {
		return o.eagerN == 0 || o.modeOf(p) != eager
	}
	return o.lazyN > 0 && o.modeOf(p) == lazy
}

// prunedAt reports whether p is marked lazy, and when this node pruned it.
func (o *origin) prunedAt(p PeerID) (time.Time, bool) {
	if o.modeOf(p) != lazy {
		return time.Time{}, false
	}
	return o.marks[p].pruneSent, true
}

func (o *origin) set(p PeerID, mk mark) {
	for int(p) >= len(o.marks) {
		o.marks = append(o.marks, mark{})
	}
	switch o.marks[p].mode {
	case eager:
		o.eagerN--
	case lazy:
		o.lazyN--
	}
	switch mk.mode {
	case eager:
		o.eagerN++
	case lazy:
		o.lazyN++
	}
	o.marks[p] = mk
}

// setLazy makes p lazy for o; sentPrune is when this node sent a PRUNE on
// it (zero when the remote pruned).
func (o *origin) setLazy(p PeerID, sentPrune time.Time) {
	o.set(p, mark{mode: lazy, pruneSent: sentPrune})
}

// setEager makes p eager for o.
func (o *origin) setEager(p PeerID) { o.set(p, mark{mode: eager}) }

// setDefault drops p's mark.
func (o *origin) setDefault(p PeerID) {
	if o.modeOf(p) != unmarked {
		o.set(p, mark{})
	}
}
