package hyparview

import "slices"

// addActive takes peer, whose link is up, into the active view, first
// evicting a random neighbour if the view is full.
func (m *Machine) addActive(peer string) {
	m.clearPending(peer)
	m.passive.remove(peer)
	if m.active.len() >= m.capacity {
		m.evict()
	}
	m.active.add(peer)
	m.emit(Added{Peer: peer})
}

// evict drops a random neighbour with a DISCONNECT that keeps us in its
// passive view, as it stays in ours, and closes its link. A ring neighbour
// (Ring) is evicted only when every neighbour is one.
func (m *Machine) evict() {
	peer, ok := m.active.pick(m.rng, func(p string) bool { return !m.onRing(p) })
	if !ok {
		peer, ok = m.active.pick(m.rng, all)
	}
	if !ok {
		return
	}
	m.dropActive(peer)
	m.send(peer, Message{Kind: KindDisconnect, Alive: true})
	m.addPassive(peer, nil)
	m.releaseIfIdle(peer)
}

// dropActive removes peer from the active view, reporting whether it was there.
func (m *Machine) dropActive(peer string) bool {
	if !m.active.remove(peer) {
		return false
	}
	m.emit(Removed{Peer: peer})
	return true
}

// addPassive adds id to the passive view unless it is us or already in a
// view. A full passive view first drops a random entry, taken from prefer
// when one of those is there.
func (m *Machine) addPassive(id string, prefer []string) {
	if !m.valid(id) || m.active.has(id) || m.passive.has(id) {
		return
	}
	if m.passive.len() >= m.cfg.PassiveSize {
		victim, ok := m.passive.pick(m.rng, func(x string) bool { return slices.Contains(prefer, x) })
		if !ok {
			victim, _ = m.passive.pick(m.rng, all)
		}
		m.passive.remove(victim)
	}
	m.passive.add(id)
}
