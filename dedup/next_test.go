package dedup

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	o := New[ev](Config{MaxBoots: 2, Grace: time.Second})
	now := time.Unix(0, 0)
	check := func(origin string, boot, want uint64, wantOK bool) {
		t.Helper()
		got, ok := o.Next(origin, boot)
		if got != want || ok != wantOK {
			t.Fatalf("Next(%s, %d) = %d, %v; want %d, %v", origin, boot, got, ok, want, wantOK)
		}
	}
	check("a", 100, 100, true) // unknown origin: nothing seen of the boot
	o.Offer("a", 100, 100, ev{"a", 100, 100}, now, nil)
	o.Offer("a", 100, 101, ev{"a", 100, 101}, now, nil)
	check("a", 100, 102, true)
	o.Offer("a", 100, 104, ev{"a", 100, 104}, now, nil) // held behind a gap
	check("a", 100, 102, true)
	check("a", 200, 200, true) // a new boot, room left
	o.Offer("a", 200, 200, ev{"a", 200, 200}, now, nil)
	check("a", 50, 0, false)   // older than every tracked boot, no room
	check("a", 300, 300, true) // newer: would push out boot 100
	o.Offer("a", 300, 300, ev{"a", 300, 300}, now, nil)
	check("a", 100, 0, false) // forgotten
	check("a", 300, 301, true)
}

// Abandon declares a boot's events below upto lost at once: what was held
// below it is released in order, the gaps reported as skips, a late copy
// dropped; an untracked boot or one already past upto is left alone.
func TestAbandon(t *testing.T) {
	o := New[ev](Config{Grace: time.Hour, DropLate: true})
	now := time.Unix(0, 0)
	o.Offer("a", 100, 100, ev{"a", 100, 100}, now, nil)
	o.Offer("a", 100, 103, ev{"a", 100, 103}, now, nil) // held behind 101, 102
	o.Offer("a", 100, 107, ev{"a", 100, 107}, now, nil) // held behind 104..106
	got := o.Abandon("a", 100, 106, nil)
	if len(got) != 1 || got[0].seq != 103 {
		t.Fatalf("released %v, want 103", got)
	}
	if next, _ := o.Next("a", 100); next != 106 {
		t.Fatalf("next %d, want 106", next)
	}
	skips := o.TakeSkips(nil)
	if len(skips) != 2 || skips[0] != (Skip{"a", 100, 101, 103}) || skips[1] != (Skip{"a", 100, 104, 106}) {
		t.Fatalf("skips %+v, want 101-103 and 104-106", skips)
	}
	if _, v := o.Offer("a", 100, 102, ev{"a", 100, 102}, now, nil); v != Late {
		t.Fatalf("a copy of abandoned 102: %v, want Late", v)
	}
	if got := o.Abandon("a", 100, 105, nil); len(got) != 0 {
		t.Fatalf("abandon below next released %v", got)
	}
	if got := o.Abandon("b", 1, 9, nil); len(got) != 0 || len(o.TakeSkips(nil)) != 0 {
		t.Fatal("abandon of an untracked origin did something")
	}
}
