// Package slab hands out byte regions and argument slots cut from shared
// chunks, so that the event path allocates once per many events instead of
// once per event. It owns every size limit of that memory, in one place.
//
// Two kinds of region exist, and a region's capacity tells them apart:
//
//   - Owned regions (Chunks.Cut, Chunks.Clone, Args.Vals) are capped to
//     their length and never written again once handed out; the garbage
//     collector frees a chunk when nothing holds a region of it. Whoever
//     gets one may keep it.
//   - Lent regions (Lender.Lend) keep the rest of their chunk as capacity.
//     The chunk is written again once it is given back (Lender.Reuse), so a
//     lent region is valid only until its holder says it is done with the
//     chunk. IsLent reports which kind a region is.
//
// Nothing here is safe for concurrent use: each value has one owner (the
// router, the dispatcher, Emit), which says so where it holds it.
package slab

import "slices"

// The sizes. Chunks stay within the allocator's small size classes (up to
// 32 KiB less a header): a 32 KiB chunk took the large-object path, a span
// per chunk, and cost ~40% more per event (BenchmarkChunksClone).
const (
	// ChunkSize is the size of every chunk.
	ChunkSize = 16 << 10
	// MaxRegion is the largest region cut from a chunk; a larger one gets
	// an allocation of its own (a blast-sized event's args are ~130 bytes:
	// one chunk serves ~120 of them).
	MaxRegion = 4 << 10
	// MaxBin is the largest []byte arg that Args cuts from its chunks when
	// it decodes args for On handlers.
	MaxBin = 512
	// ArgVals is how many arg slots Args allocates at once; events with
	// more than MaxArgs args get a slice of their own.
	ArgVals = 64
	MaxArgs = 8
	// LentKeep is how many given-back chunks a Lender keeps for reuse (the
	// others go to the collector): 32 chunks, 512 KiB, and as many again
	// may be on their way back from the dispatcher.
	LentKeep = 32
)

// Chunks cuts owned regions from ChunkSize chunks.
type Chunks struct{ chunk []byte }

// Room returns the next n bytes of the current chunk, not handed out yet
// (a new chunk when it has fewer): the caller may write up to n bytes, then
// Cut what it wrote. n is at most ChunkSize.
func (c *Chunks) Room(n int) []byte {
	if len(c.chunk) < n {
		c.chunk = make([]byte, ChunkSize)
	}
	return c.chunk[:n:n]
}

// Cut hands out the next n bytes, capped to them.
func (c *Chunks) Cut(n int) []byte {
	r := c.Room(n)
	c.chunk = c.chunk[n:]
	return r
}

// Clone returns an owned copy of b (nil for an empty b): cut from the
// chunks, or an allocation of its own when b is longer than max.
func (c *Chunks) Clone(b []byte, max int) []byte {
	switch n := len(b); {
	case n == 0:
		return nil
	case n > max:
		return slices.Clip(append([]byte(nil), b...)) // capped, as a region of a chunk is
	default:
		r := c.Cut(n)
		copy(r, b)
		return r
	}
}

// Write appends at most size bytes to an empty region of the chunks with
// fill, and cuts what fill wrote; a size above MaxRegion gets a buffer of
// its own. size must bound what fill appends.
func (c *Chunks) Write(size int, fill func(dst []byte) []byte) []byte {
	if size > MaxRegion {
		p := fill(make([]byte, 0, size))
		return p[:len(p):len(p)]
	}
	p := fill(c.Room(size)[:0])
	return c.Cut(len(p)) // size is an upper bound: the slack stays in the chunk
}

// Args holds what a dispatcher decodes args into: the []any slices (up to
// MaxArgs args, ArgVals slots at a time) and the bytes of small []byte args
// (at most MaxBin each). Every piece is capped to its length, so a
// handler's append cannot reach a neighbour; the cost is that a handler
// keeping e.Args keeps the slab chunk, and what other events cut from it,
// alive.
type Args struct {
	vals  []any
	bytes Chunks
}

// Vals returns n slots for args: cut from the slab when n is small.
func (a *Args) Vals(n int) []any {
	if a == nil || n == 0 || n > MaxArgs {
		return make([]any, n)
	}
	if len(a.vals) < n {
		a.vals = make([]any, ArgVals)
	}
	v := a.vals[:n:n]
	a.vals = a.vals[n:]
	return v
}

// Bin returns an owned copy of a []byte arg's bytes.
func (a *Args) Bin(b []byte) []byte {
	if a == nil || len(b) == 0 || len(b) > MaxBin {
		return append([]byte{}, b...)
	}
	return a.bytes.Clone(b, MaxBin)
}
