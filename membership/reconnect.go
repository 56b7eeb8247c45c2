package membership

import (
	"context"
	"math/rand/v2"
	"net"
	"time"
)

// Healing a split. memberlist gossips with a member it declared dead only
// for GossipToTheDeadTime and never probes it again, so after a split that
// outlasts failure detection (a cut network, a paused VM, a starved
// process) each side holds the other dead for ever, even once the network
// heals. As serf does, each node remembers the members it saw fail (dead,
// not left) with their gossip address for reconnectTimeout, and every
// reconnectInterval joins one of them picked at random. A join across a
// healed split is a full state exchange: each side learns that the other
// holds it dead, refutes that with a higher incarnation, and the next
// exchange or gossip round merges the two sides again. A member seen alive
// again, one that left, and one whose address an alive member now uses
// are forgotten.

const (
	// reconnectInterval is how often a failed member is tried. One join
	// per interval whatever the number of failed members: at 30s it costs
	// nothing, and a healed split merges within about an interval times
	// the share of failed members that are gone for good.
	reconnectInterval = 30 * time.Second
	// reconnectTimeout is how long a failed member is tried: long enough
	// for an outage fixed by hand, as serf's default.
	reconnectTimeout = 24 * time.Hour
	// fastReconnectInterval is reconnectInterval under ProbeFast.
	fastReconnectInterval = 2 * time.Second
)

// failedMember is a member seen dead: its gossip address and when it died.
type failedMember struct {
	addr string
	at   time.Time
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

// pickFailed returns the gossip address of a failed member to try, picked
// at random, after forgetting those past timeout and those whose address
// an alive member now has (restarted under a new NodeID).
func (d *delegate) pickFailed(now time.Time, timeout time.Duration) (name, addr string, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.failed) == 0 {
		return "", "", false
	}
	taken := make(map[string]bool, len(d.view))
	for _, e := range d.view {
		if e.member.State == StateAlive {
			taken[e.member.Addr] = true
		}
	}
	var names []string
	for n, f := range d.failed {
		if now.Sub(f.at) > timeout || taken[f.addr] {
			delete(d.failed, n)
			continue
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return "", "", false
	}
	name = names[rand.IntN(len(names))]
	return name, d.failed[name].addr, true
}

// reconnectLoop tries a failed member every interval until Shutdown, and
// stops for good once this node has left.
func (m *Membership) reconnectLoop(interval, timeout time.Duration) {
	defer m.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		if m.isClosed() || m.left.Load() {
			return
		}
		name, addr, ok := m.del.pickFailed(time.Now(), timeout)
		if !ok {
			continue
		}
		if err := m.reachable(ctx, addr); err != nil {
			m.log.Debug("failed member still unreachable", "member", name, "addr", addr, "error", err)
			continue
		}
		if _, err := m.list.Join([]string{addr}); err != nil {
			m.log.Debug("failed member still unreachable", "member", name, "addr", addr, "error", err)
			continue
		}
		m.log.Info("reached a member that had failed; merging membership", "member", name, "addr", addr)
	}
}

// reachable dials addr's gossip port over TCP, as memberlist's join would,
// but cancelled by Shutdown: the address of a member gone for good may
// swallow the SYN (a terminated VM's), and a join there would hold
// Shutdown for the whole TCPTimeout. Over another Transport (MockNetwork)
// the join is tried directly.
func (m *Membership) reachable(ctx context.Context, addr string) error {
	if m.cfg.Transport != nil {
		return nil
	}
	d := net.Dialer{Timeout: joinTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
