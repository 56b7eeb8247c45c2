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
type recentStore struct {
	maxAge time.Duration
	ring   []storeEntry
	head   int // oldest entry
	size   int
	index  map[eventKey]int // → slot in ring
}

type storeEntry struct {
	key     eventKey
	env     *envelope
	payload []byte // the encoding with this node on the path; nil until needed
	at      time.Time
}

func newRecentStore(capacity int, maxAge time.Duration) *recentStore {
	return &recentStore{
		maxAge: maxAge,
		ring:   make([]storeEntry, capacity),
		index:  make(map[eventKey]int, capacity),
	}
}

// add stores env (payload may be nil), evicting the oldest entry when full
// and every entry past maxAge.
func (s *recentStore) add(env *envelope, payload []byte, now time.Time) {
	s.expire(now)
	if s.size == len(s.ring) {
		s.evictOldest()
	}
	k := eventKey{env.Origin, env.Boot, env.Seq}
	if _, dup := s.index[k]; dup {
		return
	}
	slot := (s.head + s.size) % len(s.ring)
	s.ring[slot] = storeEntry{key: k, env: env, payload: payload, at: now}
	s.index[k] = slot
	s.size++
}

// get returns the stored entry of k, nil if it is not there or too old.
func (s *recentStore) get(k eventKey, now time.Time) *storeEntry {
	slot, ok := s.index[k]
	if !ok {
		return nil
	}
	e := &s.ring[slot]
	if now.Sub(e.at) > s.maxAge {
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
	delete(s.index, e.key)
	*e = storeEntry{}
	s.head = (s.head + 1) % len(s.ring)
	s.size--
}
