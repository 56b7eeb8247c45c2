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
	asked   int       // grafts sent since the watermark last moved (see announcer)
	graftAt time.Time // last graft sent, zero if none
	since   time.Time // first notice, or the last progress: see announcer
	from    uint64    // the watermark at since
	movedAt time.Time // when a round last saw the watermark move (see graftDue)
	seen    uint64    // the watermark then
	// stalled says that the watermark did not move for GiveUp while
	// grafting: the eager path brings nothing (see stalled).
	stalled bool
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
		next, ok := m.released(e.Origin, e.Boot)
		if !ok || next > e.Upto {
			continue
		}
		k := originBoot{e.Origin, e.Boot}
		ms := m.missing[k]
		if ms == nil {
			ms = &missing{since: now, from: next, movedAt: now, seen: next}
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
		far := m.cfg.Reach > 0 && ms.waits[len(ms.waits)-1].upto-next >= m.cfg.Reach/2
		broken := m.stalled(k, next) || m.cfg.Released.Holding(k.origin, k.boot)
		if !ms.graftDue(next, next == k.boot, far, broken, now) {
			continue
		}
		p, gaveUp := m.announcer(ms, next, now)
		if p == NoPeer {
			if gaveUp && !m.providerDown(k.origin) {
				// Nothing answered, and no link that will reconnect and
				// resend holds them: lost, and said so.
				m.out.Abandoned = append(m.out.Abandoned, Abandoned{Origin: k.origin, Boot: k.boot, Upto: ms.waits[len(ms.waits)-1].upto + 1})
			}
			delete(m.missing, k)
			continue
		}
		// The grafter does not make p eager for the origin: the events flow
		// from p to here, and sending them back would only make duplicates.
		// But a PRUNE it sent p is void now: p's events are wanted, and the
		// first fresh one makes p the provider (see Fresh).
		if o := m.origins[k.origin]; o != nil {
			if sent, lazy := o.prunedAt(p); lazy && !sent.IsZero() {
				o.setLazy(p, time.Time{})
			}
		}
		m.send(p, wire.NewGraft(k.origin, k.boot, next, ms.stalled || m.stalled(k, next)))
		ms.graftAt = now
	}
}

// provider returns origin's provider (the peer the last fresh event came
// over), nil if none or gone.
func (m *Machine) provider(origin string) *peer {
	if o := m.origins[origin]; o != nil && o.provider != NoPeer {
		return m.peer(o.provider)
	}
	return nil
}

// providerDown reports whether origin's provider is a peer whose link is
// down: it reconnects and resends what its buffer holds.
func (m *Machine) providerDown(origin string) bool {
	pr := m.provider(origin)
	return pr != nil && !pr.up
}

// stalled reports whether no eager path can be bringing (origin, boot)
// here: nothing of the boot released yet, or no provider (the peer the
// last fresh event came over), or one whose link is down or gone. A GRAFT
// says so (wire.Graft.Stalled), as it does once the watermark has not
// moved for GiveUp (see announcer): then the answerer sends what it still
// stores of the range even if its head is gone. Otherwise the eager path
// may only be slower than the announcer (back-pressure paces a long path),
// and an answer without the range's head would open a gap ahead of that
// path: the orderer would hold what came after it and grant nothing
// upstream, stalling the very path that was bringing the head until
// ReorderTimeout declared it lost. The answerer then sends the whole range
// or nothing.
func (m *Machine) stalled(k originBoot, next uint64) bool {
	pr := m.provider(k.origin)
	return next == k.boot || pr == nil || !pr.up || m.origins[k.origin].boot != k.boot
}

// graftDue reports whether a graft goes now, and notes the watermark's
// moves. Another graft goes only once the last has had time to be answered
// over a slow link (retrying every grace made a high-latency node graft
// everyone, each answer a burst). No grace when nothing of the boot ever
// came here (nothingYet): no eager path brings it (a node two hops from a
// new origin, or a new boot), and waiting only delays its first events by
// the grace at every hop.
//
// Otherwise the first graft waits until a noticed event has been missing
// for the grace and the watermark has stopped: for the grace if the path
// is broken (its provider is down or gone, or the orderer holds events
// behind a gap, which it will declare lost), for pathPatience if its links
// are up. Such a path's events come over reliable links, in order, paced
// by back-pressure: the tree advances a quarter window at a time as its
// slowest consumers grant, so a neighbour on another branch is ahead by
// thousands of events for tens of milliseconds under load. Grafting then
// (a whole range, see stalled) resent what was already on its way, and
// moved the tree onto a branch as loaded: at 100 nodes, 1,400 grafts in a
// 10 s blast resent 3.6 million events, 0.6 copies per delivery; grafting
// around a path that was only slower (behind the announcer for some time,
// or some thousands of events) cost as much. One lag is grafted at once,
// moving or not (far): half the orderer's reach (Config.Reach), past which
// a new link's live events would land beyond what the orderer holds and it
// would skip the rest (four blasting origins lost 1,236-7,247 deliveries
// in four of five -race runs without it). A path broken further
// up stops here too, and is repaired there, by the node that lost its
// provider. pathPatience is for a path that stopped with its links up (a
// provider that no longer sends here): short enough that the range's head
// is still in the announcers' stores (waiting GiveUp let them move on, and
// the answer's gap was declared lost: 12,000-16,000 deliveries in half the
// 100-node blasts).
func (ms *missing) graftDue(next uint64, nothingYet, far, broken bool, now time.Time) bool {
	if next != ms.seen {
		ms.seen, ms.movedAt = next, now
	}
	switch {
	case !ms.graftAt.IsZero() && now.Sub(ms.graftAt) < graftRetry:
		return false
	case nothingYet:
		return true
	case now.Sub(ms.waits[0].at) < graftGrace:
		return false
	case far:
		return true
	case broken:
		return now.Sub(ms.movedAt) >= graftGrace
	}
	return now.Sub(ms.movedAt) >= pathPatience
}

// announcer returns the next connected announcer, in turn, round and round
// (an answer may be partial, bounded by the answering link's room, and
// trying each once lost the rest for good when the origin had gone quiet);
// NoPeer when none is up, or once GiveUp has passed twice without the
// watermark moving (gaveUp). After the first GiveUp without progress the grafts say
// stalled: the provider brings nothing (two nodes that each took the other
// for provider and both pruned their source, an island that whole answers
// cannot reach once the stores have moved on). While the watermark moves
// the wait starts afresh: a slow eager path is no stalled one. Nor is it
// given up before minAsks grafts since the watermark last moved: a node
// starved of CPU runs its rounds a second apart, and GiveUp's time alone
// had it declare lost, after one graft, ranges whose answers it had not
// yet had the CPU to read (200 nodes in one process: 6 to 19 such
// declarations of 4,000 events each in a 10 s blast).
func (m *Machine) announcer(ms *missing, next uint64, now time.Time) (p PeerID, gaveUp bool) {
	if next > ms.from {
		ms.asked = 0
	}
	if now.Sub(ms.since) > m.cfg.GiveUp {
		switch {
		case next > ms.from:
			ms.since, ms.from = now, next
		case !ms.stalled:
			ms.stalled, ms.since = true, now
		case ms.asked >= minAsks:
			return NoPeer, true
		}
	}
	for range len(ms.peers) {
		p := ms.peers[ms.tried%len(ms.peers)]
		ms.tried++
		if pr := m.peer(p); pr != nil && pr.up {
			ms.asked++
			return p, false
		}
	}
	return NoPeer, false
}
