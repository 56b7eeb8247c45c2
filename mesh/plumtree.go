package mesh

import (
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/relay"
)

// Timing of the epidemic broadcast tree. The grace must stay well under
// ReorderTimeout so that a graft repairs a broken path before the orderer
// gives up on the gap.
const (
	noticeInterval = 5 * time.Millisecond   // lazy notices are batched this long
	graftGrace     = 3 * noticeInterval     // a noticed event missing this long is grafted
	graftRetry     = 50 * noticeInterval    // a graft unanswered this long goes to the next announcer
	pruneRetry     = 20 * noticeInterval    // a link still eager after a PRUNE is pruned again
	storeMaxAge    = 30 * time.Second       // the recent-event store's age bound, at least (BufferTimeout if longer)
	maxWaits       = 64                     // notices remembered per missing (origin, boot)
	sweepInterval  = 500 * time.Millisecond // forgotten links and idle origins are swept this often
)

// tree is a node's per-origin Plumtree (DESIGN.md, "Scale and redundancy").
// For each origin, each link is eager (events go over it in full) or lazy
// (only cumulative IHAVE notices); a link is eager until a duplicate over it
// or a PRUNE makes it lazy, and eager again after a GRAFT either way. Events
// missing after a notice are grafted from the notifying link after a grace.
//
// In Flood mode no link is ever lazy and the node sends no notice and no
// PRUNE; it still grafts on notices and answers GRAFTs, so that a flooding
// node in a tree cluster is served correctly (only less cheaply).
//
// The tree owns no goroutine and reads no clock; every method is called with
// Node.routeMu held, time passed in.
type tree struct {
	self     string
	selfBoot uint64
	flood    bool
	log      hclog.Logger
	stats    *stats
	// next is the router's released watermark (dedup's Orderer.Next).
	next func(origin string, boot uint64) (uint64, bool)

	ownNext uint64 // next seq of this node's own events
	origins map[string]*originTree
	links   map[*relay.Link]*linkTree
	dirty   map[originBoot]uint64 // released since the last notice round: highest seq
	missing map[originBoot]*missing
	store   *recentStore
	own     *ownStore // this node's own events, for GRAFTs

	bufferMax   int // a link's retransmit buffer bound
	idleTimeout time.Duration
	giveUp      time.Duration // how long a missing (origin, boot) is grafted
	lastSweep   time.Time

	// The origin of the previous event, and the last (origin, boot) made
	// dirty: consecutive events mostly share them, and hashing the origin
	// for each lookup was a large part of the router's cost. lastDirty is
	// folded into dirty before anything reads it (flushDirty).
	lastName  string
	lastOT    *originTree
	lastDirty originBoot
	lastUpto  uint64
}

type originBoot struct {
	origin string
	boot   uint64
}

// originTree is the tree of one origin as this node sees it.
type originTree struct {
	// relayed is true for another node's origin in tree mode: its links are
	// lazy unless eager holds them (a neighbour grafted them). This node's
	// own origin starts, as Plumtree does, with every link eager, lazy only
	// if lazy holds it.
	relayed bool
	eager   map[*relay.Link]bool
	// lazy holds the links lazy for this origin, each with the time this
	// node last sent PRUNE on it (zero when the remote pruned first).
	lazy map[*relay.Link]time.Time
	// provider is the link of the last fresh event: a duplicate over it
	// proves no other path, so it is not pruned for it.
	provider   *relay.Link
	boot, upto uint64 // newest boot released and its highest seq, for re-announcing
	last       time.Time
}

// linkTree is what the tree remembers of a link.
type linkTree struct {
	remoteBoot uint64
	announce   bool // re-announce every lazy origin at the next round (reconnected)
}

// missing is an (origin, boot) that notices say exists beyond this node's
// watermark.
type missing struct {
	waits   []wait        // ascending upto; each the first notice of that upto
	links   []*relay.Link // announcers, in order of first notice
	tried   int           // grafts sent; the next goes to links[tried % len(links)]
	graftAt time.Time     // last graft sent, zero if none
	since   time.Time     // first notice: grafts go on for giveUp from it
}

type wait struct {
	upto uint64
	at   time.Time
}

func newTree(n *Node, flood bool, storeMax int) *tree {
	return &tree{
		self: n.id, selfBoot: n.boot, ownNext: n.boot, flood: flood,
		log: n.log.Named("tree"), stats: &n.stats,
		next:    n.order.Next,
		origins: make(map[string]*originTree),
		links:   make(map[*relay.Link]*linkTree),
		dirty:   make(map[originBoot]uint64),
		missing: make(map[originBoot]*missing),
		// The store answers grafts for as long as a link would have kept
		// the events for an absent peer: a lazy link's peer that was cut
		// off must be able to graft what it missed once it is back.
		store:       newRecentStore(storeMax, max(storeMaxAge, n.cfg.BufferTimeout)),
		own:         newOwnStore(storeMax, max(storeMaxAge, n.cfg.BufferTimeout)),
		bufferMax:   n.cfg.BufferMax,
		idleTimeout: 4 * max(n.cfg.BufferTimeout, n.cfg.ReorderTimeout),
		// As long as the orderer waits for a gap: after that, what is
		// still missing was skipped (or never existed to be held for).
		giveUp: max(n.cfg.ReorderTimeout, 2*graftRetry),
	}
}

func (t *tree) origin(name string, now time.Time) *originTree {
	if t.lastOT != nil && name == t.lastName {
		t.lastOT.last = now
		return t.lastOT
	}
	ot := t.origins[name]
	if ot == nil {
		ot = &originTree{relayed: !t.flood && name != t.self,
			eager: make(map[*relay.Link]bool), lazy: make(map[*relay.Link]time.Time)}
		t.origins[name] = ot
	}
	t.lastName, t.lastOT = name, ot
	ot.last = now
	return ot
}

// forgetOrigin drops the tree of an idle origin.
func (t *tree) forgetOrigin(name string) {
	delete(t.origins, name)
	if name == t.lastName {
		t.lastName, t.lastOT = "", nil
	}
}

// markDirty records that (origin, boot) released up to seq since the last
// notice round. It reports whether nothing was dirty before.
func (t *tree) markDirty(k originBoot, seq uint64) bool {
	if t.lastDirty.origin != "" {
		if k == t.lastDirty {
			t.lastUpto = max(t.lastUpto, seq)
			return false
		}
		t.flushDirty()
		t.lastDirty, t.lastUpto = k, seq
		return false
	}
	wasEmpty := len(t.dirty) == 0
	t.lastDirty, t.lastUpto = k, seq
	return wasEmpty
}

// flushDirty folds lastDirty into dirty.
func (t *tree) flushDirty() {
	if k := t.lastDirty; k.origin != "" {
		t.dirty[k] = max(t.dirty[k], t.lastUpto)
		t.lastDirty, t.lastUpto = originBoot{}, 0
	}
}

// released is the watermark of (origin, boot): every seq below it was
// released here. ok is false for a boot this node would refuse.
func (t *tree) released(origin string, boot uint64) (uint64, bool) {
	if origin == t.self {
		return t.ownNext, boot == t.selfBoot
	}
	return t.next(origin, boot)
}

// isLazy reports whether l is lazy for ot's origin.
//
// Relayed origins start lazy, unlike Plumtree's all-eager start: the origin
// pushes its events over every one of its own links, so in a full mesh every
// node already has them first hand, and an all-eager start floods each event
// N² times until the PRUNEs — queued behind that very flood — get through
// (meshbench, 20 nodes: redundancy 12). A node two hops away hears of the
// origin's events by notice and grafts its neighbour once (after the graft
// grace), which builds the tree from the origin outward.
func (ot *originTree) isLazy(l *relay.Link) bool {
	if ot.relayed {
		// A leaf of the origin's tree (the common case: every receiver of
		// a star) has no eager link, and asks the map nothing.
		return len(ot.eager) == 0 || !ot.eager[l]
	}
	if len(ot.lazy) == 0 {
		return false // this node's own events are eager on every link until a PRUNE
	}
	_, ok := ot.lazy[l]
	return ok
}

// setLazy makes l lazy for ot's origin; sentPrune is when this node sent a
// PRUNE on it (zero when the remote pruned).
func (ot *originTree) setLazy(l *relay.Link, sentPrune time.Time) {
	delete(ot.eager, l)
	ot.lazy[l] = sentPrune
}

// setEager makes l eager for ot's origin.
func (ot *originTree) setEager(l *relay.Link) {
	delete(ot.lazy, l)
	if ot.relayed {
		ot.eager[l] = true
	}
}

// skip reports whether an event of ot's origin goes to l as a notice only:
// l is lazy for it and connected. A link that is down gets events in full,
// whether eager or lazy, as with flooding: its retransmit buffer keeps them
// for the absent peer, who gets exactly what it missed when it is back (the
// resent copies it already had are duplicates that prune the link again).
// Otherwise an absent peer's backlog would sit only in its parent's buffer,
// and a crash of the parent would lose it.
func (ot *originTree) skip(l *relay.Link) bool {
	return ot.isLazy(l) && l.State() == relay.Connected
}

// emit sends one of this node's own events: in full on eager links, noticed
// on lazy ones. It reports whether notices became due.
func (t *tree) emit(env *envelope, payload []byte, links []*relay.Link, now time.Time) bool {
	ot := t.origin(t.self, now)
	for _, l := range links {
		if !ot.skip(l) {
			l.Send(payload)
		}
	}
	t.ownNext = env.Seq + 1
	t.own.add(env.Seq, payload, now)
	return t.advanced(ot, env, now)
}

// release forwards an event the orderer released: in full on the eager links
// (and those down) not on its path and not the one it came over; the lazy
// ones get a notice at the next round. It reports whether notices became due.
func (t *tree) release(in *inbound, links []*relay.Link, now time.Time) bool {
	env := &in.env
	ot := t.origin(env.Origin, now)
	var payload []byte
	for _, l := range links {
		if l == in.from || ot.skip(l) {
			continue
		}
		if id := l.RemoteID(); id != "" && slices.Contains(env.Path, id) {
			continue
		}
		if payload == nil {
			env.Path = append(env.Path, t.self)
			payload = encodeEnvelope(env)
		}
		l.Send(payload)
		t.stats.forwarded.Add(1)
	}
	if payload != nil {
		t.store.add(env, payload, true, now)
	} else {
		t.store.add(env, in.raw, false, now)
	}
	return t.advanced(ot, env, now)
}

func (t *tree) advanced(ot *originTree, env *envelope, now time.Time) bool {
	switch {
	case env.Boot > ot.boot:
		ot.boot, ot.upto = env.Boot, env.Seq
	case env.Boot == ot.boot && env.Seq > ot.upto:
		ot.upto = env.Seq
	}
	if t.flood || !ot.relayed && len(ot.lazy) == 0 {
		return false
	}
	return t.markDirty(originBoot{env.Origin, env.Boot}, env.Seq)
}

// fresh records the link a fresh event of origin came over.
func (t *tree) fresh(origin string, l *relay.Link, now time.Time) {
	t.origin(origin, now).provider = l
}

// duplicate handles an event of origin that arrived again, over l: another
// path delivered it first, so l need not carry origin's events in full. The
// link is pruned (and pruned again, at most every pruneRetry, while
// duplicates keep coming over it: the two sides' views crossed).
func (t *tree) duplicate(origin string, l *relay.Link, now time.Time) {
	if t.flood || origin == t.self {
		return
	}
	ot := t.origin(origin, now)
	if l == ot.provider {
		return
	}
	if l.RemoteID() == origin && ot.provider != nil {
		// The origin's own link is never pruned: one hop is the best path
		// there is, and a full mesh then settles on the origin's star, where
		// nothing is forwarded (a forwarder cannot hold back its upstream,
		// so its buffer is where a burst would overflow). The link that
		// happened to win the race is pruned instead.
		l, ot.provider = ot.provider, l
	}
	if sent, lazy := ot.lazy[l]; lazy && now.Sub(sent) < pruneRetry {
		return
	}
	ot.setLazy(l, now)
	b, err := encodeValue(&pruneMsg{Kind: kindPrune, Origin: origin})
	if err != nil {
		return
	}
	l.Send(b)
	t.stats.prunes.Add(1)
}

// prune handles a PRUNE from l: origin's events go to l as notices only.
func (t *tree) prune(m *pruneMsg, l *relay.Link, now time.Time) {
	if t.flood {
		return
	}
	ot := t.origin(m.Origin, now)
	if _, pruned := ot.lazy[l]; !pruned {
		ot.setLazy(l, time.Time{})
	}
}

// graft handles a GRAFT from l: l is eager for the origin again, and gets
// what the store holds of (origin, boot) from seq From on, in order, with
// this node on the path. What the store lacks is counted; the grafter falls
// back on another neighbour's notice.
func (t *tree) graft(m *graftMsg, l *relay.Link, now time.Time) {
	ot := t.origin(m.Origin, now)
	ot.setEager(l)
	next, ok := t.released(m.Origin, m.Boot)
	if !ok || next <= m.From {
		return
	}
	lo, hi := m.From, next-1
	if span := uint64(len(t.store.ring)); hi-lo+1 > span {
		t.stats.graftMisses.Add(hi - span + 1 - lo)
		lo = hi - span + 1
	}
	// Never more than the link's buffer has room for: an answer that
	// overflowed it would drop the oldest events, the ones asked for. The
	// grafter asks again (this link or another) for what is still missing.
	room := t.bufferMax - l.Buffered()
	for seq := lo; seq <= hi && room > 0; seq++ {
		p := t.resendable(eventKey{m.Origin, m.Boot, seq}, now)
		if p == nil {
			t.stats.graftMisses.Add(1)
			continue
		}
		l.Send(p)
		room--
		t.stats.graftResent.Add(1)
	}
}

// resendable returns event k's payload with this node on its path, as a
// GRAFT sends it, from the own-event store or the recent-event store; nil
// if neither has it. The payload is the caller's to send, never to modify.
func (t *tree) resendable(k eventKey, now time.Time) []byte {
	if k.origin == t.self { // the graft's released check says the boot is this one
		return t.own.get(k.seq, now)
	}
	e := t.store.get(k, now) // a copy: the link keeps what it is sent
	switch {
	case e == nil:
		return nil
	case e.pathed:
		return e.payload
	}
	var env envelope
	if err := parseEnvelopeInto(&env, nil, e.payload, nil); err != nil {
		return nil // cannot be: it was parsed on arrival
	}
	if n := len(env.Path); n == 0 || env.Path[n-1] != t.self {
		env.Path = append(env.Path, t.self)
	}
	p := encodeEnvelope(&env)
	t.store.repath(k, p, now) // the next GRAFT sends it as it is
	return p
}

// ihave handles a notice batch from l. It reports whether an (origin, boot)
// is now missing, so that the caller makes sure the graft timer runs.
func (t *tree) ihave(m *ihaveMsg, l *relay.Link, now time.Time) bool {
	due := false
	for _, e := range m.Entries {
		if e.Origin == t.self {
			continue
		}
		if next, ok := t.released(e.Origin, e.Boot); !ok || next > e.Upto {
			continue
		}
		k := originBoot{e.Origin, e.Boot}
		ms := t.missing[k]
		if ms == nil {
			ms = &missing{since: now}
			t.missing[k] = ms
		}
		switch n := len(ms.waits); {
		case n == 0 || ms.waits[n-1].upto < e.Upto && n < maxWaits:
			ms.waits = append(ms.waits, wait{e.Upto, now})
		case ms.waits[n-1].upto < e.Upto:
			ms.waits[n-1].upto = e.Upto // full: merge, which can only graft sooner
		}
		if !slices.Contains(ms.links, l) {
			ms.links = append(ms.links, l)
		}
		due = true
	}
	return due
}

// linkUp notes a completed handshake on l. A remote that restarted has
// forgotten its tree: the link is eager again for every origin. Either way,
// the lazy origins are re-announced on it at the next round, since notices
// are not sent while a link is down.
func (t *tree) linkUp(l *relay.Link, remoteBoot uint64) bool {
	lt := t.links[l]
	if lt == nil {
		lt = &linkTree{remoteBoot: remoteBoot}
		t.links[l] = lt
	}
	if lt.remoteBoot != remoteBoot {
		lt.remoteBoot = remoteBoot
		for _, ot := range t.origins {
			delete(ot.lazy, l)
			delete(ot.eager, l)
			if ot.provider == l {
				ot.provider = nil
			}
		}
	}
	lt.announce = !t.flood
	return lt.announce
}

// forgetLink drops what the tree knows of a link closed for good.
func (t *tree) forgetLink(l *relay.Link) {
	delete(t.links, l)
	for _, ot := range t.origins {
		delete(ot.lazy, l)
		delete(ot.eager, l)
		if ot.provider == l {
			ot.provider = nil
		}
	}
	for _, ms := range t.missing {
		ms.links = slices.DeleteFunc(ms.links, func(x *relay.Link) bool { return x == l })
	}
}

// counts returns the (origin, link) pairs that are eager and lazy, over
// the origins the tree knows (this node included) and the current links,
// leaving out a link to the origin itself.
func (t *tree) counts(links []*relay.Link) (eager, lazy int) {
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = l.RemoteID()
	}
	for name, ot := range t.origins {
		for i, l := range links {
			switch {
			case ids[i] == name:
			case ot.isLazy(l):
				lazy++
			default:
				eager++
			}
		}
	}
	return eager, lazy
}
