package hyparview

// Ring tells the machine this node's neighbours on the ring of all members
// ordered by NodeID: succ the next one, pred the one before ("" for none).
// The successor is kept in the active view: asked by a high-priority
// NEIGHBOR, which is never refused, whenever it is not there; and neither
// is evicted while another neighbour can be. The ring joins every member,
// whatever order they came in: HyParView alone leaves two full components
// apart for ever (nodes that start together fill their views among
// themselves, and a full view refuses the low-priority requests that would
// join them), and the broadcast tree then never reaches across. HyParView's
// random links keep the overlay's diameter small; the ring takes at most
// two of each view's slots. With room for a single neighbour there is no
// ring: the two would only evict each other.
func (m *Machine) Ring(succ, pred string) {
	if !m.valid(succ) {
		succ = ""
	}
	if !m.valid(pred) {
		pred = ""
	}
	m.succ, m.pred = succ, pred
	m.repair()
}

// onRing reports whether peer is one of this node's ring neighbours.
func (m *Machine) onRing(peer string) bool {
	return peer != "" && (peer == m.succ || peer == m.pred)
}

// keepRing asks the successor with high priority if it is not a neighbour
// and not asked already, at most once per NeighborTimeout: an unreachable
// successor (its request fails or times out) is asked again then, until
// membership names another.
func (m *Machine) keepRing() {
	s := m.succ
	if s == "" || m.capacity < 2 || m.active.has(s) || m.isPending(s) || len(m.pending) >= m.capacity || m.now.Before(m.ringAt) {
		return
	}
	m.ringAt = m.now.Add(m.cfg.NeighborTimeout)
	m.request(s, true)
}
