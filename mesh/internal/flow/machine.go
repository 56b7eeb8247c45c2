package flow

import (
	"slices"
	"time"
)

// Peer names one of the caller's links (the caller's numbering), or Local.
type Peer int32

// Local is this node's handlers, a target like a link.
const Local Peer = -2

// Rooms is what the caller says of the room its links and handlers have.
type Rooms interface {
	// LinkRoom is how many more credited sends p's retransmit buffer takes
	// now (what Ready has not carried out yet is counted by the machine).
	LinkRoom(p Peer) int
	// HandlerRoom is how many events the handler queue takes now.
	HandlerRoom() int
	// HandlersTaken counts the events the handlers have taken, ever.
	HandlersTaken() uint64
}

// Config configures a Machine.
type Config struct {
	// Window is how far past its consumed watermark this node lets a
	// sender go, per (origin, boot): what it grants.
	Window uint64
	// Timeout declares a target that takes nothing this long slow.
	Timeout time.Duration
	// Drop never holds an event for this node's handlers (the handler
	// queue drops past its bound) and holds at most Window events per origin
	// for its links, dropping the oldest beyond.
	Drop bool
	// IdleTimeout forgets an origin with nothing held and no event for
	// this long.
	IdleTimeout time.Duration
	// MaybeTimeout bounds how long an event is kept for a tentative peer
	// (Release): a peer that neither shows the origin nor grafts within it
	// is not waited for, for that event. Without the bound, a tentative
	// peer that learns of the origin only from events still to come (a
	// link made while the origin's emitter waits) would hold the emitter
	// until Timeout. 0: Timeout.
	MaybeTimeout time.Duration
	Rooms        Rooms
}

// Decision is Release's answer: where the event goes now. Send is valid
// until the next call. Held says that the event waits for some target: the
// caller hands it over with Keep before its next input.
type Decision struct {
	Send    []Peer
	Deliver bool
	Held    bool
}

// Ready is what the caller must carry out, in order, before its next input.
type Ready[T any] struct {
	Sends    []Send[T]
	Delivers []T      // to this node's handlers, in order
	Grants   []Grant  // to send; batch them per link
	Notices  []Notice // targets declared slow, or taking again
	Dropped  []Drop   // with Config.Drop: events dropped for a link
	Resends  []Resend // a GRAFT's answer, to send (see Graft)
}

// Resend is an event of a GRAFT's answer the caller sends to To: (Origin,
// Boot, Seq), whose payload the caller handed to Graft (nil if its stores
// no longer held it: a miss).
type Resend struct {
	To      Peer
	Origin  string
	Boot    uint64
	Seq     uint64
	Payload []byte
}

// Send is an item to send on a link.
type Send[T any] struct {
	To   Peer
	Item T
}

// Grant is a GRANT to send: To may send Origin's events of Boot up to Upto.
type Grant struct {
	To     Peer
	Origin string
	Boot   uint64
	Upto   uint64
}

// Notice says that a target (a peer, or Local) was declared slow (Slow) or
// takes events again (!Slow).
type Notice struct {
	Target Peer
	Slow   bool
}

// Drop counts events dropped for a link with Config.Drop.
type Drop struct {
	To Peer
	N  int
}

// Machine is one node's flow control. The zero value is not usable: New.
type Machine[T any] struct {
	cfg     Config
	peers   []peer // by Peer
	local   target
	origins map[string]*origin[T]
	waiting map[*origin[T]]struct{} // origins with held events
	// The origin of the previous call: consecutive events mostly share it.
	lastName   string
	lastOrigin *origin[T]

	out       Ready[T]
	send      []Peer    // Decision.Send, reused
	pending   []int     // by Peer: sends in out, not yet carried out
	keep      *entry[T] // the entry Keep gives the item to
	lastSweep time.Time
	gen       uint64 // counts forgotten origins and peers (Gen)
	slowN     int    // targets declared slow
}

// target is a consumer's slow-consumer state.
type target struct {
	blocked bool      // something waits on it
	since   time.Time // it last took something, or began to be waited on
	slow    bool
	taken   uint64 // Local: HandlersTaken when since was set
}

type peer struct {
	live, up bool
	window   uint64 // the remote's Window: what may go before its first grant
	target
}

// New returns a machine with no peer.
func New[T any](cfg Config) *Machine[T] {
	cfg.Window = max(cfg.Window, 4)
	return &Machine[T]{cfg: cfg, origins: make(map[string]*origin[T]), waiting: make(map[*origin[T]]struct{})}
}

// Ready returns the outputs since the last call; the slices are reused by
// the next input.
func (m *Machine[T]) Ready() Ready[T] {
	r := m.out
	m.out = Ready[T]{Sends: r.Sends[:0], Delivers: r.Delivers[:0], Grants: r.Grants[:0], Notices: r.Notices[:0],
		Dropped: r.Dropped[:0], Resends: r.Resends[:0]}
	clear(m.pending)
	return r
}

// AddPeer starts tracking link p, down until PeerUp.
func (m *Machine[T]) AddPeer(p Peer) {
	for int(p) >= len(m.peers) {
		m.peers = append(m.peers, peer{})
	}
	m.peers[p] = peer{live: true}
}

// PeerUp notes that p is connected; window is the remote's Window (its
// handshake's). Credits start afresh: the remote may have restarted. A slow
// peer stays slow until it takes something.
func (m *Machine[T]) PeerUp(p Peer, window uint64, now time.Time) {
	pr := m.peer(p)
	if pr == nil {
		return
	}
	pr.up, pr.window = true, max(window, 1)
	pr.blocked = false
	for _, o := range m.origins {
		if int(p) < len(o.credit) {
			o.credit[p] = credit{}
		}
		o.endCatchup(p) // the remote grafts again what it still misses
	}
	m.Resume(now)
}

// PeerDown notes that p lost its connection: what waits for it goes into
// its retransmit buffer now.
func (m *Machine[T]) PeerDown(p Peer, now time.Time) {
	if pr := m.peer(p); pr != nil {
		pr.up, pr.blocked = false, false
		for _, o := range m.origins {
			o.endCatchup(p)
			o.dropMaybe(p) // it grafts what it misses once it is back
		}
		m.Resume(now)
	}
}

// RemovePeer forgets p: what waited for it goes nowhere. It returns how
// many held events waited for p, for the caller to report.
func (m *Machine[T]) RemovePeer(p Peer, now time.Time) (dropped int) {
	if m.peer(p) == nil {
		return 0
	}
	if m.peers[p].slow {
		m.slowN--
	}
	m.peers[p] = peer{}
	m.gen++
	for o := range m.waiting {
		dropped += o.dropTarget(p)
		o.dropMaybe(p)
	}
	for _, o := range m.origins {
		o.forgetUpstream(p)
		if int(p) < len(o.credit) {
			o.credit[p] = credit{}
		}
	}
	m.Resume(now)
	return dropped
}

func (m *Machine[T]) peer(p Peer) *peer {
	if p < 0 || int(p) >= len(m.peers) || !m.peers[p].live {
		return nil
	}
	return &m.peers[p]
}

func (m *Machine[T]) origin(name string, now time.Time) *origin[T] {
	if m.lastOrigin != nil && name == m.lastName {
		if o := m.lastOrigin; !o.seen {
			o.seen = true
		}
		return m.lastOrigin
	}
	o := m.origins[name]
	if o == nil {
		o = &origin[T]{name: name}
		m.origins[name] = o
	}
	m.lastName, m.lastOrigin = name, o
	o.seen = true
	return o
}

// Release decides where an event goes now: to the targets (the links the
// tree sends it to) that have credit and room and nothing of the origin
// waiting before it, and to the handlers when local and they have room. If
// some target must wait, Held is set and the caller hands the event over
// with Keep at once.
//
// tentative are peers that may need the event but may have it from another
// path (plumtree.Machine.Tentative): it is sent to none of them, but kept
// for them, counting against the origin's Window, until Untarget (the peer
// has it) or Graft (the peer asks for it: it goes from the caller's store).
func (m *Machine[T]) Release(origin string, boot, seq uint64, targets, tentative []Peer, local bool, now time.Time) Decision {
	o := m.origin(origin, now)
	b := o.bootOf(boot, seq)
	b.next = max(b.next, seq+1)
	m.send = m.send[:0]
	var rest []Peer
	for _, p := range targets {
		if o.waitsFor(p) == 0 && m.canSend(o, p, boot, seq, now) {
			m.send = append(m.send, p)
		} else if m.peer(p) != nil {
			rest = append(rest, p)
		}
	}
	var maybe []Peer
	for _, p := range tentative {
		if pr := m.peer(p); pr != nil && pr.up && !pr.slow {
			maybe = append(maybe, p)
			pr.wait(now)
		}
	}
	d := Decision{Send: m.send}
	holdLocal := false
	if local {
		if o.waitLocal == 0 && m.canDeliver(now) {
			d.Deliver = true
		} else {
			holdLocal = true
		}
	}
	if len(rest) == 0 && !holdLocal && len(maybe) == 0 {
		m.consumed(o, b)
		return d
	}
	e := o.hold(entry[T]{boot: boot, seq: seq, to: rest, maybe: maybe, local: holdLocal, at: now})
	b.held++
	m.waiting[o] = struct{}{}
	m.keep, d.Held = e, true
	if m.cfg.Drop {
		m.dropOverflow(o)
	}
	return d
}

// Keep hands over the item of the event Release held.
func (m *Machine[T]) Keep(item T) {
	if m.keep != nil {
		m.keep.item = item
		m.keep = nil
	}
}

// Gen changes whenever the machine forgets an origin or a peer: a caller
// that skips Arrived for an (origin, boot, link) it already reported must
// report it again once Gen has moved.
func (m *Machine[T]) Gen() uint64 { return m.gen }

// Waiting reports whether some event waits for a target.
func (m *Machine[T]) Waiting() bool { return len(m.waiting) > 0 }

// AnySlow reports whether some target is declared slow: the caller resumes
// the machine when the handlers take events, for them to recover.
func (m *Machine[T]) AnySlow() bool { return m.slowN > 0 }

// Pending reports whether Ready has something to carry out.
func (m *Machine[T]) Pending() bool {
	o := &m.out
	return len(o.Sends)+len(o.Delivers)+len(o.Grants)+len(o.Notices)+len(o.Dropped)+len(o.Resends) > 0
}

// Backlog is how many of origin's released events wait for a target (mesh's
// Emit waits while its own origin's is above zero).
func (m *Machine[T]) Backlog(origin string) int {
	if o := m.origins[origin]; o != nil {
		return o.len()
	}
	return 0
}

// canSend reports whether seq of (o, boot) may go to p now, and notes a
// wait on p if not. A link that is down, or slow, takes it without credit.
func (m *Machine[T]) canSend(o *origin[T], p Peer, boot, seq uint64, now time.Time) bool {
	pr := m.peer(p)
	if pr == nil || !pr.up || pr.slow {
		return true
	}
	c := o.creditOf(p)
	switch {
	case !c.set || c.boot < boot:
		*c = credit{set: true, boot: boot, upto: seq + pr.window - 1} // before its first grant
	case c.boot > boot:
		return true // an old boot's straggler: the remote has moved on
	}
	if seq > c.upto || m.cfg.Rooms.LinkRoom(p) <= m.pendingOf(p) {
		pr.wait(now)
		return false
	}
	return true
}

func (m *Machine[T]) pendingOf(p Peer) int {
	if int(p) < len(m.pending) {
		return m.pending[p]
	}
	return 0
}

// sent counts a send to p that Ready carries out.
func (m *Machine[T]) sent(p Peer) {
	for int(p) >= len(m.pending) {
		m.pending = append(m.pending, 0)
	}
	m.pending[p]++
}

// Lost notes that events sent to p were lost on the way (its retransmit
// buffer overflowed, or a GRAFT asked for events no longer stored): p will
// not consume them, so credit that counts them would never come back. p's
// credits start afresh, as on a reconnection: the next events show p the
// gap, which its orderer skips after its grace.
func (m *Machine[T]) Lost(p Peer, now time.Time) {
	if m.peer(p) == nil {
		return
	}
	for _, o := range m.origins {
		if int(p) < len(o.credit) {
			o.credit[p] = credit{}
		}
	}
	m.Resume(now)
}

// Untarget notes that p has origin's events by another path: nothing is
// kept for it any more (see Release's tentative).
func (m *Machine[T]) Untarget(p Peer, origin string, now time.Time) {
	if o := m.origins[origin]; o != nil && o.maybeFor(p) > 0 {
		o.dropMaybe(p)
		m.popDone(o)
	}
}

// Graft notes that p asked for (origin, boot)'s events from seq from on:
// payloads are the answer, seqs from, from+1, … as the caller took them out
// of its stores when the GRAFT came (taken one by one as they went, an
// answer lost its tail whenever the stores, shared by every origin, moved
// on faster than the link took it). They go to p first, before any other of
// the origin's events (Ready.Resends), as credit and room allow; a GRAFT
// grants the remote's Window from from. A later GRAFT's answer replaces
// this one; the link going down or up ends it.
func (m *Machine[T]) Graft(p Peer, origin string, boot, from uint64, payloads [][]byte, now time.Time) {
	pr := m.peer(p)
	if pr == nil || len(payloads) == 0 {
		return
	}
	o := m.origin(origin, now)
	if c := o.creditOf(p); !c.set || c.boot < boot || c.boot == boot && c.upto < from+pr.window-1 {
		*c = credit{set: true, boot: boot, upto: from + pr.window - 1}
	}
	o.dropMaybe(p) // the range covers what was kept for it
	o.startCatchup(p, span{boot: boot, next: from, rest: payloads})
	m.waiting[o] = struct{}{}
	m.advance(o, now)
}

// canDeliver reports whether the handlers take one more event now.
func (m *Machine[T]) canDeliver(now time.Time) bool {
	if m.cfg.Drop || m.local.slow {
		return true
	}
	if m.cfg.Rooms.HandlerRoom()-len(m.out.Delivers) > 0 {
		return true
	}
	if !m.local.blocked {
		m.local.wait(now)
		m.local.taken = m.cfg.Rooms.HandlersTaken()
	}
	return false
}

// refresh notes that a blocked target took something: its wait starts
// afresh. (Only a grant or the handlers' progress ends a slow state.)
func (t *target) refresh(now time.Time) {
	if t.blocked {
		t.since = now
	}
}

func (t *target) wait(now time.Time) {
	if !t.blocked {
		t.blocked, t.since = true, now
	}
}

// Granted handles a GRANT from p.
func (m *Machine[T]) Granted(p Peer, origin string, boot, upto uint64, now time.Time) {
	pr := m.peer(p)
	if pr == nil {
		return
	}
	o := m.origin(origin, now)
	c := o.creditOf(p)
	if c.set && (boot < c.boot || boot == c.boot && upto <= c.upto) {
		return
	}
	*c = credit{set: true, boot: boot, upto: upto}
	m.progress(&pr.target, p, now)
	if o.waitsFor(p) > 0 {
		m.advance(o, now)
	}
}

// progress notes that a target took something: it is waited on afresh, and
// no longer slow.
func (m *Machine[T]) progress(t *target, p Peer, now time.Time) {
	if t.blocked {
		t.since = now
	}
	if t.slow {
		t.slow = false
		m.slowN--
		m.out.Notices = append(m.out.Notices, Notice{Target: p})
	}
}

// Resume looks again at everything held: room may have freed (a link's
// buffer drained, the handlers took events).
//
// The handlers' progress is noted here, as it happens (the caller resumes
// when they take events): noted only by the next Tick, a take just after
// the handlers were first waited on restarted their wait at that Tick, so
// that stuck handlers were declared slow after Timeout instead of
// Timeout/2, together with their senders' verdict on this node.
func (m *Machine[T]) Resume(now time.Time) {
	if taken := m.cfg.Rooms.HandlersTaken(); taken != m.local.taken {
		m.local.taken = taken
		m.progress(&m.local, Local, now)
	}
	for o := range m.waiting {
		m.advance(o, now)
	}
	// A target that nothing waits for any more is not blocked.
	for i := range m.peers {
		if pr := &m.peers[i]; pr.blocked && (!pr.up || !m.waitsOn(Peer(i))) {
			pr.blocked = false
		}
	}
	if m.local.blocked && !m.waitsOn(Local) {
		m.local.blocked = false
	}
}

// waitsOn reports whether some held event waits for p (or Local).
func (m *Machine[T]) waitsOn(p Peer) bool {
	for o := range m.waiting {
		if p == Local && o.waitLocal > 0 || p != Local && o.waitsFor(p)+o.maybeFor(p) > 0 {
			return true
		}
	}
	return false
}

// Tick declares slow the targets that took nothing for Timeout while
// events waited on them, forgets idle origins, and resumes.
func (m *Machine[T]) Tick(now time.Time) {
	if m.local.blocked {
		if taken := m.cfg.Rooms.HandlersTaken(); taken != m.local.taken {
			m.local.taken, m.local.since = taken, now
		}
	}
	for o := range m.waiting {
		m.expireMaybes(o, now)
	}
	m.Resume(now)
	declared := m.declare(&m.local, Local, now)
	// Nothing is held longer than Timeout: what the oldest held event of
	// an origin still waits for is declared slow, even if it took a
	// little since (a trickle would otherwise hold events without bound,
	// and a copy must not outlive what receivers remember of its origin).
	for o := range m.waiting {
		if o.len() == 0 || now.Sub(o.held[o.head].at) < m.cfg.Timeout {
			continue
		}
		e := &o.held[o.head]
		for _, p := range e.to {
			if pr := m.peer(p); pr != nil && pr.up && m.force(&pr.target, p) {
				declared = true
			}
		}
		if e.local && m.force(&m.local, Local) {
			declared = true
		}
		for _, p := range e.maybe {
			if pr := m.peer(p); pr != nil && m.force(&pr.target, p) {
				declared = true
			}
		}
	}
	for i := range m.peers {
		if pr := &m.peers[i]; pr.live && pr.up && m.declare(&pr.target, Peer(i), now) {
			declared = true
		}
	}
	if now.Sub(m.lastSweep) >= m.cfg.IdleTimeout/4 {
		m.sweep(now)
	}
	if declared {
		for i := range m.peers {
			if m.peers[i].slow {
				for o := range m.waiting {
					o.dropMaybe(Peer(i))
				}
			}
		}
		m.Resume(now)
	}
}

func (m *Machine[T]) declare(t *target, p Peer, now time.Time) bool {
	if t.blocked && !t.slow && now.Sub(t.since) >= m.timeoutOf(p) {
		t.slow, t.blocked = true, false
		m.slowN++
		m.out.Notices = append(m.out.Notices, Notice{Target: p, Slow: true})
		return true
	}
	return false
}

// timeoutOf is how long target p may take nothing: Timeout for a link,
// half of it for this node's handlers, so that a node whose handlers are
// stuck stops waiting for them, and grants again, before its senders
// would declare it slow (and overflow its buffer with what they held).
func (m *Machine[T]) timeoutOf(p Peer) time.Duration {
	if p == Local {
		return m.cfg.Timeout / 2
	}
	return m.cfg.Timeout
}

// force declares t slow now, if it is not.
func (m *Machine[T]) force(t *target, p Peer) bool {
	if t.slow {
		return false
	}
	t.slow, t.blocked = true, false
	m.slowN++
	m.out.Notices = append(m.out.Notices, Notice{Target: p, Slow: true})
	return true
}

// NextDeadline is when Tick next has a target to declare slow.
func (m *Machine[T]) NextDeadline() (time.Time, bool) {
	var next time.Time
	ok := false
	consider := func(at time.Time) {
		if !ok || at.Before(next) {
			next, ok = at, true
		}
	}
	if t := &m.local; t.blocked && !t.slow {
		consider(t.since.Add(m.timeoutOf(Local)))
	}
	for i := range m.peers {
		if t := &m.peers[i]; t.live && t.up && t.blocked && !t.slow {
			consider(t.since.Add(m.cfg.Timeout))
		}
	}
	for o := range m.waiting {
		if o.len() > 0 {
			consider(o.held[o.head].at.Add(m.cfg.Timeout))
		}
		if at, ok := o.oldestMaybe(); ok {
			consider(at.Add(m.maybeTimeout()))
		}
	}
	return next, ok
}

func (m *Machine[T]) maybeTimeout() time.Duration {
	if m.cfg.MaybeTimeout > 0 {
		return min(m.cfg.MaybeTimeout, m.cfg.Timeout)
	}
	return m.cfg.Timeout
}

// expireMaybes stops keeping o's events held longer than MaybeTimeout for
// their tentative peers, and lets go of what no target waits for any more.
func (m *Machine[T]) expireMaybes(o *origin[T], now time.Time) {
	if !o.anyMaybe() {
		return
	}
	expired, timeout := false, m.maybeTimeout()
	for i := o.head; i < len(o.held); i++ {
		e := &o.held[i]
		if now.Sub(e.at) < timeout {
			break
		}
		for _, p := range e.maybe {
			o.maybes[p]--
			expired = true
		}
		e.maybe = nil
	}
	if expired {
		m.popDone(o)
	}
}

// Slow reports whether target p (or Local) is declared slow.
func (m *Machine[T]) Slow(p Peer) bool {
	if p == Local {
		return m.local.slow
	}
	pr := m.peer(p)
	return pr != nil && pr.slow
}

// advance sends and delivers what o holds, in order per target, as far as
// credit and room go, and lets go of what went everywhere.
func (m *Machine[T]) advance(o *origin[T], now time.Time) {
	for p := range max(len(o.waits), len(o.catchup)) {
		if o.waitsFor(Peer(p)) > 0 {
			m.advancePeer(o, Peer(p), now)
		}
	}
	if o.waitLocal > 0 {
		for i := o.head; i < len(o.held) && o.waitLocal > 0; i++ {
			e := &o.held[i]
			if !e.local {
				continue
			}
			if !m.canDeliver(now) {
				break
			}
			m.out.Delivers = append(m.out.Delivers, e.item)
			e.local = false
			o.waitLocal--
			m.local.refresh(now)
		}
	}
	m.popDone(o)
}

func (m *Machine[T]) advancePeer(o *origin[T], p Peer, now time.Time) {
	if c := o.catchupOf(p); c != nil {
		for ; len(c.rest) > 0; c.next, c.rest = c.next+1, c.rest[1:] {
			// Never more than the link's room, even down or slow: an
			// answer that overflowed the buffer would push out the
			// events it is made of.
			if m.cfg.Rooms.LinkRoom(p) <= m.pendingOf(p) {
				if pr := m.peer(p); pr != nil && pr.up {
					pr.wait(now)
				}
				return
			}
			if !m.canSend(o, p, c.boot, c.next, now) {
				return
			}
			m.out.Resends = append(m.out.Resends, Resend{To: p, Origin: o.name, Boot: c.boot, Seq: c.next, Payload: c.rest[0]})
			c.rest[0] = nil // the caller's now
			m.sent(p)
			if pr := m.peer(p); pr != nil {
				pr.refresh(now)
			}
		}
	}
	if int(p) >= len(o.waits) {
		return
	}
	for i := o.head; i < len(o.held) && o.waits[p] > 0; i++ {
		e := &o.held[i]
		k := slices.Index(e.to, p)
		if k < 0 {
			continue
		}
		if !m.canSend(o, p, e.boot, e.seq, now) {
			return
		}
		m.out.Sends = append(m.out.Sends, Send[T]{To: p, Item: e.item})
		m.sent(p)
		e.to = slices.Delete(e.to, k, k+1)
		o.waits[p]--
		if pr := m.peer(p); pr != nil {
			pr.refresh(now)
		}
	}
}

// popDone lets go of the held events at the front that went everywhere,
// and grants what that consumed, once per boot.
func (m *Machine[T]) popDone(o *origin[T]) {
	var last *bootFlow
	for o.head < len(o.held) {
		e := &o.held[o.head]
		if len(e.to) > 0 || e.local || len(e.maybe) > 0 {
			break
		}
		b := o.bootOf(e.boot, e.seq)
		if last != nil && b != last {
			m.consumed(o, last)
		}
		last = b
		b.held--
		*e = entry[T]{}
		o.head++
	}
	if last != nil {
		m.consumed(o, last)
	}
	o.compact()
	if !o.busy() {
		delete(m.waiting, o)
	}
}

// dropOverflow, with Config.Drop, lets go of o's oldest held events beyond
// Window: their links lose them (reported).
func (m *Machine[T]) dropOverflow(o *origin[T]) {
	for uint64(o.len()) > m.cfg.Window {
		e := &o.held[o.head]
		for _, p := range e.to {
			o.waits[p]--
			m.out.Dropped = append(m.out.Dropped, Drop{To: p, N: 1})
		}
		e.to, e.maybe = nil, nil
		if e.local { // Drop delivers at once; kept for symmetry
			e.local = false
			o.waitLocal--
		}
		m.popDone(o)
	}
}

// sweep forgets origins with nothing held and no event for IdleTimeout.
func (m *Machine[T]) sweep(now time.Time) {
	m.lastSweep = now
	for name, o := range m.origins {
		if o.seen || o.busy() {
			o.seen, o.idle = false, 0
			continue
		}
		// Unseen for four sweeps, at least IdleTimeout/4 apart.
		if o.idle++; o.idle >= 4 {
			delete(m.origins, name)
			m.gen++
			if name == m.lastName {
				m.lastName, m.lastOrigin = "", nil
			}
		}
	}
}

// Waiter is a target that an origin's oldest held event still waits for.
type Waiter struct {
	Peer      Peer // a link, or Local
	Tentative bool // kept for the link tentatively (Release's tentative)
	Up        bool // the link is connected (Local: always)
	Slow      bool
	// Credit is how far the link lets this node send the event's boot;
	// Granted is false before its first grant or send.
	Credit  uint64
	Granted bool
	// Since is when the target last took something, or began to be
	// waited on; zero if it is not waited on as blocked.
	Since time.Time
}

// Oldest describes origin's oldest held event: its seq, when it was held,
// and the targets it still waits for. It says why the origin's emitter
// waits; ok is false when nothing of origin is held.
func (m *Machine[T]) Oldest(origin string) (seq uint64, at time.Time, waits []Waiter, ok bool) {
	o := m.origins[origin]
	if o == nil || o.len() == 0 {
		return 0, time.Time{}, nil, false
	}
	e := &o.held[o.head]
	link := func(p Peer, tentative bool) Waiter {
		w := Waiter{Peer: p, Tentative: tentative}
		if int(p) < len(o.credit) {
			if c := o.credit[p]; c.set && c.boot == e.boot {
				w.Credit, w.Granted = c.upto, true
			}
		}
		if pr := m.peer(p); pr != nil {
			w.Up, w.Slow = pr.up, pr.slow
			if pr.blocked {
				w.Since = pr.since
			}
		}
		return w
	}
	for _, p := range e.to {
		waits = append(waits, link(p, false))
	}
	for _, p := range e.maybe {
		waits = append(waits, link(p, true))
	}
	if e.local {
		w := Waiter{Peer: Local, Up: true, Slow: m.local.slow}
		if m.local.blocked {
			w.Since = m.local.since
		}
		waits = append(waits, w)
	}
	return e.seq, e.at, waits, true
}
