package hyparview

// onJoin takes the joining node into the active view (evicting if full),
// confirms, and starts a FORWARDJOIN walk through every other neighbour.
func (m *Machine) onJoin(from string) {
	if !m.active.has(from) {
		m.addActive(from)
	}
	m.send(from, Message{Kind: KindNeighborReply, Accept: true})
	for _, peer := range m.active.copy() {
		if peer != from {
			m.send(peer, Message{Kind: KindForwardJoin, Node: from, TTL: uint8(m.cfg.ARWL)})
		}
	}
}

// onForwardJoin takes one step of a join's walk: at its end (TTL 0, or no
// other neighbour to forward to) this node asks the joining node to be its
// neighbour; at TTL PRWL it keeps the joining node in its passive view.
func (m *Machine) onForwardJoin(from, node string, ttl int) {
	if node == m.id {
		return // the walk came back to the joining node
	}
	if ttl == 0 || m.active.len() <= 1 {
		m.endWalk(node)
		return
	}
	if ttl == m.cfg.PRWL {
		m.addPassive(node, nil)
	}
	next, ok := m.active.pick(m.rng, except(from, node))
	if !ok {
		m.endWalk(node)
		return
	}
	m.send(next, Message{Kind: KindForwardJoin, Node: node, TTL: uint8(ttl - 1)})
}

// endWalk asks the joining node, with high priority, to be a neighbour. The
// paper adds it at once; asking first keeps both ends' views in step.
func (m *Machine) endWalk(node string) {
	switch {
	case m.active.has(node) || m.isPending(node):
	case len(m.pending) >= m.capacity:
		m.addPassive(node, nil)
	default:
		m.request(node, true)
	}
}

// onNeighbor accepts a high-priority request (evicting if full) and a
// low-priority one if there is room; a rejected node is still a live one,
// kept in the passive view.
func (m *Machine) onNeighbor(from string, high bool) {
	if !m.active.has(from) {
		if !high && m.active.len() >= m.capacity {
			m.send(from, Message{Kind: KindNeighborReply})
			m.addPassive(from, nil)
			return
		}
		m.addActive(from)
	}
	m.send(from, Message{Kind: KindNeighborReply, Accept: true})
}

// onNeighborReply completes a request. An accept nothing waits for any more
// (its request timed out or was dropped) is undone by a DISCONNECT, since
// the peer has already taken us in.
func (m *Machine) onNeighborReply(from string, accept bool) {
	wasPending := m.clearPending(from)
	switch {
	case m.active.has(from):
	case !accept:
		if wasPending {
			m.addPassive(from, nil)
			m.rejected()
		}
	case wasPending:
		m.addActive(from)
		m.resetBackoff()
	default:
		m.send(from, Message{Kind: KindDisconnect, Alive: true})
	}
}

// onDisconnect drops the sender from the active view; it stays in the
// passive view if it says it is alive.
func (m *Machine) onDisconnect(from string, alive bool) {
	m.clearPending(from)
	if m.dropActive(from) {
		m.resetBackoff()
	}
	if alive {
		m.addPassive(from, nil)
	} else {
		m.passive.remove(from)
	}
}
