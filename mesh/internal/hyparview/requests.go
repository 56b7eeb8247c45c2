package hyparview

import "time"

// minFillBackoff is the first wait after a rejected low-priority NEIGHBOR;
// it doubles with each further rejection up to ShuffleInterval, so that a
// node below its target among full neighbours asks about once per shuffle,
// not once per tick.
const minFillBackoff = time.Second

// request is a JOIN or NEIGHBOR sent and not yet answered.
type request struct {
	peer     string
	high     bool // a JOIN or a high-priority NEIGHBOR: never rejected
	deadline time.Time
}

func (m *Machine) isPending(peer string) bool {
	for _, r := range m.pending {
		if r.peer == peer {
			return true
		}
	}
	return false
}

// clearPending drops the request to peer, reporting whether there was one.
func (m *Machine) clearPending(peer string) bool {
	for i, r := range m.pending {
		if r.peer == peer {
			m.pending = append(m.pending[:i], m.pending[i+1:]...)
			return true
		}
	}
	return false
}

// request sends peer a NEIGHBOR of the given priority.
func (m *Machine) request(peer string, high bool) {
	m.pending = append(m.pending, request{peer: peer, high: high, deadline: m.now.Add(m.cfg.NeighborTimeout)})
	m.send(peer, Message{Kind: KindNeighbor, High: high})
}

// expirePending fails the requests unanswered for NeighborTimeout: the peer
// is taken for failed, leaves the passive view, and its link is closed.
func (m *Machine) expirePending() {
	for i := 0; i < len(m.pending); {
		r := m.pending[i]
		if m.now.Before(r.deadline) {
			i++
			continue
		}
		m.pending = append(m.pending[:i], m.pending[i+1:]...)
		m.passive.remove(r.peer)
		if m.linkOf(r.peer) != nil {
			m.closeLink(r.peer)
		}
	}
}

// repair keeps the ring's successor (keepRing) and asks passive peers to
// fill the active view up to its capacity. An empty active view asks one peer with high priority, which cannot be
// refused; the rest is asked with low priority, which backs off after a
// rejection.
func (m *Machine) repair() {
	m.keepRing()
	notPending := func(id string) bool { return !m.isPending(id) }
	if m.active.len() == 0 && !m.highPending() && len(m.pending) < m.capacity {
		if peer, ok := m.passive.pick(m.rng, notPending); ok {
			m.request(peer, true)
		}
	}
	if m.now.Before(m.fillAt) {
		return
	}
	for m.active.len()+len(m.pending) < m.capacity {
		peer, ok := m.passive.pick(m.rng, notPending)
		if !ok {
			return
		}
		m.request(peer, false)
	}
}

func (m *Machine) highPending() bool {
	for _, r := range m.pending {
		if r.high {
			return true
		}
	}
	return false
}

// rejected backs the low-priority requests off after a rejection.
func (m *Machine) rejected() {
	m.fillBackoff = min(max(2*m.fillBackoff, minFillBackoff), m.cfg.ShuffleInterval)
	m.fillAt = m.now.Add(m.fillBackoff)
}

// resetBackoff lets the next repair ask at once: after an accepted request,
// or when the active view lost a peer.
func (m *Machine) resetBackoff() {
	m.fillBackoff, m.fillAt = 0, time.Time{}
}
