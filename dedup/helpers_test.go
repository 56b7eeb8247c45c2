package dedup

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// ev is the value the tests pass through the Orderer: its own identity.
type ev struct {
	origin    string
	boot, seq uint64
}

func (e ev) String() string { return fmt.Sprintf("%s/%d/%d", e.origin, e.boot, e.seq) }

func join(evs []ev) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.String()
	}
	return strings.Join(s, " ")
}

// step is one scripted input: advance the clock by dt, then either offer
// (origin, boot, seq) or tick; want lists the released events in order.
type step struct {
	dt        time.Duration
	tick      bool
	origin    string
	boot, seq uint64
	fresh     bool
	want      string
}

func offer(origin string, boot, seq uint64, fresh bool, want string) step {
	return step{origin: origin, boot: boot, seq: seq, fresh: fresh, want: want}
}

func offerAfter(dt time.Duration, origin string, boot, seq uint64, fresh bool, want string) step {
	return step{dt: dt, origin: origin, boot: boot, seq: seq, fresh: fresh, want: want}
}

func tick(dt time.Duration, want string) step { return step{dt: dt, tick: true, want: want} }

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// run plays steps on o and checks every release; it returns the final clock.
func run(t *testing.T, o *Orderer[ev], steps []step) time.Time {
	t.Helper()
	now := t0
	for i, s := range steps {
		now = now.Add(s.dt)
		var got []ev
		if s.tick {
			got = o.Tick(now, nil)
		} else {
			var v Verdict
			got, v = o.Offer(s.origin, s.boot, s.seq, ev{s.origin, s.boot, s.seq}, now, nil)
			if fresh := v == Fresh; fresh != s.fresh {
				t.Fatalf("step %d: offer %s/%d/%d: fresh = %v, want %v", i, s.origin, s.boot, s.seq, fresh, s.fresh)
			}
		}
		if g := join(got); g != s.want {
			t.Fatalf("step %d: released %q, want %q", i, g, s.want)
		}
		checkInvariants(t, o)
	}
	return now
}

// checkInvariants verifies the memory bounds and bookkeeping of o.
func checkInvariants(t testing.TB, o *Orderer[ev]) {
	t.Helper()
	held, pending := 0, 0
	for name, s := range o.origins {
		if len(s.boots) > o.cfg.MaxBoots {
			t.Fatalf("origin %s: %d boots > MaxBoots %d", name, len(s.boots), o.cfg.MaxBoots)
		}
		for _, b := range s.boots {
			held += len(b.held)
			if len(b.held) >= o.cfg.Window {
				t.Fatalf("%s/%d: %d held >= Window %d", name, b.boot, len(b.held), o.cfg.Window)
			}
			for j, h := range b.held {
				if h.seq <= b.next || h.seq-b.next >= uint64(o.cfg.Window) {
					t.Fatalf("%s/%d: held seq %d outside (next %d, next+Window)", name, b.boot, h.seq, b.next)
				}
				if j > 0 && h.seq <= b.held[j-1].seq {
					t.Fatalf("%s/%d: held not strictly sorted", name, b.boot)
				}
			}
			if (len(b.held) > 0) != (b.pending >= 0) {
				t.Fatalf("%s/%d: pending index %d with %d held", name, b.boot, b.pending, len(b.held))
			}
			if b.pending >= 0 {
				pending++
				if o.pending[b.pending] != b {
					t.Fatalf("%s/%d: pending index points elsewhere", name, b.boot)
				}
			}
			if len(b.skipped) > o.maxSkip {
				t.Fatalf("%s/%d: %d skipped ranges > %d", name, b.boot, len(b.skipped), o.maxSkip)
			}
			for j, r := range b.skipped {
				if r.lo >= r.hi || r.hi > b.next || r.lo < b.boot || (j > 0 && r.lo <= b.skipped[j-1].hi) {
					t.Fatalf("%s/%d: bad skipped ranges %v (next %d)", name, b.boot, b.skipped, b.next)
				}
			}
		}
	}
	if held != o.stats.Held {
		t.Fatalf("Stats.Held = %d, boots hold %d", o.stats.Held, held)
	}
	if pending != len(o.pending) {
		t.Fatalf("%d pending boots, list has %d", pending, len(o.pending))
	}
}
