package dedup

import (
	"math"
	"testing"
	"time"
)

func TestOrderer(t *testing.T) {
	const g = DefaultGrace
	ms := time.Millisecond
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		want  Stats
	}{
		{
			name: "in order",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 101, true, "a/100/101"),
				offer("b", 7, 7, true, "b/7/7"),
				offer("a", 100, 102, true, "a/100/102"),
			},
			want: Stats{Fresh: 4, Origins: 2},
		},
		{
			name: "duplicate after release and while held",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 100, false, ""),
				offer("a", 100, 102, true, ""),
				offer("a", 100, 102, false, ""),
				offer("a", 100, 101, true, "a/100/101 a/100/102"),
				offer("a", 100, 101, false, ""),
				offer("a", 100, 102, false, ""),
			},
			want: Stats{Fresh: 3, Duplicates: 4, Origins: 1},
		},
		{
			name: "reorder within window released in order",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 104, true, ""),
				offer("a", 100, 102, true, ""),
				offer("a", 100, 103, true, ""),
				offer("a", 100, 101, true, "a/100/101 a/100/102 a/100/103 a/100/104"),
				offer("a", 100, 105, true, "a/100/105"),
			},
			want: Stats{Fresh: 6, Origins: 1},
		},
		{
			name: "gap skipped after grace, timed from the first held",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offerAfter(10*ms, "a", 100, 103, true, ""),
				offerAfter(10*ms, "a", 100, 105, true, ""),
				tick(g-10*ms-1, ""),
				// 101 and 102 are lost, 103 released; 104 is a new gap whose
				// grace runs from 105's arrival.
				tick(1, "a/100/103"),
				tick(10*ms-1, ""),
				tick(1, "a/100/105"),
				offer("a", 100, 106, true, "a/100/106"),
			},
			want: Stats{Fresh: 4, Skipped: 3, Origins: 1},
		},
		{
			name: "late arrival of a skipped seq delivered once",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 103, true, ""),
				tick(g, "a/100/103"),
				offer("a", 100, 102, true, "a/100/102"),
				offer("a", 100, 102, false, ""),
				offer("a", 100, 101, true, "a/100/101"),
				offer("a", 100, 101, false, ""),
				offer("a", 100, 104, true, "a/100/104"),
			},
			want: Stats{Fresh: 5, Skipped: 2, Late: 2, Duplicates: 2, Origins: 1},
		},
		{
			name: "forced skip past window",
			cfg:  Config{Window: 4},
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 102, true, ""),
				// 107 needs next >= 104: 101 and 103 are lost, 102 released.
				offer("a", 100, 107, true, "a/100/102"),
				offer("a", 100, 105, true, ""),
				offer("a", 100, 104, true, "a/100/104 a/100/105"),
				offer("a", 100, 106, true, "a/100/106 a/100/107"),
				offer("a", 100, 101, true, "a/100/101"), // late
				// far ahead with nothing to release: skip straight to 1997.
				offer("a", 100, 2000, true, ""),
				offer("a", 100, 1997, true, "a/100/1997"),
			},
			want: Stats{Fresh: 9, Skipped: 2 + 1889, Late: 1, Held: 1, Origins: 1},
		},
		{
			name: "new boot neither stalls nor is deduplicated; old boot still delivers",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 102, true, ""), // boot 100 waits for 101
				offer("a", 101, 101, true, "a/101/101"),
				offer("a", 101, 102, true, "a/101/102"), // same seq as a held one of boot 100
				offer("a", 100, 101, true, "a/100/101 a/100/102"),
				offer("a", 100, 103, true, "a/100/103"),
				offer("a", 101, 103, true, "a/101/103"),
			},
			want: Stats{Fresh: 7, Origins: 1},
		},
		{
			name: "boots beyond MaxBoots become stale",
			cfg:  Config{MaxBoots: 2},
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("a", 100, 102, true, ""),
				offer("a", 200, 200, true, "a/200/200"),
				// 300 pushes out 100, whose held 102 is flushed first.
				offer("a", 300, 300, true, "a/100/102 a/300/300"),
				offer("a", 100, 101, false, ""),
				offer("a", 100, 103, false, ""),
				offer("a", 50, 50, false, ""),
				offer("a", 200, 201, true, "a/200/201"),
				// a boot older than every tracked one has no room either
				offer("a", 150, 150, false, ""),
				offer("a", 400, 400, true, "a/400/400"),
				offer("a", 200, 202, false, ""),
				offer("a", 300, 301, true, "a/300/301"),
			},
			want: Stats{Fresh: 7, Skipped: 1, Stale: 5, Origins: 1},
		},
		{
			name: "first contact mid-stream waits grace",
			steps: []step{
				offer("a", 100, 105, true, ""),
				offer("a", 100, 106, true, ""),
				tick(g-1, ""),
				tick(1, "a/100/105 a/100/106"),
				offer("a", 100, 104, true, "a/100/104"),
				offer("a", 100, 107, true, "a/100/107"),
			},
			want: Stats{Fresh: 4, Skipped: 5, Late: 1, Origins: 1},
		},
		{
			name: "first contact mid-stream that fills in",
			steps: []step{
				offer("a", 100, 101, true, ""),
				offer("a", 100, 100, true, "a/100/100 a/100/101"),
			},
			want: Stats{Fresh: 2, Origins: 1},
		},
		{
			name: "impossible identities are stale",
			steps: []step{
				offer("a", 100, 99, false, ""),
				offer("a", 100, math.MaxUint64, false, ""),
				offer("a", math.MaxUint64, math.MaxUint64, false, ""),
				offer("a", 100, 100, true, "a/100/100"),
			},
			want: Stats{Fresh: 1, Stale: 3, Origins: 1},
		},
		{
			name: "idle origins kept without IdleTimeout",
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				tick(1000*time.Hour, ""),
				offer("a", 100, 100, false, ""),
			},
			want: Stats{Fresh: 1, Duplicates: 1, Origins: 1},
		},
		{
			name: "idle origin forgotten after IdleTimeout",
			cfg:  Config{IdleTimeout: time.Minute},
			steps: []step{
				offer("a", 100, 100, true, "a/100/100"),
				offer("b", 100, 100, true, "b/100/100"),
				tick(30*time.Second, ""),
				offer("b", 100, 100, false, ""), // a duplicate is traffic too
				tick(30*time.Second, ""),
				tick(1, ""), // a is forgotten, b is not
				offer("b", 100, 101, true, "b/100/101"),
				offer("a", 100, 100, true, "a/100/100"), // new again: the caller's bound
			},
			want: Stats{Fresh: 4, Duplicates: 1, Origins: 2},
		},
		{
			name: "origin holding events is not idle",
			cfg:  Config{IdleTimeout: time.Minute, Grace: time.Hour},
			steps: []step{
				offer("a", 100, 101, true, ""),
				tick(2*time.Minute, ""),
				offer("a", 100, 100, true, "a/100/100 a/100/101"),
			},
			want: Stats{Fresh: 2, Origins: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New[ev](tt.cfg)
			run(t, o, tt.steps)
			if got := o.Stats(); got != tt.want {
				t.Errorf("Stats = %+v\nwant    %+v", got, tt.want)
			}
		})
	}
}

func TestNextDeadline(t *testing.T) {
	o := New[ev](Config{Grace: time.Second})
	if _, ok := o.NextDeadline(); ok {
		t.Fatal("deadline with nothing held")
	}
	run(t, o, []step{
		offer("a", 100, 102, true, ""),
		offerAfter(100*time.Millisecond, "b", 100, 102, true, ""),
		offerAfter(100*time.Millisecond, "a", 100, 101, true, ""), // still a's first gap
	})
	if d, ok := o.NextDeadline(); !ok || !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("NextDeadline = %v, %v; want %v", d, ok, t0.Add(time.Second))
	}
	if got := o.Tick(t0.Add(time.Second), nil); join(got) != "a/100/101 a/100/102" {
		t.Fatalf("Tick released %q", join(got))
	}
	if d, ok := o.NextDeadline(); !ok || !d.Equal(t0.Add(1100*time.Millisecond)) {
		t.Fatalf("NextDeadline = %v, %v; want b's", d, ok)
	}
	checkInvariants(t, o)
}

func TestMemoryBounded(t *testing.T) {
	const window = 16
	o := New[ev](Config{Window: window})
	now := t0
	var out []ev
	// Three of every four seqs missing: each Tick skips a separate range.
	seq := uint64(100)
	for i := 0; i < 3*maxSkipRanges; i++ {
		seq += 4
		if _, v := o.Offer("a", 100, seq, ev{"a", 100, seq}, now, nil); v != Fresh {
			t.Fatalf("seq %d not fresh", seq)
		}
		now = now.Add(DefaultGrace)
		out = o.Tick(now, out[:0])
		if len(out) != 1 {
			t.Fatalf("tick released %v", out)
		}
		checkInvariants(t, o)
	}
	b := o.origins["a"].boots[0]
	if len(b.skipped) != maxSkipRanges {
		t.Fatalf("%d skipped ranges, want %d", len(b.skipped), maxSkipRanges)
	}
	// The oldest skipped seqs are forgotten: a very late copy is stale.
	if _, v := o.Offer("a", 100, 101, ev{}, now, nil); v == Fresh {
		t.Fatal("forgotten skipped seq delivered")
	}
	if s := o.Stats(); s.Stale != 1 || s.Duplicates != 0 {
		t.Fatalf("stats %+v, want one stale", s)
	}
	// A recent one is still deliverable, once.
	late := seq - 1
	for i, want := range []bool{true, false} {
		if _, v := o.Offer("a", 100, late, ev{}, now, nil); (v == Fresh) != want {
			t.Fatalf("late offer %d: %v", i, v)
		}
	}
	// A burst far ahead never holds more than the window.
	for s := seq + 10*window; s > seq+1; s-- {
		o.Offer("a", 100, s, ev{"a", 100, s}, now, nil)
		checkInvariants(t, o)
	}
	if h := o.Stats().Held; h >= window {
		t.Fatalf("held %d >= window", h)
	}
	// Splitting ranges by late arrivals respects the bound too; the oldest
	// ranges are forgotten in favour of the new halves.
	before := b.forgottenBelow
	for _, r := range append([]seqRange(nil), b.skipped...) {
		if r.hi-r.lo >= 3 {
			if _, v := o.Offer("a", 100, r.lo+1, ev{}, now, nil); v != Fresh {
				t.Fatalf("late %d in %v not fresh", r.lo+1, r)
			}
			checkInvariants(t, o)
		}
	}
	if len(b.skipped) != maxSkipRanges || b.forgottenBelow <= before {
		t.Fatalf("after splits: %d ranges, forgottenBelow %d (was %d)", len(b.skipped), b.forgottenBelow, before)
	}
	// Draining the reorder buffer releases its large backing array.
	o.Tick(now.Add(DefaultGrace), nil)
	if len(b.held) != 0 || cap(b.held) > heldCapKeep {
		t.Fatalf("held len %d cap %d after drain", len(b.held), cap(b.held))
	}
}

func TestOfferReusesBuf(t *testing.T) {
	o := New[int](Config{})
	buf := make([]int, 0, 8)
	for i := range 100 {
		var v Verdict
		buf, v = o.Offer("a", 1, uint64(1+i), i, t0, buf[:0])
		if v != Fresh || len(buf) != 1 || buf[0] != i {
			t.Fatalf("offer %d: %v %v", i, buf, v)
		}
	}
	if n := testing.AllocsPerRun(1000, func() {
		o.Offer("a", 1, 50, 0, t0, buf[:0])
	}); n != 0 {
		t.Fatalf("duplicate offer allocates %v", n)
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, cfg := range []Config{{}, {Window: -1, Grace: -1, MaxBoots: -1, IdleTimeout: -1}} {
		got := New[ev](cfg).cfg
		if got != DefaultConfig() {
			t.Errorf("New(%+v).cfg = %+v, want %+v", cfg, got, DefaultConfig())
		}
	}
	want := Config{Window: 7, Grace: time.Minute, MaxBoots: 2, IdleTimeout: time.Hour}
	if got := New[ev](want).cfg; got != want {
		t.Errorf("explicit config changed: %+v", got)
	}
}

// With DropLate, a copy of a skipped seq is dropped and counted, never
// released out of order; without, it is released once, late.
func TestDropLate(t *testing.T) {
	t0 := time.Unix(100, 0)
	for _, drop := range []bool{false, true} {
		o := New[uint64](Config{Grace: time.Second, DropLate: drop})
		o.Offer("a", 10, 10, 10, t0, nil)
		if _, v := o.Offer("a", 10, 12, 12, t0, nil); v != Fresh {
			t.Fatal("12 not accepted")
		}
		if got := o.Tick(t0.Add(time.Second), nil); len(got) != 1 || got[0] != 12 {
			t.Fatalf("after the grace: %v, want [12] with 11 skipped", got)
		}
		if skips := o.TakeSkips(nil); len(skips) != 1 || skips[0] != (Skip{Origin: "a", Boot: 10, From: 11, To: 12}) {
			t.Fatalf("skips %+v, want 11 of a/10", skips)
		}
		if skips := o.TakeSkips(nil); len(skips) != 0 {
			t.Fatalf("skips taken twice: %+v", skips)
		}
		ready, v := o.Offer("a", 10, 11, 11, t0.Add(2*time.Second), nil)
		if st := o.Stats(); st.Late != 1 || st.Skipped != 1 {
			t.Fatalf("drop=%v: stats %+v", drop, st)
		}
		if drop && (v != Late || len(ready) != 0) {
			t.Fatalf("DropLate released the late 11: %v %v", ready, v)
		}
		if !drop && (v != Fresh || len(ready) != 1 || ready[0] != 11) {
			t.Fatalf("the late 11 was not released once: %v %v", ready, v)
		}
		if _, v := o.Offer("a", 10, 11, 11, t0.Add(3*time.Second), nil); v != Duplicate {
			t.Fatalf("drop=%v: a second copy of 11: %v, want duplicate", drop, v)
		}
	}
}

// Holding says whether events of (origin, boot) wait behind a gap: not for
// an origin or boot never seen, nor while events come in order; from the
// first event past a gap until the gap fills or is declared lost.
func TestHolding(t *testing.T) {
	t0 := time.Unix(100, 0)
	o := New[uint64](Config{Grace: time.Second})
	if o.Holding("a", 10) {
		t.Fatal("holding for an origin never seen")
	}
	o.Offer("a", 10, 10, 10, t0, nil)
	o.Offer("a", 10, 11, 11, t0, nil)
	if o.Holding("a", 10) {
		t.Fatal("holding with everything in order")
	}
	o.Offer("a", 10, 13, 13, t0, nil)
	if !o.Holding("a", 10) || o.Holding("a", 20) {
		t.Fatal("13 past the gap at 12: want a/10 holding, a/20 not")
	}
	o.Offer("a", 10, 12, 12, t0, nil)
	if o.Holding("a", 10) {
		t.Fatal("holding once 12 filled the gap")
	}
	o.Offer("a", 10, 15, 15, t0, nil)
	o.Tick(t0.Add(time.Second), nil)
	if o.Holding("a", 10) {
		t.Fatal("holding once the gap at 14 was declared lost")
	}
}
