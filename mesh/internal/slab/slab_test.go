package slab

import (
	"bytes"
	"testing"

	"github.com/verbosemesh/verbose/internal/msgp"
)

// The dispatcher's copies: equal, capped, never written again, and large
// ones on their own.
func TestChunksClone(t *testing.T) {
	var s Chunks
	if s.Clone(nil, MaxRegion) != nil {
		t.Fatal("an empty payload copied")
	}
	src := []byte("abcdef")
	a := s.Clone(src, MaxRegion)
	b := s.Clone(src, MaxRegion)
	src[0] = 'X'
	if string(a) != "abcdef" || string(b) != "abcdef" || cap(a) != len(a) {
		t.Fatalf("copies %q %q cap %d", a, b, cap(a))
	}
	_ = append(a, "zz"...) // capped: cannot reach b
	if string(b) != "abcdef" {
		t.Fatalf("append to one copy changed the next: %q", b)
	}
	for range 2 * ChunkSize / 100 { // across chunks
		s.Clone(make([]byte, 100), MaxRegion)
	}
	if string(a) != "abcdef" || string(b) != "abcdef" {
		t.Fatal("a copy was overwritten")
	}
	big := make([]byte, MaxRegion+1)
	if c := s.Clone(big, MaxRegion); len(c) != len(big) || cap(c) < len(big) || &c[0] == &big[0] {
		t.Fatal("large payload not copied")
	}
}

// blastArgs is the args array of meshbench's blast event: an index, a
// timestamp and 112 bytes of padding, as go-msgpack (and wire.AppendArgs)
// encodes it.
func blastArgs() []byte {
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendInt(b, 1<<40)
	b = msgp.AppendInt(b, 1<<60)
	return msgp.AppendBin(b, bytes.Repeat([]byte{7}, 112))
}

func BenchmarkChunksClone(b *testing.B) {
	raw := blastArgs()
	var s Chunks
	b.ReportAllocs()
	for b.Loop() {
		s.Clone(raw, MaxRegion)
	}
}

// An event's args say whether they are lent by their capacity: lent ones
// never end at their chunk's end, copies always end at their capacity.
func TestLentArgsKnownByCapacity(t *testing.T) {
	var l Lender
	var s Chunks
	for n := 1; n < 3*ChunkSize; n += 997 {
		b := bytes.Repeat([]byte{7}, n%MaxRegion+1)
		if r, _ := l.Lend(b); !IsLent(r) {
			t.Fatalf("lent args of %d bytes at offset %d read as a copy", len(b), l.off-len(b))
		}
		if c := s.Clone(b, MaxRegion); IsLent(c) {
			t.Fatalf("a copy of %d bytes reads as lent", len(b))
		}
	}
	big := make([]byte, MaxRegion+3)
	if c := s.Clone(big, MaxRegion); IsLent(c) {
		t.Fatal("a large copy reads as lent")
	}
}

// The Lender fills a chunk, then reports it as full when a region no longer
// fits (never lending its last byte); given-back chunks are reused before
// new ones are made, and at most LentKeep of them are kept.
func TestLender(t *testing.T) {
	for _, c := range []struct {
		n    int
		want bool
	}{{0, false}, {1, true}, {MaxRegion, true}, {MaxRegion + 1, false}} {
		if got := Lendable(make([]byte, c.n)); got != c.want {
			t.Errorf("Lendable(%d bytes) = %v, want %v", c.n, got, c.want)
		}
	}

	var l Lender
	region := func(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }
	// Four regions fill a chunk but for its last byte.
	var first []byte
	for i, n := range []int{MaxRegion, MaxRegion, MaxRegion, MaxRegion - 1} {
		r, full := l.Lend(region(byte(i), n))
		if full != nil {
			t.Fatalf("region %d (%d bytes) left a chunk with room", i, n)
		}
		if !bytes.Equal(r, region(byte(i), n)) || !IsLent(r) {
			t.Fatalf("region %d: %d bytes, cap %d, not the lent copy", i, len(r), cap(r))
		}
		if i == 0 {
			first = r
		}
	}
	if l.Made() != 1 {
		t.Fatalf("one chunk filled, %d made", l.Made())
	}
	if l.off != ChunkSize-1 {
		t.Fatalf("four regions end at %d, want %d", l.off, ChunkSize-1)
	}
	_, full := l.Lend([]byte{9}) // the last byte is never lent
	if full == nil || &full[0] != &first[0] {
		t.Fatal("the filled chunk was not reported full")
	}
	if l.Made() != 2 {
		t.Fatalf("%d chunks made, want 2", l.Made())
	}
	if !bytes.Equal(first, region(0, MaxRegion)) {
		t.Fatal("a region of the full chunk was written again before it was given back")
	}

	// Given back: reused before any new one is made.
	l.Reuse([]*Chunk{full})
	if r, full2 := l.Lend(region(1, MaxRegion)); full2 != nil || &r[0] == &full[0] {
		t.Fatal("a region that fits the current chunk moved to a spare one")
	}
	for l.off+MaxRegion < ChunkSize { // fill the current chunk
		l.Lend(region(2, MaxRegion))
	}
	r, full2 := l.Lend(region(3, MaxRegion))
	if full2 == nil || &r[0] != &full[0] || l.Made() != 2 {
		t.Fatalf("the given-back chunk was not reused (%d made)", l.Made())
	}
	if !bytes.Equal(r, region(3, MaxRegion)) {
		t.Fatal("the reused chunk's region is not the new copy")
	}

	// At most LentKeep spare chunks are kept, the others go.
	var back []*Chunk
	for range LentKeep + 5 {
		back = append(back, new(Chunk))
	}
	l.Reuse(back[:3])
	l.Reuse(back[3:])
	if len(l.spare) != LentKeep {
		t.Fatalf("%d spare chunks kept, want %d", len(l.spare), LentKeep)
	}
	for i, c := range l.spare {
		if c != back[i] {
			t.Fatalf("spare %d is not the chunk given back %d-th", i, i)
		}
	}
	l.Reuse([]*Chunk{new(Chunk)})
	if len(l.spare) != LentKeep {
		t.Fatalf("a full lender took another chunk: %d spare", len(l.spare))
	}
	// Each chunk left takes a spare one, the most recently given back first.
	made := l.Made()
	for i := range LentKeep {
		full = nil
		for full == nil {
			r, full = l.Lend(region(4, MaxRegion))
		}
		if want := back[LentKeep-1-i]; &r[0] != &want[0] {
			t.Fatalf("chunk %d left: the next region is not in the last spare", i)
		}
	}
	if l.Made() != made || len(l.spare) != 0 {
		t.Fatalf("%d chunks made with %d spare left; want none made, all taken", l.Made()-made, len(l.spare))
	}
	for full = nil; full == nil; {
		_, full = l.Lend(region(5, MaxRegion))
	}
	if l.Made() != made+1 {
		t.Fatalf("no spare left: %d chunks made, want 1", l.Made()-made)
	}
}
