package slab

// Chunk is one chunk of lent bytes.
type Chunk [ChunkSize]byte

// Lender lends regions of chunks that are written again once given back:
// no allocation and no zeroing per region, and a reused chunk is still in
// the cache (mesh's blast: allocating and zeroing the copies' chunks was
// ~5% of the CPU, and their garbage most of what the collector had to do).
//
// The borrower gives a chunk back by Reuse once nothing reads any region
// of it. Lend reports the chunk it had to leave (full), so that the caller
// can arrange for it to come back after the last region cut from it.
type Lender struct {
	cur   *Chunk
	off   int      // the next free byte of cur
	spare []*Chunk // given back, the most recently used last
	made  int      // chunks allocated
}

// Lend copies b (1 to MaxRegion bytes) into the current chunk and returns
// the copy, with the rest of the chunk as capacity: a lent region is never
// capped (the chunk's last byte is never lent), which is what IsLent reads.
// full is the chunk this copy had to leave, nil if none.
func (l *Lender) Lend(b []byte) (r []byte, full *Chunk) {
	if l.cur == nil || len(b) >= ChunkSize-l.off {
		full = l.cur
		if k := len(l.spare); k > 0 {
			l.cur, l.spare = l.spare[k-1], l.spare[:k-1]
		} else {
			l.cur = new(Chunk)
			l.made++
		}
		l.off = 0
	}
	r = l.cur[l.off : l.off+len(b)]
	copy(r, b)
	l.off += len(b)
	return r, full
}

// Leaves reports whether lending n bytes would leave the current chunk
// for another, and no given-back chunk is at hand: the moment to Reuse what
// has come back, before Lend allocates.
func (l *Lender) Leaves(n int) bool {
	return (l.cur == nil || n >= ChunkSize-l.off) && len(l.spare) == 0
}

// Lendable reports whether Lend takes b.
func Lendable(b []byte) bool { return len(b) > 0 && len(b) <= MaxRegion }

// Reuse takes back chunks whose regions nobody reads any more, up to
// LentKeep spare ones (the others go to the collector).
func (l *Lender) Reuse(chunks []*Chunk) {
	room := max(LentKeep-len(l.spare), 0)
	l.spare = append(l.spare, chunks[:min(room, len(chunks))]...)
}

// Made is the number of chunks the lender has allocated.
func (l *Lender) Made() int { return l.made }

// IsLent reports whether b is a lent region (Lend) rather than an owned
// one: owned regions are capped to their length, lent ones never are.
func IsLent(b []byte) bool { return cap(b) > len(b) }
