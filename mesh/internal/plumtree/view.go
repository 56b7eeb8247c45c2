package plumtree

// EachEager calls fn for every (origin, live peer) pair that is eager:
// the peer gets the origin's events in full from this node. It covers the
// origins the machine knows and this node's own (all of whose peers are
// eager until they prune), and leaves out a peer that is the origin
// itself, as Counts does. For views (the agent's topology), not the event
// path: it walks every origin.
func (m *Machine) EachEager(fn func(origin string, p PeerID)) {
	if m.origins[m.cfg.Self] == nil {
		// No own event yet: every peer is eager for this node's origin.
		m.eachEagerOf(m.cfg.Self, &origin{provider: NoPeer}, fn)
	}
	for name, o := range m.origins {
		m.eachEagerOf(name, o, fn)
	}
}

func (m *Machine) eachEagerOf(name string, o *origin, fn func(string, PeerID)) {
	for i := range m.peers {
		if pr := &m.peers[i]; pr.live && pr.node != name && !o.isLazy(PeerID(i)) {
			fn(name, PeerID(i))
		}
	}
}
