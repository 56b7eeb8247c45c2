package mesh

import (
	"testing"
	"time"
)

func TestRecentStoreIndexesBySeq(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := newRecentStore(8, time.Minute)
	ev := func(origin string, seq uint64) *envelope {
		return &envelope{Kind: kindEvent, Origin: origin, Boot: 1, Seq: seq, Name: "x", Args: []byte{0x90}}
	}
	for seq := uint64(1); seq <= 6; seq++ {
		s.add(ev("a", seq), []byte{0x90}, false, t0)
		s.add(ev("b", seq), []byte{0x90}, false, t0) // interleaved origins share the ring
	}
	// The ring holds the newest 8: a 3..6 and b 3..6.
	for seq := uint64(1); seq <= 6; seq++ {
		for _, o := range []string{"a", "b"} {
			got := s.get(eventKey{o, 1, seq}, t0) != nil
			if want := seq >= 3; got != want {
				t.Fatalf("%s/%d stored=%v, want %v", o, seq, got, want)
			}
		}
	}
	s.add(ev("a", 6), []byte{0x90}, false, t0) // a duplicate changes nothing
	if s.size != 8 {
		t.Fatalf("size %d after a duplicate", s.size)
	}
	// A far jump restarts a's index; its old entries are no longer served.
	s.add(ev("a", 1000), []byte{0x90}, false, t0)
	if s.get(eventKey{"a", 1, 1000}, t0) == nil || s.get(eventKey{"a", 1, 6}, t0) != nil {
		t.Fatal("a far jump was not indexed afresh")
	}
	// Age: nothing older than maxAge is served, and it is evicted.
	later := t0.Add(2 * time.Minute)
	if s.get(eventKey{"b", 1, 6}, later) != nil {
		t.Fatal("an entry past maxAge was served")
	}
	s.add(ev("c", 1), []byte{0x90}, false, later)
	if s.size != 1 || len(s.byOrigin) != 1 {
		t.Fatalf("after expiry: size %d, indexes %d; want 1 and 1", s.size, len(s.byOrigin))
	}
}
