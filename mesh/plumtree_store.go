package mesh

import "time"

// eventKey is an event's identity.
type eventKey struct {
	origin    string
	boot, seq uint64
}

// recentStore keeps the last events this node released (or emitted), to
// answer GRAFTs. It is bounded by count (a ring) and by age (entries older
// than maxAge are evicted as new ones arrive, and never served). Not safe for
// concurrent use: the router's lock guards it.
//
// It is on the path of every event, so it avoids a map entry per event: an
// (origin, boot)'s seqs are contiguous and released in order, so each
// (origin, boot) indexes its slots by seq offset. Entries hold two pointers
// (the index and the bytes) and no time.Time: each pointer written into the
// 16k-entry ring costs a write barrier while the GC runs, and each is marked.
type recentStore struct {
	maxAge   time.Duration
	epoch    time.Time // entries' at is measured from it
	ring     []storeEntry
	head     int // oldest entry
	size     int
	byOrigin map[originBoot]*seqSlots
	// The index of the previous add: consecutive events mostly share their
	// (origin, boot), and the lookup hashes the origin.
	lastOB originBoot
	lastIx *seqSlots
}

// seqSlots maps seqs first, first+1, … to ring slots (-1: not stored):
// seq first+i is at slots[start+i]. Trimming the front moves start, so that
// the slice (a pointer) is only rewritten when it is compacted or grown.
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

// storeEntry is one stored event. It holds the event's encoding only, not
// its parsed envelope: the payloads are plain bytes (mostly regions of the
// links' read slabs), which the garbage collector does not scan, and the
// router reuses its envelopes once an event is released.
type storeEntry struct {
	ix  *seqSlots // where the event is indexed (nil when unindexed)
	seq uint64
	// payload is the event's encoding: with this node last on its path
	// when pathed, else as it arrived (re-encoded on the first GRAFT).
	payload []byte
	pathed  bool
	at      time.Duration // since the store's epoch
}

func newRecentStore(capacity int, maxAge time.Duration) *recentStore {
	return &recentStore{
		maxAge:   maxAge,
		ring:     make([]storeEntry, capacity),
		byOrigin: make(map[originBoot]*seqSlots),
	}
}

// since is now as an entry's at.
func (s *recentStore) since(now time.Time) time.Duration {
	if s.epoch.IsZero() {
		s.epoch = now
	}
	return now.Sub(s.epoch)
}

// add stores env's payload, evicting the oldest entry when full and every
// entry past maxAge. An event older than what its (origin, boot) already
// indexes (a late arrival) is not stored: the store serves GRAFTs best
// effort, and misses are counted where they are asked for.
func (s *recentStore) add(env *envelope, payload []byte, pathed bool, now time.Time) {
	at := s.since(now)
	s.expire(at)
	ob := originBoot{env.Origin, env.Boot}
	ix := s.index(ob, env.Seq)
	if ix.slot(env.Seq) >= 0 {
		return // stored already
	}
	if s.size == len(s.ring) {
		s.evictOldest(false)
		if s.lastIx != ix { // the eviction emptied ix and dropped it
			ix = s.index(ob, env.Seq)
		}
	}
	if env.Seq < ix.first {
		return
	}
	off := env.Seq - ix.first
	if n := uint64(len(ix.slots) - ix.start); off >= n && off-n > uint64(len(s.ring)) {
		// A jump far beyond everything indexed: start the index afresh.
		for _, slot := range ix.slots[ix.start:] {
			if slot >= 0 {
				s.ring[slot].ix = nil // unindexed; evicted in its turn
			}
		}
		ix.first, ix.start, ix.slots, off = env.Seq, 0, ix.slots[:0], 0
	}
	if ix.start > 0 && ix.start >= len(ix.slots)/2 && len(ix.slots) == cap(ix.slots) {
		// Compact rather than grow.
		n := copy(ix.slots, ix.slots[ix.start:])
		ix.slots, ix.start = ix.slots[:n], 0
	}
	for uint64(len(ix.slots)-ix.start) <= off {
		ix.slots = append(ix.slots, -1)
	}
	slot := (s.head + s.size) % len(s.ring)
	s.ring[slot] = storeEntry{ix: ix, seq: env.Seq, payload: payload, pathed: pathed, at: at}
	ix.slots[ix.start+int(off)] = int32(slot)
	s.size++
}

// index returns the seq index of ob, made (starting at seq) if there is none.
func (s *recentStore) index(ob originBoot, seq uint64) *seqSlots {
	if s.lastIx != nil && ob == s.lastOB {
		return s.lastIx
	}
	ix := s.byOrigin[ob]
	if ix == nil {
		ix = &seqSlots{ob: ob, first: seq}
		s.byOrigin[ob] = ix
	}
	s.lastOB, s.lastIx = ob, ix
	return ix
}

// get returns the stored entry of k, nil if it is not there or too old.
func (s *recentStore) get(k eventKey, now time.Time) *storeEntry {
	ix := s.byOrigin[originBoot{k.origin, k.boot}]
	if ix == nil {
		return nil
	}
	slot := ix.slot(k.seq)
	if slot < 0 {
		return nil
	}
	e := &s.ring[slot]
	if e.ix != ix || e.seq != k.seq || s.since(now)-e.at > s.maxAge {
		return nil
	}
	return e
}

// expire evicts the entries older than maxAge at at.
func (s *recentStore) expire(at time.Duration) {
	for s.size > 0 && at-s.ring[s.head].at > s.maxAge {
		s.evictOldest(true)
	}
}

// expireAt is expire for a clock reading.
func (s *recentStore) expireAt(now time.Time) { s.expire(s.since(now)) }

// evictOldest drops the oldest entry. Its slot is cleared only if asked
// (it is about to be overwritten otherwise: the write barriers of clearing
// are measurable).
func (s *recentStore) evictOldest(clear bool) {
	e := &s.ring[s.head]
	if e.ix != nil {
		s.unindex(e.ix, e.seq, int32(s.head))
	}
	if clear {
		*e = storeEntry{}
	}
	s.head = (s.head + 1) % len(s.ring)
	s.size--
}

// unindex forgets the slot of seq in ix and trims ix of the unstored seqs at
// its front; an emptied ix leaves the index.
func (s *recentStore) unindex(ix *seqSlots, seq uint64, slot int32) {
	if ix.slot(seq) == slot {
		ix.slots[ix.start+int(seq-ix.first)] = -1
	}
	n := ix.start
	for n < len(ix.slots) && ix.slots[n] < 0 {
		n++
	}
	if n < len(ix.slots) {
		ix.first += uint64(n - ix.start)
		ix.start = n
		return
	}
	if s.byOrigin[ix.ob] == ix {
		delete(s.byOrigin, ix.ob)
	}
	if s.lastIx == ix {
		s.lastOB, s.lastIx = originBoot{}, nil
	}
}
