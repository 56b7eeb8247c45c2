package plumtree

import "github.com/verbosemesh/verbose/mesh/internal/wire"

// notices collects the (origin, boot)s released since the last round, with
// the highest seq of each: what the lazy peers are told of. The last one
// marked is kept apart (consecutive events mostly share it, and hashing its
// origin per event cost more than the rest) and folded in before a round.
type notices struct {
	dirty    map[originBoot]uint64
	last     originBoot
	lastUpto uint64
}

// mark records that k released up to seq. It reports whether nothing was
// marked before (a round is due).
func (n *notices) mark(k originBoot, seq uint64) bool {
	if n.last.origin != "" {
		if k == n.last {
			n.lastUpto = max(n.lastUpto, seq)
			return false
		}
		n.flush()
		n.last, n.lastUpto = k, seq
		return false
	}
	wasEmpty := len(n.dirty) == 0
	n.last, n.lastUpto = k, seq
	return wasEmpty
}

// flush folds the last marked into dirty.
func (n *notices) flush() {
	if k := n.last; k.origin != "" {
		n.dirty[k] = max(n.dirty[k], n.lastUpto)
		n.last, n.lastUpto = originBoot{}, 0
	}
}

// sendNotices sends, to each connected peer, IHAVE batches naming the
// (origin, boot)s released since the last round for which the peer is
// lazy (every lazy origin after a reconnect). A peer that is down gets
// none: it would only fill its retransmit buffer; it is re-announced when
// it is back.
//
// A peer that comes up is also told how far this node's own events went
// when it came up, eager or lazy, flooding or not: an event emitted while
// the node had no link at all (alone, or between neighbours in a partial
// view's repair) went to nobody and sits only in this node's store.
// Without the notice, the first peer hears of it with the next event, and
// never if there is none: a node isolated for a moment lost its last
// events, silently. Every earlier event is on the peer's link, ahead of
// the notice, or was dropped from it (overflow): those the peer grafts.
// Not the events emitted since it came up: flow control may hold them
// for the peer's credit, and a notice of them made it graft, around its
// own back-pressure, what was on its way.
func (m *Machine) sendNotices() {
	m.notices.flush()
	dirty := m.notices.dirty // empty when flooding (advanced)
	defer clear(dirty)
	for i := range m.peers {
		pr := &m.peers[i]
		if !pr.live || !pr.up || len(dirty) == 0 && !pr.announce {
			continue
		}
		p := PeerID(i)
		var entries []wire.Notice
		announce := pr.announce
		if announce {
			pr.announce = false
			for name, o := range m.origins {
				switch {
				case name == pr.node || o.boot == 0:
				case !m.cfg.Flood && o.isLazy(p):
					entries = append(entries, wire.Notice{Origin: name, Boot: o.boot, Upto: o.upto})
				case name == m.cfg.Self && pr.ownUpto != 0:
					entries = append(entries, wire.Notice{Origin: name, Boot: o.boot, Upto: pr.ownUpto})
				}
			}
		}
		for k, upto := range dirty {
			o := m.origins[k.origin]
			if k.origin == pr.node || o == nil || !o.isLazy(p) || announce && k.boot == o.boot {
				continue // the origin itself, eager, or announced above up to o.upto
			}
			entries = append(entries, wire.Notice{Origin: k.origin, Boot: k.boot, Upto: upto})
		}
		for len(entries) > 0 {
			batch := entries[:min(len(entries), wire.MaxNotices)]
			entries = entries[len(batch):]
			m.send(p, wire.NewIHave(batch))
		}
	}
}
