package plumtree

import (
	"slices"
	"time"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// missing is an (origin, boot) that notices say exists beyond this node's
// watermark.
type missing struct {
	waits   []wait    // ascending upto; each the first notice of that upto
	peers   []PeerID  // announcers, in order of first notice
	tried   int       // grafts sent; the next goes to peers[tried % len(peers)]
	graftAt time.Time // last graft sent, zero if none
	since   time.Time // first notice: grafts go on for GiveUp from it
}

type wait struct {
	upto uint64
	at   time.Time
}

func (ms *missing) forget(p PeerID) {
	ms.peers = slices.DeleteFunc(ms.peers, func(x PeerID) bool { return x == p })
}

// IHave handles a notice batch from p: each (origin, boot) announced beyond
// what this node released is missing, and grafted if it stays missing.
func (m *Machine) IHave(p PeerID, ih *wire.IHave, now time.Time) {
	if m.peer(p) == nil {
		return
	}
	for _, e := range ih.Entries {
		if e.Origin == m.cfg.Self {
			continue
		}
		if o := m.origins[e.Origin]; o != nil {
			m.know(o, e.Origin, p) // p has released them: it needs no copy from here
		}
		if next, ok := m.released(e.Origin, e.Boot); !ok || next > e.Upto {
			continue
		}
		k := originBoot{e.Origin, e.Boot}
		ms := m.missing[k]
		if ms == nil {
			ms = &missing{since: now}
			m.missing[k] = ms
		}
		switch n := len(ms.waits); {
		case n == 0 || ms.waits[n-1].upto < e.Upto && n < maxWaits:
			ms.waits = append(ms.waits, wait{e.Upto, now})
		case ms.waits[n-1].upto < e.Upto:
			ms.waits[n-1].upto = e.Upto // full: merge, which can only graft sooner
		}
		if !slices.Contains(ms.peers, p) {
			ms.peers = append(ms.peers, p)
		}
		m.due = true
	}
}

// sendGrafts sends GRAFT for each (origin, boot) noticed beyond the
// watermark for longer than the grace: to the first announcer, then, each
// graftRetry the events are still missing (the answer was partial, or the
// announcer's store had lost them), to the next, round and round, for
// GiveUp. After that, or with no announcer up, the entry is dropped; a
// later notice starts it again.
func (m *Machine) sendGrafts(now time.Time) {
	for k, ms := range m.missing {
		next, ok := m.released(k.origin, k.boot)
		if !ok {
			delete(m.missing, k)
			continue
		}
		i := 0
		for i < len(ms.waits) && ms.waits[i].upto < next {
			i++
		}
		ms.waits = ms.waits[i:]
		if len(ms.waits) == 0 {
			delete(m.missing, k)
			continue
		}
		if !ms.graftDue(next == k.boot, now) {
			continue
		}
		p := m.announcer(ms, now)
		if p == NoPeer {
			delete(m.missing, k)
			continue
		}
		// The grafter does not make p eager for the origin: the events flow
		// from p to here, and sending them back would only make duplicates.
		m.send(p, wire.NewGraft(k.origin, k.boot, next))
		ms.graftAt = now
	}
}

// graftDue reports whether a graft goes now: the first after the grace,
// another only once the last has had time to be answered over a slow link
// (retrying every grace made a high-latency node graft everyone, each
// answer a burst). No grace when nothing of the boot ever came here
// (nothingYet): no eager path brings it (a node two hops from a new origin,
// or a new boot), and waiting only delays its first events by the grace at
// every hop.
func (ms *missing) graftDue(nothingYet bool, now time.Time) bool {
	grace := graftGrace
	if nothingYet {
		grace = 0
	}
	return now.Sub(ms.waits[0].at) >= grace && (ms.graftAt.IsZero() || now.Sub(ms.graftAt) >= graftRetry)
}

// announcer returns the next connected announcer, in turn, round and round
// (an answer may be partial, bounded by the answering link's room, and
// trying each once lost the rest for good when the origin had gone quiet):
// NoPeer once GiveUp has passed or none is up.
func (m *Machine) announcer(ms *missing, now time.Time) PeerID {
	if now.Sub(ms.since) > m.cfg.GiveUp {
		return NoPeer
	}
	for range len(ms.peers) {
		p := ms.peers[ms.tried%len(ms.peers)]
		ms.tried++
		if pr := m.peer(p); pr != nil && pr.up {
			return p
		}
	}
	return NoPeer
}
