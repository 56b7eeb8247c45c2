package dedup

import (
	"math"
	"strconv"
	"time"
)

// Orderer releases each (origin, boot)'s events in seq order, exactly once.
// The zero value is not usable; call New. Not safe for concurrent use.
type Orderer[T any] struct {
	cfg     Config
	origins map[string]*originState[T]
	// pending lists the boots with held events, so that Tick and NextDeadline
	// cost the number of open gaps, not the number of origins.
	pending []*bootState[T]
	stats   Stats
	maxSkip int // skipped ranges kept per boot: maxSkipRanges, lowered by tests
	// last is the state of the origin of the previous lookup: consecutive
	// arrivals mostly share an origin, and the lookup (a string hash) was
	// the orderer's largest cost.
	lastName  string
	lastState *originState[T]
	skips     []Skip // declared lost since the last TakeSkips
}

// Verdict is what Offer made of an arrival.
type Verdict uint8

const (
	// Fresh: new, released now (in ready) or held behind a gap. Without
	// Config.DropLate a late arrival is released, out of order, as Fresh.
	Fresh Verdict = iota + 1
	// Duplicate: already released or held; dropped.
	Duplicate
	// Late: a seq already declared lost (Config.DropLate); dropped, so
	// that the skip stands as the loss it declared.
	Late
	// Stale: the state that would tell was forgotten (an old boot, an old
	// skipped range) or the identity is impossible; dropped. It may be a
	// duplicate or a loss.
	Stale
)

func (v Verdict) String() string {
	switch v {
	case Fresh:
		return "fresh"
	case Duplicate:
		return "duplicate"
	case Late:
		return "late"
	case Stale:
		return "stale"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// Skip is a range of one (origin, boot)'s seqs declared lost: [From, To).
type Skip struct {
	Origin   string
	Boot     uint64
	From, To uint64
}

// New returns an empty Orderer; zero fields of cfg take their defaults.
func New[T any](cfg Config) *Orderer[T] {
	return &Orderer[T]{
		cfg:     cfg.withDefaults(),
		origins: make(map[string]*originState[T]),
		maxSkip: maxSkipRanges,
	}
}

// Offer takes one arrival and says what it made of it. Unless Fresh, v is
// dropped. When Fresh, ready lists what can now be released in order (v
// itself and any held successors), appended to buf (pass nil or a reused
// slice to avoid allocation); v may instead be held. Admitting a new boot
// that pushes out an old one (or an arrival too far ahead for the Window)
// also releases held events, skipping their gaps (see TakeSkips). now
// starts the grace timer of a newly held gap and marks the origin active.
func (o *Orderer[T]) Offer(origin string, boot, seq uint64, v T, now time.Time, buf []T) (ready []T, verdict Verdict) {
	// seq below boot cannot exist; MaxUint64 is refused so that next never wraps.
	if seq < boot || seq == math.MaxUint64 {
		o.stats.Stale++
		return buf, Stale
	}
	s := o.lookup(origin)
	if s == nil {
		s = &originState[T]{}
		o.origins[origin] = s
		o.lastName, o.lastState = origin, s
	}
	s.last = now
	b := s.find(boot)
	if b == nil {
		if b, buf = o.addBoot(s, origin, boot, buf); b == nil {
			o.stats.Stale++
			return buf, Stale
		}
	}
	// The fast path: the expected seq with nothing waiting behind it.
	if seq == b.next && len(b.held) == 0 {
		b.next++
		o.stats.Fresh++
		return append(buf, v), Fresh
	}
	return o.offerSlow(b, seq, v, now, buf)
}

// lookup returns origin's state, nil if there is none.
func (o *Orderer[T]) lookup(origin string) *originState[T] {
	if o.lastState != nil && origin == o.lastName {
		return o.lastState
	}
	s := o.origins[origin]
	if s != nil {
		o.lastName, o.lastState = origin, s
	}
	return s
}

// forget deletes origin's state.
func (o *Orderer[T]) forget(origin string) {
	delete(o.origins, origin)
	if o.lastName == origin {
		o.lastName, o.lastState = "", nil
	}
}

func (o *Orderer[T]) offerSlow(b *bootState[T], seq uint64, v T, now time.Time, buf []T) ([]T, Verdict) {
	if seq < b.next {
		if b.takeSkipped(seq) {
			b.trimSkipped(o.maxSkip) // a split may have added one
			o.stats.Late++
			if o.cfg.DropLate {
				return buf, Late
			}
			o.stats.Fresh++
			return append(buf, v), Fresh
		}
		if seq < b.forgottenBelow {
			o.stats.Stale++
			return buf, Stale
		}
		o.stats.Duplicates++
		return buf, Duplicate
	}
	i, found := b.searchHeld(seq)
	if found {
		o.stats.Duplicates++
		return buf, Duplicate
	}
	o.stats.Fresh++
	if window := uint64(o.cfg.Window); seq-b.next >= window {
		// Make room: the oldest part of the gap is declared lost now.
		buf = o.advance(b, seq-window+1, buf)
		i, _ = b.searchHeld(seq)
	}
	if seq == b.next {
		b.next++
		return o.releaseContiguous(b, append(buf, v)), Fresh
	}
	o.hold(b, i, seq, v, now)
	return buf, Fresh
}

// addBoot starts tracking a boot of s. It returns nil (the arrival is stale)
// when the boot is at or below one already forgotten, or when every tracked
// boot is newer and there is no room. Otherwise, at MaxBoots, the oldest boot
// is pushed out: its held events are released into buf first (their gaps
// skipped), since nothing could deliver them later.
func (o *Orderer[T]) addBoot(s *originState[T], origin string, boot uint64, buf []T) (*bootState[T], []T) {
	if s.hasForgotten && boot <= s.lastForgotten {
		return nil, buf
	}
	nb := &bootState[T]{origin: origin, boot: boot, next: boot, pending: -1}
	if len(s.boots) < o.cfg.MaxBoots {
		s.boots = append(s.boots, nb)
		return nb, buf
	}
	oldest := 0
	for i, b := range s.boots {
		if b.boot < s.boots[oldest].boot {
			oldest = i
		}
	}
	old := s.boots[oldest]
	if boot < old.boot {
		return nil, buf
	}
	if n := len(old.held); n > 0 {
		buf = o.advance(old, old.held[n-1].seq+1, buf)
	}
	s.lastForgotten, s.hasForgotten = old.boot, true
	s.boots[oldest] = nb
	return nb, buf
}

// Tick releases held events whose gap has waited Grace (skipping the gap),
// forgets idle origins when IdleTimeout > 0, and returns what became ready
// (appended to buf), in per-(origin, boot) seq order. It costs the number of
// open gaps, plus the number of origins when IdleTimeout > 0.
func (o *Orderer[T]) Tick(now time.Time, buf []T) []T {
	// Downwards, so that a boot leaving pending (swapped with the last, already
	// visited) does not hide one not yet visited.
	for i := len(o.pending) - 1; i >= 0; i-- {
		b := o.pending[i]
		for len(b.held) > 0 && !now.Before(b.gapSince.Add(o.cfg.Grace)) {
			buf = o.advance(b, b.held[0].seq, buf)
		}
	}
	if o.cfg.IdleTimeout > 0 {
		for name, s := range o.origins {
			// An origin still holding events is not idle: its gap has a timer.
			if now.Sub(s.last) > o.cfg.IdleTimeout && !s.holding() {
				o.forget(name)
			}
		}
	}
	return buf
}

// NextDeadline reports the earliest time a held gap expires (ok=false if
// nothing is held), so the caller can arm a timer instead of polling. Idle
// origins have no deadline: the caller also ticks now and then if it set
// IdleTimeout.
func (o *Orderer[T]) NextDeadline() (t time.Time, ok bool) {
	for _, b := range o.pending {
		if !ok || b.gapSince.Before(t) {
			t, ok = b.gapSince, true
		}
	}
	if ok {
		t = t.Add(o.cfg.Grace)
	}
	return t, ok
}

// Stats returns the counters.
func (o *Orderer[T]) Stats() Stats {
	s := o.stats
	s.Origins = len(o.origins)
	return s
}

// TakeSkips appends to buf the ranges declared lost since the last call
// (by Tick, or by Offer making room), adjacent ranges of one boot merged.
// The caller takes them after every Offer and Tick that can skip, which
// bounds what accumulates.
func (o *Orderer[T]) TakeSkips(buf []Skip) []Skip {
	buf = append(buf, o.skips...)
	clear(o.skips)
	o.skips = o.skips[:0]
	return buf
}

// Abandon declares (origin, boot)'s events below upto lost now, as a gap
// past its grace would be, for a caller that knows they cannot come. What
// was held below upto is released into buf (in order), the skipped ranges
// go to TakeSkips. Nothing happens for a boot not tracked or already at
// upto.
func (o *Orderer[T]) Abandon(origin string, boot, upto uint64, buf []T) []T {
	s := o.lookup(origin)
	if s == nil {
		return buf
	}
	b := s.find(boot)
	if b == nil || b.next >= upto {
		return buf
	}
	return o.advance(b, upto, buf)
}

// Holding reports whether events of (origin, boot) are held behind a gap:
// they arrived past Next and wait for the seqs before them, which Tick
// declares lost once Grace has passed.
func (o *Orderer[T]) Holding(origin string, boot uint64) bool {
	if s := o.lookup(origin); s != nil {
		b := s.find(boot)
		return b != nil && len(b.held) > 0
	}
	return false
}

// Next reports the next seq (origin, boot) would release in order: every seq
// below it was released or declared lost. For a boot not tracked yet that
// Offer would admit, it is boot itself (nothing of it seen). ok is false when
// Offer would refuse the boot as stale (forgotten, or older than every
// tracked boot with no room left).
func (o *Orderer[T]) Next(origin string, boot uint64) (next uint64, ok bool) {
	s := o.lookup(origin)
	if s == nil {
		return boot, true
	}
	if b := s.find(boot); b != nil {
		return b.next, true
	}
	if s.hasForgotten && boot <= s.lastForgotten {
		return 0, false
	}
	if len(s.boots) >= o.cfg.MaxBoots {
		for _, b := range s.boots {
			if b.boot < boot {
				return boot, true
			}
		}
		return 0, false
	}
	return boot, true
}
