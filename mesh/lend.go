package mesh

// Lent args: the bytes an OnRaw handler reads are lent to it for the call.
//
// The router copies each released event's args out of the link's read
// buffer before it queues the event for the dispatcher. For an event that
// only OnRaw handlers receive, the copy goes into a chunk the dispatcher
// gives back once every event in it has been handled, and the router
// writes the next events into it: no allocation, no zeroing, and the chunk
// is still in the cache when it is reused (meshbench's blast: allocating
// and zeroing the copies' chunks was ~5% of the CPU, and their garbage
// most of what the collector had to do). The price is OnRaw's promise: its
// Event, RawArgs' bytes and Scan are valid until the handler returns
// (Event.Clone keeps one). An event that an On handler receives is copied
// into chunks the collector frees, as before, so On's Event stays the
// handler's to keep.
//
// A chunk goes back by a marker: when the router starts a new chunk, it
// stages an item that carries the full one after the last event cut from
// it; the dispatcher runs items in order, so when it reaches the marker no
// queued event reads the chunk any more. A marker dropped with a full
// queue's tail only lets its chunk go to the collector.

// lentChunk is one chunk of lent bytes.
type lentChunk [chunkSize]byte

const (
	lentMax  = 4 << 10 // larger args are copied into memory of their own
	lentKeep = 32      // chunks the router keeps for reuse, and as many on their way back (1 MiB in all)
)

// lender is the router's side: the chunk being filled and the chunks the
// dispatcher gave back, taken over at each commit. Guarded by the router's
// lock, as stage and commit are.
type lender struct {
	cur   *lentChunk
	off   int          // the next free byte of cur
	spare []*lentChunk // given back, the most recently used last
	made  int          // chunks allocated, for tests
}

// lend copies b (1 to lentMax bytes) into the current chunk, with the rest
// of the chunk as capacity: never capped to its length (the chunk's last
// byte is never lent), which is how an item says its args are lent. full is
// the chunk this copy had to leave, nil if none: the caller stages its
// marker before the event.
func (l *lender) lend(b []byte) (r []byte, full *lentChunk) {
	if l.cur == nil || len(b) >= chunkSize-l.off {
		full = l.cur
		if k := len(l.spare); k > 0 {
			l.cur, l.spare = l.spare[k-1], l.spare[:k-1]
		} else {
			l.cur = new(lentChunk)
			l.made++
		}
		l.off = 0
	}
	r = l.cur[l.off : l.off+len(b)]
	copy(r, b)
	l.off += len(b)
	return r, full
}

// giveBack is the dispatcher's side, when it runs a marker: the chunk
// joins the free ones at run's next hold of the lock, and commit hands them
// to the router. Called by run only.
func (d *dispatcher) giveBack(c *lentChunk) {
	if len(d.returned) < lentKeep {
		d.returned = append(d.returned, c)
	}
}

// freeReturned moves the chunks run gave back to the free ones, at most
// lentKeep of them (the others go to the collector). Under d.mu, by run.
func (d *dispatcher) freeReturned() {
	for _, c := range d.returned {
		if len(d.free) < lentKeep {
			d.free = append(d.free, c)
		}
	}
	clear(d.returned)
	d.returned = d.returned[:0]
}

// takeFree gives the router the free chunks, up to lentKeep spare ones in
// all (the others go to the collector). Under d.mu, by commit.
func (d *dispatcher) takeFree() {
	if len(d.free) == 0 {
		return
	}
	room := max(lentKeep-len(d.lend.spare), 0)
	d.lend.spare = append(d.lend.spare, d.free[:min(room, len(d.free))]...)
	clear(d.free)
	d.free = d.free[:0]
}

// mustOwn reports whether an event's args must be copied into memory of
// their own rather than lent: they are too large for a chunk, or an On
// handler among the event's handlers may keep them.
func mustOwn(args []byte, snap *handlerSnap, named []*eventHandler) bool {
	return len(args) > lentMax || snap.wantsArgs(named)
}
