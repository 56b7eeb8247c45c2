package mesh

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh/internal/slab"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// dispatcher runs On and OnRaw handlers on one goroutine, in the order the
// router released the events, so that handlers see each origin's events in
// emit order. Peer events have their own goroutine (peerDispatcher), so
// that a slow On handler cannot hide the report of its own slowness.
//
// Policy for slow handlers: the queue holds at most max events. When a slow
// handler lets it fill up, newer deliveries to this node's handlers are
// dropped, counted (Stats().HandlerDropped) and reported, aggregated per
// second, as an Overflow PeerEvent with no Peer and Err ErrSlowConsumer.
// Relaying to other nodes never waits for handlers.
//
// The router stages the events of one input and commits them with one hold
// of the queue's lock (stage and commit run under the router's lock). What
// a handler sees is copied out of the link's buffer as it is staged: for an
// event that only OnRaw handlers receive, into a chunk lent by slab's
// Lender, which comes back once the batch that left it has been dispatched
// (every event cut from it is in that batch or an earlier one); for the
// others into owned slab regions, since On handlers may keep their Event.
type dispatcher struct {
	table  *handlerTable
	log    hclog.Logger
	max    int
	losses *lossReporter

	mu     sync.Mutex
	q      []batch       // committed, in order
	spare  [][]item      // emptied item slices, for staging into
	events int           // items in q
	free   []*slab.Chunk // chunks run gave back, for commit to hand to the lender
	asleep bool          // run waits for wake: the next commit must send it
	closed bool
	wake   chan struct{}
	done   chan struct{}

	// The router's side, guarded by its lock.
	staged batch
	copies slab.Chunks // owned copies of args, for On handlers
	lend   slab.Lender // lent copies of args, for OnRaw handlers

	args slab.Args // what run decodes args into; run's own

	handlerDropped atomic.Uint64
	delivered      atomic.Uint64
	queued         atomic.Int64 // events, as of the last commit or take
	// seen is the router's view of the queue's length: queued as read at
	// the start of its input, plus what it committed since. Stale only
	// towards less room; read without touching the dispatcher's cache
	// line for every event.
	seen   int
	looked bool // seen was read in this input
	// taken, if set, is called once run has taken a batch (room freed),
	// without the dispatcher's lock: flow control resumes.
	taken func()
}

// batch is what one commit queued: events, and the lent chunks to give
// back once they have been dispatched.
type batch struct {
	items  []item
	chunks []*slab.Chunk
}

// item is one event as its handlers see it, copied out of the router's
// envelope (which the router reuses at once). It is 64 bytes, a cache line:
// the router writes the items and the dispatcher reads them, mostly on the
// other core, and every line crosses (in meshbench's blast, at 88 bytes,
// the router's stores into the items were up to 13% of the CPU when the two
// ran apart). args is an owned region, or a lent one (slab.IsLent).
type item struct {
	name, origin string
	seq          uint64
	args         []byte
}

// maxSpareItems bounds the emptied item slices kept for staging (each holds
// up to a link batch's events).
const maxSpareItems = 64

func newDispatcher(max int, t *handlerTable, log hclog.Logger, losses *lossReporter) *dispatcher {
	d := &dispatcher{table: t, log: log, max: max, losses: losses, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

// stage prepares env's event for the handlers, to be queued by the next
// commit. Called with the router's lock held.
func (d *dispatcher) stage(env *wire.Envelope) {
	snap := d.table.snap.Load()
	named, all := snap.handlers(env.Name)
	if len(named)+len(all) == 0 {
		d.delivered.Add(1) // nobody listens: delivered to no one, without a copy
		return
	}
	var args []byte
	if !slab.Lendable(env.Args) || snap.wantsArgs(named) {
		args = d.copies.Clone(env.Args, slab.MaxRegion) // On handlers may keep the Event
	} else {
		if d.lend.Leaves(len(env.Args)) {
			d.mu.Lock()
			d.reuseLocked() // what run gave back since the last commit
			d.mu.Unlock()
		}
		var full *slab.Chunk
		if args, full = d.lend.Lend(env.Args); full != nil {
			d.staged.chunks = append(d.staged.chunks, full)
		}
	}
	d.staged.items = append(d.staged.items, item{name: env.Name, origin: env.Origin, seq: env.Seq, args: args})
}

// commit queues the staged events, as many as the queue has room for; the
// others are dropped, counted and reported (the slow-handler policy above).
// Called with the router's lock held.
func (d *dispatcher) commit() {
	staged := d.staged
	if len(staged.items) == 0 && len(staged.chunks) == 0 {
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.unstage()
		return
	}
	d.reuseLocked()
	queued := min(len(staged.items), max(d.max-d.events, 0))
	dropped := len(staged.items) - queued
	clear(staged.items[queued:])
	staged.items = staged.items[:queued]
	// The staged batch itself joins the queue, and the router stages into
	// an emptied one: no copy of the items, whose pointers would each pay a
	// write barrier while the GC runs. A batch whose events were all
	// dropped still goes, for its chunks: earlier batches may read them.
	d.q = append(d.q, staged)
	d.events += queued
	d.queued.Store(int64(d.events))
	d.seen, d.looked = d.events, true
	d.staged = batch{}
	if k := len(d.spare); k > 0 {
		d.staged.items, d.spare = d.spare[k-1], d.spare[:k-1]
	}
	wake := d.asleep
	d.asleep = false
	d.mu.Unlock()
	if wake {
		d.signal()
	}
	if dropped > 0 {
		d.handlerDropped.Add(uint64(dropped))
		d.losses.add(lossKey{err: ErrSlowConsumer}, nil, dropped)
	}
}

// room is how many more events the queue takes now, the staged ones
// counted. Called with the router's lock held.
func (d *dispatcher) room() int {
	if !d.looked {
		d.seen, d.looked = int(d.queued.Load()), true
	}
	return d.max - d.seen - len(d.staged.items)
}

// look makes the next room read the queue's length afresh (see seen).
// Called with the router's lock held, once per input.
func (d *dispatcher) look() { d.looked = false }

// reuseLocked hands the chunks run gave back to the lender. Called with mu
// and the router's lock held.
func (d *dispatcher) reuseLocked() {
	d.lend.Reuse(d.free)
	clear(d.free)
	d.free = d.free[:0]
}

// unstage empties the staging batch, keeping its room; its lent chunks go
// back to the lender (nothing queued reads them: the queue is closed).
func (d *dispatcher) unstage() {
	clear(d.staged.items)
	d.staged.items = d.staged.items[:0]
	d.staged.chunks = d.staged.chunks[:0]
}

func (d *dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	var batches []batch
	for {
		d.mu.Lock()
		for _, b := range batches {
			d.free = append(d.free, b.chunks...) // every event cut from them has run
			clear(b.items)                       // let the dispatched events' bytes go
			if len(d.spare) < maxSpareItems {
				d.spare = append(d.spare, b.items[:0])
			}
		}
		if over := len(d.free) - slab.LentKeep; over > 0 {
			clear(d.free[slab.LentKeep:]) // the others go to the collector
			d.free = d.free[:slab.LentKeep]
		}
		clear(batches)
		batches = batches[:0]
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
		batches, d.q = d.q, batches // take every queued batch: both keep their capacity
		taken := d.events
		d.events = 0
		d.queued.Store(0)
		d.mu.Unlock()
		if taken > 0 {
			d.delivered.Add(uint64(taken)) // once per batch, before their handlers run
			if d.taken != nil {
				d.taken()
			}
		}
		for _, b := range batches {
			for i := range b.items {
				d.dispatch(&b.items[i])
			}
		}
	}
}

func (d *dispatcher) dispatch(it *item) {
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
	if slab.IsLent(it.args) {
		// An On handler registered since the event was staged: its Event
		// is its to keep.
		raw.raw = slices.Clone(raw.raw)
	}
	ev := raw
	var err error
	if ev.Args, err = wire.DecodeArgs(it.args, &d.args); err != nil {
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

// close stops the dispatcher; queued events are discarded.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.signal()
	<-d.done
}
