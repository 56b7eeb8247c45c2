package dedup

import (
	"slices"
	"time"
)

// heldCapKeep is the capacity of a drained held slice that is kept for reuse;
// a larger one (left by a burst of reordering) is released so that an origin's
// steady-state memory stays small.
const heldCapKeep = 64

// originState is everything known about one origin.
type originState[T any] struct {
	boots []*bootState[T] // at most Config.MaxBoots, in no particular order
	// lastForgotten is the largest boot pushed out; events of a boot <= it are
	// stale. Valid when hasForgotten.
	lastForgotten uint64
	hasForgotten  bool
	last          time.Time // last arrival of any kind, for IdleTimeout
}

func (s *originState[T]) find(boot uint64) *bootState[T] {
	for _, b := range s.boots {
		if b.boot == boot {
			return b
		}
	}
	return nil
}

func (s *originState[T]) holding() bool {
	for _, b := range s.boots {
		if len(b.held) > 0 {
			return true
		}
	}
	return false
}

// bootState orders the events of one (origin, boot).
type bootState[T any] struct {
	origin string
	boot   uint64
	next   uint64 // next seq to release in order; all below were released or skipped

	// held is sorted by seq; every entry is in (next, next+Window).
	held []heldEvent[T]
	// gapSince is the earliest arrival among held, the start of the gap's Grace.
	gapSince time.Time

	// skipped are the seqs below next declared lost and not delivered since:
	// ascending, disjoint, non-adjacent, at most maxSkipRanges.
	skipped []seqRange
	// forgottenBelow: seqs below it that are not in skipped may have been
	// skipped ranges now forgotten, so an arrival there is stale, not a duplicate.
	forgottenBelow uint64

	pending int // index in Orderer.pending while held is non-empty, else -1
}

type heldEvent[T any] struct {
	seq uint64
	at  time.Time
	v   T
}

// seqRange is the half-open range [lo, hi).
type seqRange struct{ lo, hi uint64 }

// searchHeld returns where seq is or would be in held.
func (b *bootState[T]) searchHeld(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(b.held, seq, func(h heldEvent[T], s uint64) int {
		switch {
		case h.seq < s:
			return -1
		case h.seq > s:
			return 1
		}
		return 0
	})
}

// takeSkipped removes seq from the skipped ranges and reports whether it was
// there, i.e. whether it is a late arrival to deliver.
func (b *bootState[T]) takeSkipped(seq uint64) bool {
	// The first range whose hi is above seq is the only one that can hold it.
	i, _ := slices.BinarySearchFunc(b.skipped, seq, func(r seqRange, s uint64) int {
		if r.hi <= s {
			return -1
		}
		return 1
	})
	if i == len(b.skipped) || b.skipped[i].lo > seq {
		return false
	}
	r := &b.skipped[i]
	switch {
	case r.lo == seq && r.hi == seq+1:
		b.skipped = slices.Delete(b.skipped, i, i+1)
	case r.lo == seq:
		r.lo++
	case r.hi == seq+1:
		r.hi--
	default:
		upper := seqRange{seq + 1, r.hi}
		r.hi = seq
		b.skipped = slices.Insert(b.skipped, i+1, upper)
	}
	return true
}

// addSkipped records [lo, hi) as lost. Skips only ever happen at next, so the
// range lies above every recorded one.
func (b *bootState[T]) addSkipped(lo, hi uint64) {
	if n := len(b.skipped); n > 0 && b.skipped[n-1].hi == lo {
		b.skipped[n-1].hi = hi
		return
	}
	b.skipped = append(b.skipped, seqRange{lo, hi})
}

// trimSkipped forgets the oldest ranges past max; their seqs then count as
// seen, so a very late copy is dropped (stale) rather than risk a duplicate.
func (b *bootState[T]) trimSkipped(max int) {
	if over := len(b.skipped) - max; over > 0 {
		b.forgottenBelow = b.skipped[over-1].hi
		b.skipped = slices.Delete(b.skipped, 0, over)
	}
}

// hold keeps v until the gap before it fills or expires.
func (o *Orderer[T]) hold(b *bootState[T], i int, seq uint64, v T, now time.Time) {
	b.held = slices.Insert(b.held, i, heldEvent[T]{seq: seq, at: now, v: v})
	o.stats.Held++
	if len(b.held) == 1 {
		b.gapSince = now
		b.pending = len(o.pending)
		o.pending = append(o.pending, b)
	} else if now.Before(b.gapSince) {
		b.gapSince = now
	}
}

// releaseContiguous appends the held events that continue next, in order.
func (o *Orderer[T]) releaseContiguous(b *bootState[T], buf []T) []T {
	buf, k := takeContiguous(b, 0, buf)
	o.dropHeld(b, k)
	return buf
}

// takeContiguous appends held[k:]'s events while they continue next and
// returns the index of the first that does not.
func takeContiguous[T any](b *bootState[T], k int, buf []T) ([]T, int) {
	for k < len(b.held) && b.held[k].seq == b.next {
		buf = append(buf, b.held[k].v)
		b.next++
		k++
	}
	return buf, k
}

// advance declares every missing seq below target lost, releasing the held
// events below target on the way, then releases what continues from target.
func (o *Orderer[T]) advance(b *bootState[T], target uint64, buf []T) []T {
	k := 0
	for k < len(b.held) && b.held[k].seq < target {
		s := b.held[k].seq
		if s > b.next {
			o.skip(b, b.next, s)
		}
		buf = append(buf, b.held[k].v)
		b.next = s + 1
		k++
	}
	if b.next < target {
		o.skip(b, b.next, target)
		b.next = target
	}
	buf, k = takeContiguous(b, k, buf)
	o.dropHeld(b, k)
	return buf
}

func (o *Orderer[T]) skip(b *bootState[T], lo, hi uint64) {
	o.stats.Skipped += hi - lo
	b.addSkipped(lo, hi)
	b.trimSkipped(o.maxSkip)
	if n := len(o.skips); n > 0 && o.skips[n-1].Origin == b.origin && o.skips[n-1].Boot == b.boot && o.skips[n-1].To == lo {
		o.skips[n-1].To = hi
		return
	}
	o.skips = append(o.skips, Skip{Origin: b.origin, Boot: b.boot, From: lo, To: hi})
}

// dropHeld removes the first k held events (already released) and restarts the
// Grace of the remaining gap from the earliest arrival still held.
func (o *Orderer[T]) dropHeld(b *bootState[T], k int) {
	if k == 0 {
		return
	}
	n := copy(b.held, b.held[k:])
	clear(b.held[n:]) // let released values be collected
	b.held = b.held[:n]
	o.stats.Held -= k
	if n > 0 {
		b.gapSince = b.held[0].at
		for _, h := range b.held[1:] {
			if h.at.Before(b.gapSince) {
				b.gapSince = h.at
			}
		}
		return
	}
	if cap(b.held) > heldCapKeep {
		b.held = nil
	}
	o.unpend(b)
}

// unpend removes b from the pending list (swap with the last).
func (o *Orderer[T]) unpend(b *bootState[T]) {
	i := b.pending
	if i < 0 {
		return
	}
	last := len(o.pending) - 1
	o.pending[i] = o.pending[last]
	o.pending[i].pending = i
	o.pending[last] = nil
	o.pending = o.pending[:last]
	b.pending = -1
}
