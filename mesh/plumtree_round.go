package mesh

import (
	"time"

	"github.com/verbosemesh/verbose/relay"
)

// treeLoop runs the tree's rounds: every noticeInterval while there is work
// (notices due, events missing), and not at all while there is none, so an
// idle node costs no wake-ups.
func (n *Node) treeLoop() {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		select {
		case <-n.stop:
			timer.Stop()
			return
		case <-n.treeKick:
			if !armed {
				timer.Reset(noticeInterval)
				armed = true
			}
			continue
		case <-timer.C:
			armed = false
		}
		links := n.links()
		n.routeMu.Lock()
		again := n.tree.round(links, time.Now())
		n.routeMu.Unlock()
		if again && !armed {
			timer.Reset(noticeInterval)
			armed = true
		}
	}
}

// kickTree makes sure a tree round is scheduled.
func (n *Node) kickTree() {
	select {
	case n.treeKick <- struct{}{}:
	default:
	}
}

// round sends the notices due, grafts what has been missing for the grace,
// and now and then forgets closed links and idle origins. It reports whether
// another round is needed (events still missing).
func (t *tree) round(links []*relay.Link, now time.Time) bool {
	t.notices(links)
	t.grafts(now)
	if now.Sub(t.lastSweep) >= sweepInterval {
		t.sweep(links, now)
	}
	return len(t.missing) > 0
}

// notices sends, on each connected link, one IHAVE batch naming the
// (origin, boot) released since the last round for which the link is lazy
// (all lazy origins after a reconnect). A link that is down gets none: it
// would only fill its retransmit buffer; it is re-announced when it is back.
// (The handshake's report comes after the link is Connected, so the kick
// of linkUp finds it up.)
func (t *tree) notices(links []*relay.Link) {
	t.flushDirty()
	if t.flood {
		clear(t.dirty)
		return
	}
	for _, l := range links {
		lt := t.links[l]
		announce := lt != nil && lt.announce
		if len(t.dirty) == 0 && !announce {
			continue
		}
		if l.State() != relay.Connected {
			continue
		}
		id := l.RemoteID()
		var entries []notice
		if announce {
			lt.announce = false
			for name, ot := range t.origins {
				if name != id && ot.boot != 0 && ot.isLazy(l) {
					entries = append(entries, notice{Origin: name, Boot: ot.boot, Upto: ot.upto})
				}
			}
		}
		for k, upto := range t.dirty {
			if ot := t.origins[k.origin]; k.origin != id && ot != nil && ot.isLazy(l) {
				entries = append(entries, notice{Origin: k.origin, Boot: k.boot, Upto: upto})
			}
		}
		for len(entries) > 0 {
			batch := entries[:min(len(entries), maxNoticeEntries)]
			entries = entries[len(batch):]
			b, err := encodeValue(&ihaveMsg{Kind: kindIHave, Entries: batch})
			if err != nil {
				t.log.Error("cannot encode a notice", "error", err)
				break
			}
			l.Send(b)
			t.stats.notices.Add(1)
		}
	}
	clear(t.dirty)
}

// grafts sends GRAFT for each (origin, boot) noticed beyond the watermark
// for longer than the grace: to the first announcer, then, each graftRetry
// the events are still missing (the answer was partial, or the announcer's
// store had lost them), to the next, round and round, for as long as the
// orderer waits for a gap (giveUp). After that, or with no announcer up, the
// entry is dropped; a later notice starts it again.
func (t *tree) grafts(now time.Time) {
	for k, ms := range t.missing {
		next, ok := t.released(k.origin, k.boot)
		if !ok {
			delete(t.missing, k)
			continue
		}
		i := 0
		for i < len(ms.waits) && ms.waits[i].upto < next {
			i++
		}
		ms.waits = ms.waits[i:]
		if len(ms.waits) == 0 {
			delete(t.missing, k)
			continue
		}
		// The first graft goes after the grace; another only once the last
		// has had time to be answered over a slow link (retrying every grace
		// made a high-latency node graft everyone, each answer a burst).
		// No grace when nothing of the boot ever came here: no eager path
		// brings it (a node two hops from a new origin, or a new boot), and
		// waiting only delays its first events by the grace at every hop.
		grace := graftGrace
		if next == k.boot {
			grace = 0
		}
		if now.Sub(ms.waits[0].at) < grace || (!ms.graftAt.IsZero() && now.Sub(ms.graftAt) < graftRetry) {
			continue
		}
		// Announcers in turn, round and round: an answer may be partial
		// (bounded by the answering link's room), and trying each once
		// lost the rest for good when the origin had gone quiet (no new
		// notice started it over).
		var l *relay.Link
		if now.Sub(ms.since) <= t.giveUp {
			for range len(ms.links) {
				c := ms.links[ms.tried%len(ms.links)]
				ms.tried++
				if c.State() == relay.Connected {
					l = c
					break
				}
			}
		}
		if l == nil {
			delete(t.missing, k)
			continue
		}
		b, err := encodeValue(&graftMsg{Kind: kindGraft, Origin: k.origin, Boot: k.boot, From: next})
		if err != nil {
			continue
		}
		l.Send(b)
		// The grafter does not make l eager for the origin: the events flow
		// from l to here, and sending them back would only make duplicates.
		ms.graftAt = now
		t.stats.grafts.Add(1)
		t.log.Debug("graft", "origin", k.origin, "boot", k.boot, "from", next, "peer", l.RemoteID())
	}
}

// sweep forgets links that are gone and origins idle for longer than the
// dedup state would remember them, and expires old stored events.
func (t *tree) sweep(links []*relay.Link, now time.Time) {
	t.lastSweep = now
	live := make(map[*relay.Link]bool, len(links))
	for _, l := range links {
		live[l] = true
	}
	for l := range t.links {
		if !live[l] {
			t.forgetLink(l)
		}
	}
	for name, ot := range t.origins {
		for l := range ot.lazy {
			if !live[l] {
				delete(ot.lazy, l)
			}
		}
		for l := range ot.eager {
			if !live[l] {
				delete(ot.eager, l)
			}
		}
		if ot.provider != nil && !live[ot.provider] {
			ot.provider = nil
		}
		if name != t.self && now.Sub(ot.last) > t.idleTimeout {
			t.forgetOrigin(name)
		}
	}
	t.store.expireAt(now)
	t.own.expireAt(now)
}
