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
// (origin, boot) indexes its slots by seq offset.
type recentStore struct {
	maxAge   time.Duration
	ring     []storeEntry
	head     int // oldest entry
	size     int
	byOrigin map[originBoot]*seqSlots
	// The index of the previous add: consecutive events mostly share their
	// (origin, boot), and the lookup hashes the origin.
	lastOB originBoot
	lastIx *seqSlots
}

// seqSlots maps seqs first, first+1, … to ring slots (-1: not stored).
type seqSlots struct {
	first uint64
	slots []int32
}

// storeEntry is one stored event. It holds the event's encoding only, not
// its parsed envelope: the payloads are plain bytes (mostly regions of the
// links' read slabs), which the garbage collector does not scan, and the
// router reuses its envelopes once an event is released.
type storeEntry struct {
	key eventKey
	ix  *seqSlots // where key is indexed (nil when unindexed)
	// payload is the event's encoding: with this node last on its path
	// when pathed, else as it arrived (re-encoded on the first GRAFT).
	payload []byte
	pathed  bool
	at      time.Time
}

func newRecentStore(capacity int, maxAge time.Duration) *recentStore {
	return &recentStore{
		maxAge:   maxAge,
		ring:     make([]storeEntry, capacity),
		byOrigin: make(map[originBoot]*seqSlots),
	}
}

// add stores env's payload, evicting the oldest entry when full
// and every entry past maxAge. An event older than what its (origin, boot)
// already indexes (a late arrival) is not stored: the store serves GRAFTs
// best effort, and misses are counted where they are asked for.
func (s *recentStore) add(env *envelope, payload []byte, pathed bool, now time.Time) {
	s.expire(now)
	ix := s.index(originBoot{env.Origin, env.Boot}, env.Seq)
	if env.Seq >= ix.first && env.Seq-ix.first < uint64(len(ix.slots)) && ix.slots[env.Seq-ix.first] >= 0 {
		return // stored already
	}
	if s.size == len(s.ring) {
		s.evictOldest()
		if s.lastIx != ix { // the eviction emptied ix and dropped it
			ix = s.index(originBoot{env.Origin, env.Boot}, env.Seq)
		}
	}
	if env.Seq < ix.first {
		return
	}
	off := env.Seq - ix.first
	if off >= uint64(len(ix.slots)) && off-uint64(len(ix.slots)) > uint64(len(s.ring)) {
		// A jump far beyond everything indexed: start the index afresh.
		for _, slot := range ix.slots {
			if slot >= 0 {
				s.ring[slot].ix = nil // unindexed; evicted in its turn
			}
		}
		ix.first, ix.slots, off = env.Seq, ix.slots[:0], 0
	}
	for uint64(len(ix.slots)) <= off {
		ix.slots = append(ix.slots, -1)
	}
	slot := (s.head + s.size) % len(s.ring)
	s.ring[slot] = storeEntry{key: eventKey{env.Origin, env.Boot, env.Seq}, ix: ix, payload: payload, pathed: pathed, at: now}
	ix.slots[off] = int32(slot)
	s.size++
}

// index returns the seq index of ob, made (starting at seq) if there is none.
func (s *recentStore) index(ob originBoot, seq uint64) *seqSlots {
	if s.lastIx != nil && ob == s.lastOB {
		return s.lastIx
	}
	ix := s.byOrigin[ob]
	if ix == nil {
		ix = &seqSlots{first: seq}
		s.byOrigin[ob] = ix
	}
	s.lastOB, s.lastIx = ob, ix
	return ix
}

// get returns the stored entry of k, nil if it is not there or too old.
func (s *recentStore) get(k eventKey, now time.Time) *storeEntry {
	ix := s.byOrigin[originBoot{k.origin, k.boot}]
	if ix == nil || k.seq < ix.first || k.seq-ix.first >= uint64(len(ix.slots)) {
		return nil
	}
	slot := ix.slots[k.seq-ix.first]
	if slot < 0 {
		return nil
	}
	e := &s.ring[slot]
	if e.key != k || now.Sub(e.at) > s.maxAge {
		return nil
	}
	return e
}

func (s *recentStore) expire(now time.Time) {
	for s.size > 0 && now.Sub(s.ring[s.head].at) > s.maxAge {
		s.evictOldest()
	}
}

func (s *recentStore) evictOldest() {
	e := &s.ring[s.head]
	if e.ix != nil {
		s.unindex(e.ix, e.key, int32(s.head))
	}
	*e = storeEntry{}
	s.head = (s.head + 1) % len(s.ring)
	s.size--
}

// unindex forgets the slot of k in ix and trims ix of the unstored seqs at
// its front; an emptied ix leaves the index.
func (s *recentStore) unindex(ix *seqSlots, k eventKey, slot int32) {
	if k.seq >= ix.first && k.seq-ix.first < uint64(len(ix.slots)) && ix.slots[k.seq-ix.first] == slot {
		ix.slots[k.seq-ix.first] = -1
	}
	n := 0
	for n < len(ix.slots) && ix.slots[n] < 0 {
		n++
	}
	if n < len(ix.slots) {
		ix.first += uint64(n)
		ix.slots = ix.slots[n:]
		return
	}
	if ob := (originBoot{k.origin, k.boot}); s.byOrigin[ob] == ix {
		delete(s.byOrigin, ob)
	}
	if s.lastIx == ix {
		s.lastOB, s.lastIx = originBoot{}, nil
	}
}
