package memnet

import "time"

// Partition splits the hosts into groups that cannot reach each other:
// connections across groups are cut at once and dials across them fail.
// Hosts named in no group form one more group together. It replaces any
// earlier partition.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = make(map[string]int)
	for i, g := range groups {
		for _, h := range g {
			n.groups[h] = i
		}
	}
	n.cutWhere(func(w *wire) bool { return !n.reachable(w.hosts[0], w.hosts[1]) })
}

// Heal removes partitions, refusals and isolation. Cut connections stay cut.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = nil
	clear(n.refused)
	clear(n.isolated)
}

// Cut closes every current connection between hosts a and b, whichever
// dialled, and returns how many. Both ends fail with ErrCut. New dials are
// not affected.
func (n *Network) Cut(a, b string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := pairOf(a, b)
	return n.cutWhere(func(w *wire) bool { return pairOf(w.hosts[0], w.hosts[1]) == p })
}

// CutHost closes every current connection of host a and returns how many.
func (n *Network) CutHost(a string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cutWhere(func(w *wire) bool { return w.hosts[0] == a || w.hosts[1] == a })
}

// Refuse makes dials between a and b (either way) fail with ErrRefused
// while on; existing connections are left alone.
func (n *Network) Refuse(a, b string, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if on {
		n.refused[pairOf(a, b)] = true
	} else {
		delete(n.refused, pairOf(a, b))
	}
}

// Isolate takes host off the network, as if its link went down: all its
// connections are cut and dials from or to it fail with ErrUnreachable until
// Unisolate or Heal. Its connections to itself are cut but it may redial
// itself.
func (n *Network) Isolate(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[host] = true
	n.cutWhere(func(w *wire) bool { return w.hosts[0] == host || w.hosts[1] == host })
}

// Unisolate puts host back on the network.
func (n *Network) Unisolate(host string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.isolated, host)
}

// SetLatency sets the one-way delay between hosts a and b, both ways, for
// bytes written from now on, on existing and new connections. It overrides
// the default latency for that pair, even when d is 0.
func (n *Network) SetLatency(a, b string, d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := pairOf(a, b)
	n.latency[p] = d
	n.updateLatency(func(w *wire) bool { return pairOf(w.hosts[0], w.hosts[1]) == p })
}

// SetDefaultLatency sets the one-way delay between hosts without a
// SetLatency of their own.
func (n *Network) SetDefaultLatency(d time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.defaultLatency = d
	n.updateLatency(func(w *wire) bool {
		_, own := n.latency[pairOf(w.hosts[0], w.hosts[1])]
		return !own
	})
}

// Conns returns how many connections are open: dialled, not cut, and not
// yet closed by both ends.
func (n *Network) Conns() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.wires)
}

// cutWhere cuts the wires that match; the caller holds n.mu.
func (n *Network) cutWhere(match func(*wire) bool) int {
	cut := 0
	for w := range n.wires {
		if !match(w) {
			continue
		}
		w.mu.Lock()
		if w.cutLocked() {
			cut++
		}
		w.mu.Unlock()
		delete(n.wires, w)
	}
	return cut
}

// updateLatency refreshes the latency of matching wires; the caller holds n.mu.
func (n *Network) updateLatency(match func(*wire) bool) {
	for w := range n.wires {
		if match(w) {
			w.mu.Lock()
			w.latency = n.latencyFor(w.hosts[0], w.hosts[1])
			w.mu.Unlock()
		}
	}
}
