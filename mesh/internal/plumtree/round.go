package plumtree

import "time"

// Round sends the notices due, grafts what has been missing for the
// grace, and now and then forgets idle origins. It reports whether another
// round is needed within RoundInterval (events still missing).
func (m *Machine) Round(now time.Time) bool {
	m.sendNotices()
	m.sendGrafts(now)
	if now.Sub(m.lastSweep) >= sweepInterval {
		m.sweep(now)
	}
	return len(m.missing) > 0
}

// sweep forgets origins idle for longer than the orderer would remember
// them.
func (m *Machine) sweep(now time.Time) {
	m.lastSweep = now
	for name, o := range m.origins {
		if name != m.cfg.Self && now.Sub(o.last) > m.cfg.IdleTimeout {
			m.forgetOrigin(name)
		}
	}
}
