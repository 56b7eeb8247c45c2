package membership

import (
	"cmp"
	"net"
	"slices"
	"time"
)

// Healing a split. memberlist gossips with a member it declared dead only
// for GossipToTheDeadTime and never probes it again, so after a split that
// outlasts failure detection (a cut network, a paused VM, a starved
// process) each side holds the other dead for ever, even once the network
// heals. As serf does, each node remembers the members it saw fail (dead,
// not left) with their gossip address for reconnectTimeout, and every
// reconnectInterval joins some of them. A join across a healed split is a
// full state exchange: each side learns that the other holds it dead,
// refutes that with a higher incarnation, and the next exchange or gossip
// round merges the two sides again. A member seen alive again, one that
// left, and one whose address an alive member now uses are forgotten.
//
// Which ones: the least tried first, the latest to fail among equals.
// serf picks one at random, so members gone for good (a NodeID is a fresh
// UUID at every restart unless set) dilute the tries: with a hundred of
// them, a healed split waited some fifty intervals. Fresh failures, the
// likeliest to come back, now go first, and a long split's members take
// turns with the stale ones instead of waiting for a lucky draw.

const (
	// reconnectInterval is how often failed members are tried, and
	// reconnectPerTick how many at a time (each a TCP dial, then a join if
	// it answers): a few dials per interval whatever the cluster's size.
	reconnectInterval = 30 * time.Second
	reconnectPerTick  = 3
	// reconnectTimeout is how long a failed member is tried: long enough
	// for an outage fixed by hand, as serf's default.
	reconnectTimeout = 24 * time.Hour
	// fastReconnectInterval is reconnectInterval under ProbeFast.
	fastReconnectInterval = 2 * time.Second
)

// failedMember is a member seen dead: its gossip address, when it died and
// how many joins were tried since.
type failedMember struct {
	addr  string
	at    time.Time
	tries int
}

// failedLocked records what a notification says of name's failure. d.mu
// is held.
func (d *delegate) failedLocked(name, addr, state string, now time.Time) {
	if state == StateDead {
		d.failed[name] = failedMember{addr: addr, at: now}
		return
	}
	delete(d.failed, name)
}

// failedTry is a failed member to join.
type failedTry struct{ name, addr string }

// pickFailed returns up to k failed members to try now, the least tried
// first and, among equals, the latest to fail, and counts the try. It
// first forgets those failed longer than timeout ago and those whose
// address an alive member now has (restarted under a new NodeID).
func (d *delegate) pickFailed(now time.Time, timeout time.Duration, k int) []failedTry {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.failed) == 0 {
		return nil
	}
	taken := make(map[string]bool, len(d.view))
	for _, e := range d.view {
		if e.member.State == StateAlive {
			taken[e.member.Addr] = true
		}
	}
	names := make([]string, 0, len(d.failed))
	for n, f := range d.failed {
		if now.Sub(f.at) > timeout || taken[f.addr] {
			delete(d.failed, n)
			continue
		}
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		fa, fb := d.failed[a], d.failed[b]
		return cmp.Or(cmp.Compare(fa.tries, fb.tries), fb.at.Compare(fa.at), cmp.Compare(a, b))
	})
	out := make([]failedTry, 0, min(k, len(names)))
	for _, n := range names[:min(k, len(names))] {
		f := d.failed[n]
		f.tries++
		d.failed[n] = f
		out = append(out, failedTry{name: n, addr: f.addr})
	}
	return out
}

// reconnectLoop tries failed members every interval until Shutdown, and
// stops for good once this node has left.
func (m *Membership) reconnectLoop(interval, timeout time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if m.isClosed() || m.left.Load() {
			return
		}
		for _, f := range m.del.pickFailed(time.Now(), timeout, reconnectPerTick) {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.reconnect(f)
			}()
		}
	}
}

// reconnect joins a failed member if its gossip port answers.
func (m *Membership) reconnect(f failedTry) {
	if m.isClosed() {
		return
	}
	err := m.reachable(f.addr)
	if err == nil {
		_, err = m.list.Join([]string{f.addr}) // fails once memberlist is shut down
	}
	if err != nil {
		m.log.Debug("failed member still unreachable", "member", f.name, "addr", f.addr, "error", err)
		return
	}
	m.log.Info("reached a member that had failed; merging membership", "member", f.name, "addr", f.addr)
}

// reachable dials addr's gossip port over TCP, as memberlist's join would,
// but cancelled by Shutdown: the address of a member gone for good may
// swallow the SYN (a terminated VM's), and a join there would hold
// Shutdown for the whole TCPTimeout. Over another Transport (MockNetwork)
// the join is tried directly.
func (m *Membership) reachable(addr string) error {
	if m.cfg.Transport != nil {
		return nil
	}
	d := net.Dialer{Timeout: joinTimeout}
	conn, err := d.DialContext(m.ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
