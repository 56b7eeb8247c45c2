package membership

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// A NodeID restarted on a new address (a pod with a new IP, a process on
// new ports) is refused by memberlist ("Conflicting address") as long as
// its old record is alive or suspect, and even once that record is dead
// memberlist takes the new address only from the next alive message it
// hears, which may be a push/pull interval (30s) away. So, on a conflict:
//
//   - MemberMoved is reported at once with the claimant's address and
//     metadata, so that a caller whose link to the member is down can
//     follow it to its new relay address before memberlist does;
//   - once the old record is dead (and DeadNodeReclaimTime has passed),
//     this node joins the claimant's address: the push/pull brings its
//     alive message, which memberlist now accepts.
//
// A conflict is remembered per name until the member is seen alive again
// (at most one per member of the view); one reclaim is in flight per name.

// NotifyConflict implements memberlist.ConflictDelegate. memberlist calls
// it with its node lock held: it only records and queues.
func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	if other.Name == d.self {
		return // another node claims our name: memberlist logs it, nothing to follow
	}
	meta, _, err := decodeMeta(other.Meta)
	if err != nil || meta.Channel != d.channel {
		return
	}
	m := Member{Name: other.Name, Addr: other.Address(), RelayAddr: meta.RelayAddr,
		Channel: meta.Channel, Version: meta.Version, ActiveView: meta.ActiveView, State: StateAlive}
	oldGone := existing.State == memberlist.StateDead || existing.State == memberlist.StateLeft
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if _, known := d.view[other.Name]; !known {
		return
	}
	first := d.conflicts[other.Name] != m.Addr
	d.conflicts[other.Name] = m.Addr
	if first {
		d.log.Info("member claims its name from a new address; following it", "member", m.Name,
			"old", existing.Address(), "new", m.Addr, "relay", m.RelayAddr)
		d.enqueue(Event{Kind: MemberMoved, Member: m}, d.queued)
	}
	if oldGone {
		d.queueReclaimLocked(other.Name)
	}
}

// queueReclaimLocked queues a join of name's conflicting address, unless
// one is in flight. d.mu is held.
func (d *delegate) queueReclaimLocked(name string) {
	addr, ok := d.conflicts[name]
	if !ok || d.reclaiming[name] {
		return
	}
	d.reclaiming[name] = true
	d.enqueue(Event{Kind: memberReclaim, Member: Member{Name: name, Addr: addr}}, true)
}

// reclaimed ends a reclaim of name: on success the conflict is resolved
// (an alive notification at the new address clears it too).
func (d *delegate) reclaimed(name string) {
	d.mu.Lock()
	delete(d.reclaiming, name)
	d.mu.Unlock()
}

// enqueue appends e to the queue (when want) and wakes the runner. d.mu is held.
func (d *delegate) enqueue(e Event, want bool) {
	if !want {
		return
	}
	d.queue = append(d.queue, e)
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// reclaim joins a member's new address once memberlist will take it (its
// old record dead for DeadNodeReclaimTime), from a goroutine of its own
// that Shutdown waits for.
func (m *Membership) reclaim(name, addr string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer m.del.reclaimed(name)
		t := time.NewTimer(m.reclaimWait)
		defer t.Stop()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if m.isClosed() {
			return
		}
		if _, err := m.list.Join([]string{addr}); err != nil {
			m.log.Warn("cannot reach a member at its new address", "member", name, "addr", addr, "error", err)
			return
		}
		m.log.Info("member rejoined at its new address", "member", name, "addr", addr)
	}()
}
