package store

import (
	"bytes"
	"testing"
	"time"
)

func ownPayload(seq uint64, n int) []byte { return bytes.Repeat([]byte{byte(seq)}, n) }

// The own store hands back the very payload it was given (no copy: Emit's
// payloads are never written again), for the seqs it holds, bounded by
// count; an evicted entry lets its payload go.
func TestOwnStoreKeepsTheLastByCount(t *testing.T) {
	s := NewOwn(4, time.Minute)
	now := time.Unix(1000, 0)
	kept := map[uint64][]byte{}
	for seq := uint64(100); seq < 110; seq++ {
		kept[seq] = ownPayload(seq, 10)
		s.Add(seq, kept[seq], now)
	}
	for seq := uint64(95); seq < 112; seq++ {
		got := s.Get(seq, now)
		switch {
		case seq >= 106 && seq < 110:
			if got == nil || &got[0] != &kept[seq][0] {
				t.Fatalf("seq %d: got %v, want the payload added", seq, got)
			}
		case got != nil:
			t.Fatalf("seq %d: got %v, want nothing (evicted or never added)", seq, got)
		}
	}
	if s.bytes != 40 {
		t.Fatalf("%d bytes counted, want 40", s.bytes)
	}
	for i, e := range s.ring {
		if e.payload == nil {
			t.Fatalf("slot %d is empty with 4 entries in a ring of 4", i)
		}
	}
	s2 := NewOwn(4, time.Minute)
	s2.Add(1, ownPayload(1, 10), now)
	s2.Add(2, ownPayload(2, 10), now)
	s2.evictOldest()
	if s2.ring[0].payload != nil {
		t.Fatal("an evicted entry still holds its payload")
	}
}

// The ring starts small and grows, keeping its entries in order across the
// wrap, up to the count bound.
func TestOwnStoreGrows(t *testing.T) {
	s := NewOwn(200, time.Minute)
	if len(s.ring) != ownMin {
		t.Fatalf("a new store's ring has %d slots, want %d", len(s.ring), ownMin)
	}
	now := time.Unix(1000, 0)
	check := func(from, to uint64) {
		t.Helper()
		for seq := from - 3; seq < to+3; seq++ {
			got := s.Get(seq, now)
			if in := seq >= from && seq < to; in != (got != nil) || in && got[0] != byte(seq) {
				t.Fatalf("seq %d of [%d, %d): got %v", seq, from, to, got)
			}
		}
	}
	for seq := uint64(10); seq < 50; seq++ {
		s.Add(seq, ownPayload(seq, 3), now)
	}
	// They expire: the ring's oldest entry is now at slot 40, and the ring
	// is full (64) across its end when it grows.
	now = now.Add(time.Minute + time.Second)
	for seq := uint64(50); seq < 160; seq++ {
		s.Add(seq, ownPayload(seq, 3), now)
	}
	check(50, 160)
	for seq := uint64(160); seq < 500; seq++ {
		s.Add(seq, ownPayload(seq, 3), now)
	}
	if len(s.ring) != 200 {
		t.Fatalf("the ring grew to %d slots, want the bound, 200", len(s.ring))
	}
	check(300, 500)
}

// The own store is bounded by bytes and by age as the recent-event store
// is; a seq that does not follow the last one starts it afresh.
func TestOwnStoreBounds(t *testing.T) {
	now := time.Unix(1000, 0)
	s := NewOwn(100, time.Minute)
	s.maxBytes = 250
	for seq := uint64(1); seq <= 5; seq++ {
		s.Add(seq, ownPayload(seq, 100), now)
	}
	if s.size != 2 || s.Get(3, now) != nil || s.Get(4, now) == nil || s.Get(5, now) == nil || s.bytes != 200 {
		t.Fatalf("by bytes: %d entries, %d bytes; want 4 and 5 only", s.size, s.bytes)
	}
	s.Add(6, ownPayload(6, 300), now) // larger than the bound: not stored, nothing evicted
	if s.size != 2 || s.Get(6, now) != nil {
		t.Fatalf("a payload over the byte bound: %d entries", s.size)
	}

	later := now.Add(time.Minute + time.Second)
	if s.Get(5, later) != nil {
		t.Fatal("an entry past maxAge was served")
	}
	s.Add(7, ownPayload(7, 10), later)
	if s.size != 1 || s.first != 7 || s.Get(7, later) == nil {
		t.Fatalf("after expiry: %d entries from %d; want 7 alone", s.size, s.first)
	}

	s.Add(20, ownPayload(20, 10), later) // a jump: a new boot's events
	if s.size != 1 || s.Get(7, later) != nil || s.Get(20, later) == nil {
		t.Fatalf("after a jump: %d entries from %d; want 20 alone", s.size, s.first)
	}
	s.Add(21, ownPayload(21, 10), later)
	if got := s.Get(21, later); got == nil || got[0] != 21 {
		t.Fatalf("seq 21 after the jump: %v", got)
	}
}

// Storing an own event allocates nothing.
func TestOwnStoreAddAllocatesNothing(t *testing.T) {
	s := NewOwn(64, time.Minute)
	p := ownPayload(1, 180)
	now := time.Unix(1000, 0)
	seq := uint64(1)
	if n := testing.AllocsPerRun(1000, func() {
		s.Add(seq, p, now)
		seq++
	}); n != 0 {
		t.Fatalf("%v allocations per add", n)
	}
}

// BenchmarkOwnStoreAdd is the emitter's side of BenchmarkStoreAddBlast: a
// full store of meshbench's size, one own event after another.
func BenchmarkOwnStoreAdd(b *testing.B) {
	s := NewOwn(4*4096, time.Minute)
	p := ownPayload(1, 178)
	now := time.Unix(1000, 0)
	for seq := uint64(1); b.Loop(); seq++ {
		s.Add(seq, p, now)
	}
}
