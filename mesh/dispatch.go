package mesh

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// handlerTable holds the On and OnPeer registrations, copy-on-write so that
// the dispatcher reads it without a lock.
type handlerTable struct {
	mu   sync.Mutex
	snap atomic.Pointer[handlerSnap]
}

type handlerSnap struct {
	byName map[string][]*eventHandler
	peer   []*peerHandler
	// all is byName["*"] and named counts the other names, so that the
	// common case, catch-all handlers only, costs no map lookup per event;
	// allArgs says whether some of all are On handlers (Args needed).
	all     []*eventHandler
	named   int
	allArgs bool
}

// eventHandler is an On handler or, raw, an OnRaw one: a raw handler's
// Event has no Args, and an event that reaches raw handlers only is never
// decoded.
type eventHandler struct {
	fn  func(Event)
	raw bool
}
type peerHandler struct{ fn func(PeerEvent) }

func newHandlerTable() *handlerTable {
	t := &handlerTable{}
	t.snap.Store(&handlerSnap{byName: map[string][]*eventHandler{}})
	return t
}

// handlers returns the handlers of an event named name: named ones, then
// catch-all ones. An event named "*" has only the catch-all ones.
func (s *handlerSnap) handlers(name string) (named, all []*eventHandler) {
	if s.named > 0 && name != "*" {
		named = s.byName[name]
	}
	return named, s.all
}

func (t *handlerTable) update(f func(s *handlerSnap)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	s := &handlerSnap{byName: make(map[string][]*eventHandler, len(old.byName)), peer: append([]*peerHandler(nil), old.peer...)}
	for k, v := range old.byName {
		s.byName[k] = append([]*eventHandler(nil), v...)
	}
	f(s)
	s.all, s.named = s.byName["*"], len(s.byName)
	s.allArgs = needArgs(s.all)
	if len(s.all) > 0 {
		s.named--
	}
	t.snap.Store(s)
}

func (t *handlerTable) on(name string, fn func(Event)) func() {
	return t.add(name, &eventHandler{fn: fn})
}

func (t *handlerTable) onRaw(name string, fn func(Event)) func() {
	return t.add(name, &eventHandler{fn: fn, raw: true})
}

func (t *handlerTable) add(name string, h *eventHandler) func() {
	t.update(func(s *handlerSnap) { s.byName[name] = append(s.byName[name], h) })
	var once sync.Once
	return func() {
		once.Do(func() {
			t.update(func(s *handlerSnap) {
				hs := s.byName[name]
				for i, x := range hs {
					if x == h {
						s.byName[name] = append(hs[:i:i], hs[i+1:]...)
						break
					}
				}
				if len(s.byName[name]) == 0 {
					delete(s.byName, name)
				}
			})
		})
	}
}

func (t *handlerTable) onPeer(fn func(PeerEvent)) func() {
	h := &peerHandler{fn: fn}
	t.update(func(s *handlerSnap) { s.peer = append(s.peer, h) })
	var once sync.Once
	return func() {
		once.Do(func() {
			t.update(func(s *handlerSnap) {
				for i, x := range s.peer {
					if x == h {
						s.peer = append(s.peer[:i:i], s.peer[i+1:]...)
						break
					}
				}
			})
		})
	}
}

// dispatcher runs handlers on one goroutine, in the order items were
// queued. A node has two: one for events, in the order the router released
// them (so handlers see each origin's events in emit order), and one for
// peer events, so that a slow On handler cannot hide the report of its own
// slowness from OnPeer handlers.
//
// Policy for slow handlers: the event queue holds at most max events. When
// a slow handler lets it fill up, newer deliveries to this node's handlers
// are dropped, counted (Stats().HandlerDropped) and reported, at most once a
// second, as an Overflow PeerEvent with no Peer and Err ErrSlowConsumer.
// Relaying to other nodes never waits for handlers. The peer-event queue is
// not bounded by max (peer events are few) and never drops.
type dispatcher struct {
	peers *dispatcher // where slow-consumer reports go; nil for the peer-event dispatcher
	table *handlerTable
	log   hclog.Logger
	max   int

	mu       sync.Mutex
	q        [][]dispatchItem // batches, in order: each commit's staged items, or one peer event
	spare    [][]dispatchItem // emptied batches, for commit to stage into
	events   int              // event items in q
	asleep   bool             // run is waiting for wake: the next item must send it
	closed   bool
	dropped  uint64 // since the last report
	reported time.Time
	// flush reports the drops of the last second once it has passed: without
	// it, drops that stop within a second of a report would only be counted,
	// never reported. Non-nil while armed or running; flushDone closes when
	// its callback has returned.
	flush     *time.Timer
	flushDone chan struct{}
	wake      chan struct{}
	done      chan struct{}

	slab argSlab // Args are cut from it (decodeArgsFast); run's own
	// The router's side (stage, commit), guarded by its lock: the events
	// staged for the next commit (stagedEvents of them events, the others
	// markers), the slab On handlers' args are copied into, and the chunks
	// OnRaw handlers' args are lent from (lend.go).
	staged       []dispatchItem
	stagedEvents int
	copy         rawSlab
	lend         lender
	// Lent chunks given back: returned by run as it runs their markers,
	// free under mu for commit to hand to lend.
	returned, free []*lentChunk
	peerq          []PeerEvent // the peer events of the peer items in q, in order; under mu

	handlerDropped atomic.Uint64
	delivered      atomic.Uint64
}

// dispatchItem is an event (what its handlers see of it, copied out of
// the router's envelope, which the router reuses at once) or, with no
// origin (an event always has one), the marker of a lent chunk whose events
// are all queued before it, or a peer event (the peer dispatcher's, in
// peerq). It is 64 bytes, a cache line: the router writes the items and the
// dispatcher reads them, mostly on the other core, and every line crosses
// (in meshbench's blast, at 88 bytes, the router's stores into the items
// were up to 13% of the CPU when the two ran apart).
type dispatchItem struct {
	name, origin string
	seq          uint64
	// args is the msgpack args array: the dispatcher's copy (rawSlab),
	// capped to its length, or lent (lend.go), with the rest of its chunk as
	// capacity, which is how lent says so; a marker's is its whole chunk.
	args []byte
}

// marker returns the chunk a marker gives back, nil for any other item.
func (it *dispatchItem) marker() *lentChunk {
	if it.origin == "" && len(it.args) == chunkSize {
		return (*lentChunk)(it.args)
	}
	return nil
}

// lent reports whether an event's args are lent (lend.go).
func (it *dispatchItem) lent() bool { return cap(it.args) > len(it.args) }

// newDispatchers starts the event dispatcher (bounded by max) and the
// peer-event dispatcher it reports to.
func newDispatchers(max int, t *handlerTable, log hclog.Logger) (events, peers *dispatcher) {
	peers = &dispatcher{table: t, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	events = &dispatcher{table: t, log: log, max: max, peers: peers, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go peers.run()
	go events.run()
	return events, peers
}

// stage prepares env's event for the handlers, to be queued by the next
// commit: the router stages what one batch from a link releases and commits
// it with one hold of the queue's lock. A staged event is a copy: the router
// reuses env, whose args are a region of the link's read buffer. stage and
// commit are the router's: they run under its lock, in release order.
func (d *dispatcher) stage(env *envelope) {
	snap := d.table.snap.Load()
	named, all := snap.handlers(env.Name)
	if len(named)+len(all) == 0 {
		d.delivered.Add(1) // nobody listens: delivered to no one, without a copy
		return
	}
	d.stagedEvents++
	if len(env.Args) == 0 || mustOwn(env.Args, snap, named) {
		// Cut from a slab that is never written again: On handlers may
		// keep the Event.
		d.staged = append(d.staged, dispatchItem{name: env.Name, origin: env.Origin, seq: env.Seq, args: d.copy.clone(env.Args)})
		return
	}
	args, full := d.lend.lend(env.Args)
	if full != nil {
		d.staged = append(d.staged, dispatchItem{args: full[:]})
	}
	d.staged = append(d.staged, dispatchItem{name: env.Name, origin: env.Origin, seq: env.Seq, args: args})
}

// commit queues the staged events, as many as the queue has room for; the
// others are dropped, counted and reported (the slow-handler policy above).
func (d *dispatcher) commit() {
	if len(d.staged) == 0 {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.unstage()
		return
	}
	d.takeFree()
	k, queued := d.fits(max(d.max-d.events, 0))
	dropped := d.stagedEvents - queued
	if k > 0 {
		// The staged slice itself joins the queue, and the router stages
		// into an emptied one: no copy of the items, whose pointers would
		// each pay a write barrier while the GC runs.
		clear(d.staged[k:])
		d.q = append(d.q, d.staged[:k])
		d.stagedEvents = 0
		if n := len(d.spare); n > 0 {
			d.staged, d.spare = d.spare[n-1], d.spare[:n-1]
		} else {
			d.staged = make([]dispatchItem, 0, 64)
		}
	} else {
		d.unstage()
	}
	d.events += queued
	var report uint64
	if dropped > 0 {
		d.dropped += uint64(dropped)
		d.handlerDropped.Add(uint64(dropped))
		if time.Since(d.reported) >= time.Second {
			report, d.dropped, d.reported = d.dropped, 0, time.Now()
		} else if d.flush == nil {
			d.flushDone = make(chan struct{})
			d.flush = time.AfterFunc(time.Second-time.Since(d.reported), d.flushDropped)
		}
	}
	if queued > 0 {
		d.wakeLocked()
	} else {
		d.mu.Unlock()
	}
	if report > 0 {
		d.log.Warn("handlers too slow: dropped deliveries", "dropped", report, "queue", d.max)
		d.peers.peerEvent(PeerEvent{Kind: Overflow, Dropped: int(report), Err: ErrSlowConsumer})
	}
}

// fits returns how many staged items the queue takes when it has room for
// more events, and how many events they are: the staged items up to the
// room-th event, and the markers just after it.
func (d *dispatcher) fits(room int) (items, events int) {
	if d.stagedEvents <= room {
		return len(d.staged), d.stagedEvents
	}
	for items < len(d.staged) && (events < room || d.staged[items].marker() != nil) {
		if d.staged[items].marker() == nil {
			events++
		}
		items++
	}
	return items, events
}

// unstage empties the staging slice, keeping its room.
func (d *dispatcher) unstage() {
	clear(d.staged)
	d.staged, d.stagedEvents = d.staged[:0], 0
}

// flushDropped reports the drops not reported yet, a second after the
// previous report.
func (d *dispatcher) flushDropped() {
	d.mu.Lock()
	n, closed := d.dropped, d.closed
	if !closed && n > 0 {
		d.dropped, d.reported = 0, time.Now()
	}
	done := d.flushDone
	d.mu.Unlock()
	if !closed && n > 0 {
		d.log.Warn("handlers too slow: dropped deliveries", "dropped", n, "queue", d.max)
		d.peers.peerEvent(PeerEvent{Kind: Overflow, Dropped: int(n), Err: ErrSlowConsumer})
	}
	d.mu.Lock()
	d.flush = nil
	d.mu.Unlock()
	close(done)
}

func (d *dispatcher) peerEvent(pe PeerEvent) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.q = append(d.q, []dispatchItem{{}})
	d.peerq = append(d.peerq, pe)
	d.wakeLocked()
}

// wakeLocked unlocks d.mu and wakes run if it is waiting: a busy run takes
// the new item with its next batch, without a channel operation per item.
func (d *dispatcher) wakeLocked() {
	wake := d.asleep
	d.asleep = false
	d.mu.Unlock()
	if wake {
		d.signal()
	}
}

func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	var batches [][]dispatchItem
	var peers []PeerEvent
	for {
		d.mu.Lock()
		for _, b := range batches {
			clear(b) // let the dispatched events' bytes go
			if len(d.spare) < maxSpareBatches {
				d.spare = append(d.spare, b[:0])
			}
		}
		clear(batches)
		batches = batches[:0]
		clear(peers)
		peers = peers[:0]
		d.freeReturned()
		for len(d.q) == 0 && !d.closed {
			d.asleep = true
			d.mu.Unlock()
			<-d.wake
			d.mu.Lock()
		}
		if d.closed {
			d.mu.Unlock()
			return
		}
		// Take every queued batch: both lists keep their capacity.
		batches, d.q = d.q, batches
		peers, d.peerq = d.peerq, peers
		taken := d.events
		d.events = 0 // every queued event is in batches now
		d.mu.Unlock()
		if taken > 0 {
			d.delivered.Add(uint64(taken)) // once per batch, before their handlers run
		}
		for _, b := range batches {
			for i := range b {
				switch it := &b[i]; {
				case it.origin != "":
					d.dispatch(it)
				case it.args != nil:
					d.giveBack(it.marker())
				default:
					d.dispatchPeer(peers[0])
					peers = peers[1:]
				}
			}
		}
	}
}

// maxSpareBatches bounds the emptied batches kept for staging (each holds up to a
// link batch's events, 128 and a few markers).
const maxSpareBatches = 64

func (d *dispatcher) dispatchPeer(pe PeerEvent) {
	for _, h := range d.table.snap.Load().peer {
		h.fn(pe)
	}
}

func (d *dispatcher) dispatch(it *dispatchItem) {
	snap := d.table.snap.Load()
	named, all := snap.handlers(it.name)
	if len(named)+len(all) == 0 {
		return
	}
	// raw is what OnRaw handlers see, ev what On handlers see: a raw
	// handler sees no Args, even when other handlers of the event made the
	// dispatcher decode them. Each is built once, not copied per call.
	raw := Event{Name: it.name, Origin: it.origin, Seq: it.seq, raw: it.args[:len(it.args):len(it.args)]}
	if !snap.wantsArgs(named) {
		// Raw handlers only, the hot path: called straight from here.
		for _, h := range named {
			h.fn(raw)
		}
		for _, h := range all {
			h.fn(raw)
		}
		return
	}
	if it.lent() {
		// An On handler registered since the event was staged: its Event
		// is its to keep.
		raw.raw = slices.Clone(raw.raw)
	}
	ev := raw
	var err error
	if ev.Args, err = decodeArgs(it.args, &d.slab); err != nil {
		d.log.Warn("undecodable event args", "origin", it.origin, "seq", it.seq, "name", it.name, "error", err)
	}
	call(named, &raw, &ev)
	call(all, &raw, &ev)
}

// call runs handlers hs, the raw ones with raw, the others with ev.
func call(hs []*eventHandler, raw, ev *Event) {
	for _, h := range hs {
		if h.raw {
			h.fn(*raw)
		} else {
			h.fn(*ev)
		}
	}
}

// wantsArgs reports whether some of an event's handlers are On handlers
// (Args needed, and the Event theirs to keep): named ones, or catch-alls.
func (s *handlerSnap) wantsArgs(named []*eventHandler) bool {
	return s.allArgs || needArgs(named)
}

// needArgs reports whether some of hs are On (not OnRaw) handlers.
func needArgs(hs []*eventHandler) bool {
	for _, h := range hs {
		if !h.raw {
			return true
		}
	}
	return false
}

// close stops the dispatcher; queued items are discarded.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	flush, flushDone := d.flush, d.flushDone
	d.mu.Unlock()
	if flush != nil && !flush.Stop() {
		<-flushDone // the callback is running: wait for it
	}
	d.signal()
	<-d.done
}
