package store

import (
	"slices"
	"time"
)

// The store's byte ring starts at storeMinBytes, so that a node at rest
// stays small, and doubles as the events it holds need, up to storeMaxBytes.
// The bound caps what a burst of large events can pin (the count bound alone
// would let 4×BufferMax events of up to a frame each stay resident); past it
// the oldest entries are evicted to make room, and an event larger than the
// bound is not stored at all (a GRAFT for it is a miss, as for an evicted one).
const (
	storeMinBytes = 64 << 10
	storeMaxBytes = 64 << 20
)

// noIndex is storeEntry.ix for an entry no seq index points to.
const noIndex = -1

// Key is an event's identity.
type Key struct {
	Origin    string
	Boot, Seq uint64
}

// originBoot is one boot of an origin: what the recent store indexes by.
type originBoot struct {
	origin string
	boot   uint64
}

// Recent keeps the last events this node released, to answer GRAFTs. It is bounded by count (a ring of entries), by bytes (a ring
// of their encodings) and by age (entries older than maxAge are evicted as
// new ones arrive, and never served). Not safe for concurrent use.
//
// It is on the path of every event, so it avoids a map entry per event: an
// (origin, boot)'s seqs are contiguous and released in order, so each
// (origin, boot) indexes its slots by seq offset. And the entries hold no
// pointers: each pointer written into the 16k-entry ring costs a write
// barrier while the GC runs, and each is marked. So an entry names its index
// by number, and its bytes by offset into buf, where the store copies them:
// the caller's payload may be a region of a link's read buffer, valid only
// while the event is received.
type Recent struct {
	maxAge time.Duration
	clock  storeClock // entries' at
	ring   []storeEntry
	head   int // oldest entry
	size   int

	// buf holds the entries' bytes, each contiguous, in the ring's order:
	// the live bytes are [rd, wr) or, once wrapped, [rd, len) and [0, wr),
	// where rd is the oldest entry's offset. An encoding that does not fit
	// before the end starts again at 0, and the tail is left unused.
	buf      []byte
	rd, wr   int
	live     int // bytes of the stored entries
	maxBytes int // storeMaxBytes; tests lower it

	byOrigin map[originBoot]int32 // into ixs
	ixs      []seqSlots
	freeIxs  []int32 // ixs not in use
	// recent caches index numbers (plus one; 0: none) by a cheap hash of
	// their (origin, boot): the map hashes the whole origin, and events of
	// a few busy origins interleave. A hit is checked against the index's
	// own ob (a freed index has none), so nothing invalidates it.
	recent [8]int32

	// repathed holds, by ring slot, the encodings a GRAFT made of unpathed
	// entries (with this node on the path). They are longer than the bytes
	// in buf and rare, so they stay out of the ring.
	repathed map[int32][]byte
}

// seqSlots maps seqs first, first+1, … to ring slots (-1: not stored):
// seq first+i is at slots[start+i]. Trimming the front moves start, so that
// the slice is only rewritten when it is compacted or grown.
type seqSlots struct {
	ob    originBoot
	first uint64
	start int
	slots []int32
}

// slot returns seq's ring slot, -1 if it is not indexed.
func (ix *seqSlots) slot(seq uint64) int32 {
	if seq < ix.first || seq-ix.first >= uint64(len(ix.slots)-ix.start) {
		return -1
	}
	return ix.slots[ix.start+int(seq-ix.first)]
}

// storeEntry is one stored event: where its encoding is in the store's byte
// ring, not its parsed envelope (the router reuses its envelopes once an
// event is released). It has no pointers, and must keep none (a test says
// so): the garbage collector then neither scans the ring nor makes its
// writes pay barriers.
type storeEntry struct {
	seq uint64
	at  time.Duration // since the store's epoch
	off uint32        // of the encoding in buf
	n   uint32        // the encoding's length
	ix  int32         // where the event is indexed, in ixs (noIndex when unindexed)
	// pathed: the encoding has this node last on its path, else it is as
	// the event arrived (re-encoded on the first GRAFT, kept in repathed).
	pathed   bool
	repathed bool
}

// Stored is a stored event as Get hands it out: Payload is the caller's to
// keep (it may send it on links, which keep it for resending); Pathed says
// that this node is last on its path.
type Stored struct {
	Payload []byte
	Pathed  bool
}

func NewRecent(capacity int, maxAge time.Duration) *Recent {
	return &Recent{
		maxAge:   maxAge,
		ring:     make([]storeEntry, capacity),
		buf:      make([]byte, storeMinBytes),
		maxBytes: storeMaxBytes,
		byOrigin: make(map[originBoot]int32),
	}
}

// Cap is the most events the store holds.
func (s *Recent) Cap() int { return len(s.ring) }

// storeClock turns the router's clock readings into the stores' entry
// times: durations since the first reading, which fit a pointer-free entry.
type storeClock struct {
	epoch time.Time
	// The last reading: a batch of events from a link shares one, and
	// Time.Sub costs more than comparing the readings.
	lastNow time.Time
	lastAt  time.Duration
}

// since is now as an entry's at.
func (c *storeClock) since(now time.Time) time.Duration {
	if now == c.lastNow {
		return c.lastAt
	}
	if c.epoch.IsZero() {
		c.epoch = now
	}
	c.lastNow, c.lastAt = now, now.Sub(c.epoch)
	return c.lastAt
}

// Add stores a copy of k's payload, evicting the oldest entries when full
// (by count or by bytes) and every entry past maxAge. An event older than
// what its (origin, boot) already indexes (a late arrival) is not stored, nor
// is one larger than the byte bound: the store serves GRAFTs best effort, and
// misses are counted where they are asked for.
func (s *Recent) Add(k Key, payload []byte, pathed bool, now time.Time) {
	at := s.clock.since(now)
	s.expire(at)
	if len(payload) > s.maxBytes {
		return
	}
	ob := originBoot{k.Origin, k.Boot}
	ixn := s.index(ob, k.Seq)
	if ix := &s.ixs[ixn]; ix.slot(k.Seq) >= 0 || k.Seq < ix.first {
		return // stored already, or late
	}
	if s.size == len(s.ring) {
		s.evictOldest()
	}
	off := s.alloc(len(payload)) // may evict too
	if s.ixs[ixn].ob != ob {     // an eviction emptied the index and freed it
		ixn = s.index(ob, k.Seq)
	}
	ix := &s.ixs[ixn]
	d := k.Seq - ix.first
	if n := uint64(len(ix.slots) - ix.start); d >= n && d-n > uint64(len(s.ring)) {
		// A jump far beyond everything indexed: start the index afresh.
		for _, slot := range ix.slots[ix.start:] {
			if slot >= 0 {
				s.ring[slot].ix = noIndex // evicted in its turn
			}
		}
		ix.first, ix.start, ix.slots, d = k.Seq, 0, ix.slots[:0], 0
	}
	if ix.start > 0 && ix.start >= len(ix.slots)/2 && len(ix.slots) == cap(ix.slots) {
		// Compact rather than grow.
		n := copy(ix.slots, ix.slots[ix.start:])
		ix.slots, ix.start = ix.slots[:n], 0
	}
	slot := s.head + s.size // mod len(s.ring), without a division
	if slot >= len(s.ring) {
		slot -= len(s.ring)
	}
	if uint64(len(ix.slots)-ix.start) == d {
		ix.slots = append(ix.slots, int32(slot)) // the next seq: the common case
	} else {
		for uint64(len(ix.slots)-ix.start) <= d {
			ix.slots = append(ix.slots, -1)
		}
		ix.slots[ix.start+int(d)] = int32(slot)
	}
	copy(s.buf[off:], payload)
	s.ring[slot] = storeEntry{seq: k.Seq, at: at, off: uint32(off), n: uint32(len(payload)), ix: ixn, pathed: pathed}
	s.size++
	s.live += len(payload)
}

// alloc reserves n contiguous bytes of buf after the newest entry's and
// returns their offset. It grows buf while the bound allows, and beyond it
// evicts the oldest entries until they fit. n is at most maxBytes.
func (s *Recent) alloc(n int) int {
	for {
		if s.size == 0 {
			s.rd, s.wr = 0, 0
		}
		// Unwrapped (wr >= rd), the room is after wr, or else before rd.
		// Wrapped, it is between wr and rd. Never up to rd exactly: wr ==
		// rd reads as unwrapped.
		switch {
		case s.wr >= s.rd && n <= len(s.buf)-s.wr:
			off := s.wr
			s.wr += n
			return off
		case s.wr >= s.rd && n < s.rd, s.wr < s.rd && s.wr+n < s.rd:
			off := 0
			if s.wr < s.rd {
				off = s.wr
			}
			s.wr = off + n
			return off
		}
		if len(s.buf) < s.maxBytes {
			s.grow(n)
		} else {
			s.evictOldest()
		}
	}
}

// grow doubles buf (or more, to hold n more bytes; at most maxBytes),
// moving the live bytes to its front in at most two copies: [rd, wr), or
// once wrapped [rd, len) and then [0, wr). The entries' offsets shift by
// the same amount per part; a wrapped ring's unused tail (shorter than one
// encoding) moves along, so that no entry has to be visited for its bytes.
// (Copying entry by entry into the fresh buffer was ~6 % of a 100-node
// blast's CPU: every node's store grows while it warms up.)
func (s *Recent) grow(n int) {
	size := len(s.buf)
	for size < s.live+n && size < s.maxBytes {
		size *= 2
	}
	size = min(max(size, 2*len(s.buf)), s.maxBytes)
	buf := make([]byte, size)
	w := 0
	if s.size > 0 {
		wrapped := s.wr < s.rd
		end := s.wr
		if wrapped {
			end = len(s.buf)
		}
		w = copy(buf, s.buf[s.rd:end])
		if wrapped {
			w += copy(buf[w:], s.buf[:s.wr])
		}
		head, tail := uint32(s.rd), uint32(len(s.buf)-s.rd)
		for i := range s.size {
			j := s.head + i
			if j >= len(s.ring) {
				j -= len(s.ring)
			}
			e := &s.ring[j]
			if e.off >= head {
				e.off -= head
			} else {
				e.off += tail
			}
		}
	}
	s.buf, s.rd, s.wr = buf, 0, w
}

// index returns the seq index of ob, made (starting at seq) if there is none.
func (s *Recent) index(ob originBoot, seq uint64) int32 {
	h := recentHash(ob)
	if c := s.recent[h]; c > 0 && s.ixs[c-1].ob == ob {
		return c - 1
	}
	ixn, ok := s.byOrigin[ob]
	if !ok {
		if k := len(s.freeIxs); k > 0 {
			ixn, s.freeIxs = s.freeIxs[k-1], s.freeIxs[:k-1]
		} else {
			ixn = int32(len(s.ixs))
			s.ixs = append(s.ixs, seqSlots{})
		}
		ix := &s.ixs[ixn]
		ix.ob, ix.first, ix.start, ix.slots = ob, seq, 0, ix.slots[:0] // the slots' array is reused
		s.byOrigin[ob] = ixn
	}
	s.recent[h] = ixn + 1
	return ixn
}

// recentHash is ob's slot in recent: its boot (a clock reading) and the
// origin's length and last bytes, where ids mostly differ.
func recentHash(ob originBoot) int {
	o := ob.origin
	h := ob.boot ^ uint64(len(o))
	if len(o) > 0 {
		h ^= uint64(o[len(o)-1]) ^ uint64(o[len(o)/2])<<2
	}
	return int(h & 7)
}

// find returns the ring slot of k, -1 if it is not there or too old.
func (s *Recent) find(k Key, now time.Time) int32 {
	ixn, ok := s.byOrigin[originBoot{k.Origin, k.Boot}]
	if !ok {
		return -1
	}
	slot := s.ixs[ixn].slot(k.Seq)
	if slot < 0 {
		return -1
	}
	if e := &s.ring[slot]; e.ix != ixn || e.seq != k.Seq || s.clock.since(now)-e.at > s.maxAge {
		return -1
	}
	return slot
}

// get returns the stored event k, nil if it is not there or too old. Its
// payload is a copy (or a re-encoding the store no longer writes to): the
// ring's bytes are reused as entries are evicted.
func (s *Recent) Get(k Key, now time.Time) *Stored {
	b, pathed, shared, ok := s.Peek(k, now)
	switch {
	case !ok:
		return nil
	case !shared:
		b = slices.Clone(b)
	}
	return &Stored{Payload: b, Pathed: pathed}
}

// Has reports whether k is stored and not too old.
func (s *Recent) Has(k Key, now time.Time) bool { return s.find(k, now) >= 0 }

// Peek returns k's encoding and whether this node is last on its path,
// without copying it: unless shared, the bytes are the ring's, valid only
// until the next Add (which may reuse them), for a caller that copies or
// re-encodes them at once. A repathed entry's bytes are its re-encoding,
// which the store never writes to: shared. (Get's copy and its Stored were
// two allocations per event of every GRAFT's answer.)
func (s *Recent) Peek(k Key, now time.Time) (payload []byte, pathed, shared, ok bool) {
	slot := s.find(k, now)
	if slot < 0 {
		return nil, false, false, false
	}
	e := &s.ring[slot]
	if e.repathed {
		return s.repathed[slot], true, true, true
	}
	return s.buf[e.off : e.off+e.n : e.off+e.n], e.pathed, false, true
}

// repath keeps payload, the encoding of k with this node last on its path,
// to be served for k from now on. The store keeps payload as it is: the
// caller must not modify it.
func (s *Recent) Repath(k Key, payload []byte, now time.Time) {
	slot := s.find(k, now)
	if slot < 0 {
		return
	}
	if s.repathed == nil {
		s.repathed = make(map[int32][]byte)
	}
	s.repathed[slot] = payload
	e := &s.ring[slot]
	e.pathed, e.repathed = true, true
}

// expire evicts the entries older than maxAge at at.
func (s *Recent) expire(at time.Duration) {
	for s.size > 0 && at-s.ring[s.head].at > s.maxAge {
		s.evictOldest()
	}
}

// ExpireAt evicts the entries older than the age bound at now.
func (s *Recent) ExpireAt(now time.Time) { s.expire(s.clock.since(now)) }

// evictOldest drops the oldest entry, and frees its bytes: the next entry's
// are the oldest live ones. The slot keeps its stale values, which nothing
// reads (an index no longer points to it) and the GC does not scan.
func (s *Recent) evictOldest() {
	slot := int32(s.head)
	e := &s.ring[slot]
	if e.ix != noIndex {
		s.unindex(e.ix, e.seq, slot)
	}
	if e.repathed {
		delete(s.repathed, slot)
		e.repathed = false
	}
	s.live -= int(e.n)
	if s.head++; s.head == len(s.ring) {
		s.head = 0
	}
	s.size--
	if s.size > 0 {
		s.rd = int(s.ring[s.head].off)
	} else {
		s.rd, s.wr = 0, 0
	}
}

// unindex forgets the slot of seq in ixs[ixn] and trims the index of the
// unstored seqs at its front; an emptied index leaves byOrigin, and its
// number (and slots' array) are reused.
func (s *Recent) unindex(ixn int32, seq uint64, slot int32) {
	ix := &s.ixs[ixn]
	n := ix.start
	switch {
	case seq == ix.first && n < len(ix.slots) && ix.slots[n] == slot:
		n++ // the oldest seq, evicted first: the common case, no write
	case ix.slot(seq) == slot:
		ix.slots[ix.start+int(seq-ix.first)] = -1
	}
	for n < len(ix.slots) && ix.slots[n] < 0 {
		n++
	}
	if n < len(ix.slots) {
		ix.first += uint64(n - ix.start)
		ix.start = n
		return
	}
	if got, ok := s.byOrigin[ix.ob]; ok && got == ixn {
		delete(s.byOrigin, ix.ob)
	}
	ix.ob, ix.slots = originBoot{}, ix.slots[:0]
	s.freeIxs = append(s.freeIxs, ixn)
}
