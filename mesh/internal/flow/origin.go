package flow

import (
	"slices"
	"time"
)

// origin is the flow state of one origin's events: the credit each link
// gave this node, the events that wait (one FIFO for all targets, each entry
// naming the targets it still waits for), and per boot the receiving side:
// which links bring the events and what this node granted them.
type origin[T any] struct {
	name string
	seen bool // an event or grant since the last sweep
	idle int  // sweeps since it was last seen

	credit    []credit // by Peer: how far this node may send there
	held      []entry[T]
	head      int    // held[:head] are gone
	waits     []int  // by Peer: held entries that still wait for it
	waitLocal int    // held entries that still wait for the handlers
	catchup   []span // by Peer: stored events to resend first (a GRAFT)
	maybes    []int  // by Peer: held entries kept for it tentatively
	boots     []*bootFlow
}

// span is a GRAFT's answer still to resend to a peer: the payloads of
// seqs next, next+1, … of boot (nil: the caller's stores no longer held it).
type span struct {
	boot, next uint64
	rest       [][]byte
}

// credit is how far a link lets this node send an origin's events: seqs up
// to upto of boot. set is false before the first send or grant.
type credit struct {
	set  bool
	boot uint64
	upto uint64
}

// entry is an event that waits for some target.
type entry[T any] struct {
	boot, seq uint64
	to        []Peer // links it still waits for
	maybe     []Peer // links it is kept for, tentatively (never sent from here)
	local     bool   // it still waits for the handlers
	at        time.Time
	item      T
}

// bootFlow is the receiving side of one (origin, boot).
type bootFlow struct {
	boot    uint64
	next    uint64 // one past the highest seq released
	held    int    // held entries of this boot
	granted uint64 // the consumed watermark at the last grant
	ups     []Peer // links that bring this boot's events
}

// bootOf returns the flow of (o, boot), made on its first event (seq); a
// newer boot lets go of older ones that hold nothing.
func (o *origin[T]) bootOf(boot, seq uint64) *bootFlow {
	for _, b := range o.boots {
		if b.boot == boot {
			return b
		}
	}
	o.boots = slices.DeleteFunc(o.boots, func(b *bootFlow) bool { return b.boot < boot && b.held == 0 })
	b := &bootFlow{boot: boot, next: seq, granted: seq}
	o.boots = append(o.boots, b)
	return b
}

// watermark is the first seq of b not yet consumed: the oldest held one, or
// one past the highest released.
func (o *origin[T]) watermark(b *bootFlow) uint64 {
	if b.held > 0 {
		for i := o.head; i < len(o.held); i++ {
			if o.held[i].boot == b.boot {
				return o.held[i].seq
			}
		}
	}
	return b.next
}

// waitsFor is how many of o's events wait for p: held ones, and one more
// for a resend in progress.
func (o *origin[T]) waitsFor(p Peer) int {
	n := 0
	if p >= 0 && int(p) < len(o.waits) {
		n = o.waits[p]
	}
	if o.catchupOf(p) != nil {
		n++
	}
	return n
}

// catchupOf returns p's resend in progress, nil if none.
func (o *origin[T]) catchupOf(p Peer) *span {
	if p < 0 || int(p) >= len(o.catchup) || len(o.catchup[p].rest) == 0 {
		return nil
	}
	return &o.catchup[p]
}

func (o *origin[T]) startCatchup(p Peer, s span) {
	for int(p) >= len(o.catchup) {
		o.catchup = append(o.catchup, span{})
	}
	o.catchup[p] = s
}

func (o *origin[T]) endCatchup(p Peer) {
	if int(p) < len(o.catchup) {
		o.catchup[p] = span{}
	}
}

// busy reports whether some event of o waits: held, or to resend.
func (o *origin[T]) busy() bool {
	if o.len() > 0 {
		return true
	}
	for i := range o.catchup {
		if o.catchupOf(Peer(i)) != nil {
			return true
		}
	}
	return false
}

func (o *origin[T]) creditOf(p Peer) *credit {
	for int(p) >= len(o.credit) {
		o.credit = append(o.credit, credit{})
	}
	return &o.credit[p]
}

// hold queues e, whose slices it keeps, and returns it; the pointer is
// valid until the next hold.
func (o *origin[T]) hold(e entry[T]) *entry[T] {
	for _, p := range e.to {
		for int(p) >= len(o.waits) {
			o.waits = append(o.waits, 0)
		}
		o.waits[p]++
	}
	for _, p := range e.maybe {
		for int(p) >= len(o.maybes) {
			o.maybes = append(o.maybes, 0)
		}
		o.maybes[p]++
	}
	if e.local {
		o.waitLocal++
	}
	o.held = append(o.held, e)
	return &o.held[len(o.held)-1]
}

func (o *origin[T]) len() int { return len(o.held) - o.head }

// compact lets the FIFO's front go once it is most of the slice.
func (o *origin[T]) compact() {
	switch {
	case o.head == len(o.held):
		o.held, o.head = o.held[:0], 0
	case o.head >= 64 && o.head*2 >= len(o.held):
		n := copy(o.held, o.held[o.head:])
		clear(o.held[n:])
		o.held, o.head = o.held[:n], 0
	}
}

// dropTarget stops waiting for p: what waited for it goes nowhere. It
// returns how many held events did.
func (o *origin[T]) dropTarget(p Peer) int {
	o.endCatchup(p)
	if int(p) >= len(o.waits) || o.waits[p] == 0 {
		return 0
	}
	n := o.waits[p]
	for i := o.head; i < len(o.held); i++ {
		e := &o.held[i]
		if k := slices.Index(e.to, p); k >= 0 {
			e.to = slices.Delete(e.to, k, k+1)
		}
	}
	o.waits[p] = 0
	return n
}

func (o *origin[T]) maybeFor(p Peer) int {
	if p < 0 || int(p) >= len(o.maybes) {
		return 0
	}
	return o.maybes[p]
}

// anyMaybe reports whether some held entry is kept for a tentative peer:
// a look at one count per peer, not at every held entry (a slow link can
// have a Window of them).
func (o *origin[T]) anyMaybe() bool {
	for _, n := range o.maybes {
		if n > 0 {
			return true
		}
	}
	return false
}

// oldestMaybe returns when the oldest held entry that is kept for a
// tentative peer was held.
func (o *origin[T]) oldestMaybe() (time.Time, bool) {
	if !o.anyMaybe() {
		return time.Time{}, false
	}
	for i := o.head; i < len(o.held); i++ {
		if len(o.held[i].maybe) > 0 {
			return o.held[i].at, true
		}
	}
	return time.Time{}, false
}

// dropMaybe keeps nothing for p tentatively any more.
func (o *origin[T]) dropMaybe(p Peer) {
	if o.maybeFor(p) == 0 {
		return
	}
	for i := o.head; i < len(o.held); i++ {
		e := &o.held[i]
		if k := slices.Index(e.maybe, p); k >= 0 {
			e.maybe = slices.Delete(e.maybe, k, k+1)
		}
	}
	o.maybes[p] = 0
}

// forgetUpstream forgets that p brings this origin's events.
func (o *origin[T]) forgetUpstream(p Peer) {
	for _, b := range o.boots {
		if k := slices.Index(b.ups, p); k >= 0 {
			b.ups = slices.Delete(b.ups, k, k+1)
		}
	}
}

// Arrived notes that an event of (origin, boot) came over link from, fresh
// or not. A link that starts bringing a boot's events is granted at once.
func (m *Machine[T]) Arrived(from Peer, origin string, boot, seq uint64, now time.Time) {
	if m.peer(from) == nil {
		return
	}
	o := m.origin(origin, now)
	b := o.bootOf(boot, seq)
	if slices.Contains(b.ups, from) {
		return
	}
	b.ups = append(b.ups, from)
	c := max(o.watermark(b), b.granted)
	b.granted = c
	m.out.Grants = append(m.out.Grants, Grant{To: from, Origin: origin, Boot: boot, Upto: c + m.cfg.Window - 1})
}

// consumed grants b's upstream links more once the consumed watermark has
// moved a quarter of the Window since the last grant.
func (m *Machine[T]) consumed(o *origin[T], b *bootFlow) {
	if len(b.ups) == 0 {
		return
	}
	c := o.watermark(b)
	if c < b.granted+max(m.cfg.Window/4, 1) {
		return
	}
	b.granted = c
	for _, p := range b.ups {
		if pr := m.peer(p); pr != nil && pr.up {
			m.out.Grants = append(m.out.Grants, Grant{To: p, Origin: o.name, Boot: b.boot, Upto: c + m.cfg.Window - 1})
		}
	}
}
