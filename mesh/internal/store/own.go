package store

import "time"

// Own keeps this node's own recent events, to answer GRAFTs for them,
// as the recent-event store does for the events it relays, within the same
// bounds (count, bytes, age). It keeps the payloads Emit cut, not copies:
// they are never written again (the links' buffers share them until the
// peers acknowledge), so storing an own event costs no copy into a byte
// ring and no per-origin index (the emitter of meshbench's blast spent
// ~60 ns per event in the recent-event store, most of it writing the copy
// into memory beyond the caches). Own seqs are contiguous within a boot, so
// seq first+i is at slot head+i. Not safe for concurrent use.
type Own struct {
	maxAge   time.Duration
	maxBytes int
	capacity int        // the count bound; the ring grows to it as events come
	clock    storeClock // entries' at
	ring     []ownEntry
	head     int    // slot of seq first
	first    uint64 // the oldest seq stored; first+size is the next
	size     int
	bytes    int // of the stored payloads
}

// ownMin is the ring's first size: a node that emits little keeps a
// small one (the full ring is 32 bytes per event of the count bound).
const ownMin = 64

type ownEntry struct {
	payload []byte
	at      time.Duration // storeClock.since
}

func NewOwn(capacity int, maxAge time.Duration) *Own {
	return &Own{maxAge: maxAge, maxBytes: storeMaxBytes, capacity: capacity,
		ring: make([]ownEntry, min(capacity, ownMin))}
}

// grow doubles the ring, up to capacity, keeping the entries in order from
// slot 0.
func (s *Own) grow() {
	ring := make([]ownEntry, min(2*len(s.ring), s.capacity))
	n := copy(ring, s.ring[s.head:])
	copy(ring[n:], s.ring[:s.head])
	s.ring, s.head = ring, 0
}

// add keeps payload, the encoding of this node's event seq, which no one
// may modify. Seqs come in order; one that does not follow the last starts
// the store afresh.
func (s *Own) Add(seq uint64, payload []byte, now time.Time) {
	at := s.clock.since(now)
	s.expire(at)
	if len(payload) > s.maxBytes {
		return
	}
	if s.size > 0 && seq != s.first+uint64(s.size) {
		for s.size > 0 {
			s.evictOldest()
		}
	}
	if s.size == 0 {
		s.first = seq
	}
	if s.size == len(s.ring) && len(s.ring) < s.capacity {
		s.grow()
	}
	for s.size == len(s.ring) || s.size > 0 && s.bytes+len(payload) > s.maxBytes {
		s.evictOldest() // first moves on with it: to seq once all are gone
	}
	slot := s.head + s.size // mod len(s.ring), without a division
	if slot >= len(s.ring) {
		slot -= len(s.ring)
	}
	s.ring[slot] = ownEntry{payload: payload, at: at}
	s.size++
	s.bytes += len(payload)
}

// get returns own event seq's payload, nil if it is not stored or too old.
// The payload is shared: the caller sends it, never modifies it.
func (s *Own) Get(seq uint64, now time.Time) []byte {
	if seq < s.first || seq-s.first >= uint64(s.size) {
		return nil
	}
	slot := s.head + int(seq-s.first)
	if slot >= len(s.ring) {
		slot -= len(s.ring)
	}
	if e := &s.ring[slot]; s.clock.since(now)-e.at <= s.maxAge {
		return e.payload
	}
	return nil
}

// expire evicts the entries older than maxAge at at.
func (s *Own) expire(at time.Duration) {
	for s.size > 0 && at-s.ring[s.head].at > s.maxAge {
		s.evictOldest()
	}
}

func (s *Own) ExpireAt(now time.Time) { s.expire(s.clock.since(now)) }

func (s *Own) evictOldest() {
	e := &s.ring[s.head]
	s.bytes -= len(e.payload)
	*e = ownEntry{} // let the payload's chunk go
	if s.head++; s.head == len(s.ring) {
		s.head = 0
	}
	s.first++
	s.size--
}
