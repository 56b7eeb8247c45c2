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
