package mesh

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/dedup"
	"github.com/verbosemesh/verbose/mesh/internal/flow"
	"github.com/verbosemesh/verbose/mesh/internal/plumtree"
	"github.com/verbosemesh/verbose/mesh/internal/slab"
	"github.com/verbosemesh/verbose/mesh/internal/store"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
)

// router is the path of every event between the links and the handlers:
// it parses what the links read, orders it (dedup), asks the broadcast
// tree where each event goes (plumtree), sends it there, keeps it for
// GRAFTs (store) and stages it for the handlers (dispatcher). One lock
// guards all of it, and it reads one clock.
//
// Nothing under the lock waits: link.Send appends to a buffer, the
// dispatcher's commit to a queue, the loss reports to a map. Links never
// call back into the router from inside one of their methods (relay's
// Handler contract), so the router may hold its lock around them.
type router struct {
	self      string
	boot      uint64
	bufferMax int
	log       hclog.Logger
	stats     *stats
	disp      *dispatcher
	pdisp     *peerDispatcher
	losses    *lossReporter
	window    int // flow control's Window: what a receiver grants per (origin, boot)

	// links is the current links, rebuilt under mu when one is added or
	// removed: Emit's back-pressure and Stats read it without the lock.
	links atomic.Pointer[[]*relay.Link]

	mu     sync.Mutex
	clock  monoClock
	now    time.Time // the latest reading, never going back
	order  *dedup.Orderer[*inbound]
	tree   *plumtree.Machine
	recent *store.Recent // others' events, for GRAFTs
	own    *store.Own    // this node's events, for GRAFTs
	parser wire.Parser
	pool   arrivals
	// forwards are the chunks forwarded events' encodings are cut from
	// (owned regions: links and the hold keep them, nothing writes them
	// again). An allocation per forwarded event was most of the collector's
	// work at 100 nodes, where most deliveries are also forwards.
	forwards slab.Chunks
	ready    []*inbound   // the orderer's releases, reused
	skips    []dedup.Skip // the orderer's losses, reused
	peers    []routed     // by plumtree.PeerID
	byLink   map[*relay.Link]plumtree.PeerID
	arrived  uint64 // events parsed in the batch being received, for stats.received

	// Flow control (flow.go): credit per (link, origin).
	flow        *flow.Machine[*held]
	fwd         []flow.Peer   // the tree's targets as flow's, reused
	tent        []flow.Peer   // the tree's tentative peers as flow's, reused
	lastArrival arrival       // see arrivedLocked
	credits     []wire.Credit // a GRANT being built, reused
	flowArmed   bool          // the tick loop knows flow has a deadline
	emitSpace   chan struct{} // closed and replaced when ownFull clears
	// flowWaiting says that flow holds events or has a slow consumer (a
	// drained link or the handlers' progress should resume it); ownFull
	// that this node's own origin has Window events waiting (Emit waits).
	// Written under mu.
	flowWaiting atomic.Bool
	flowHeld    atomic.Bool // flow holds events (Stats.Held)
	ownFull     atomic.Bool

	kick     chan struct{} // the orderer has a new deadline: tickLoop looks again
	treeKick chan struct{} // the tree has work: treeLoop schedules a round
}

// routed is one of the router's links, with the Peer its reports name.
type routed struct {
	link *relay.Link
	peer *Peer
}

func newRouter(n *Node) *router {
	cfg := n.cfg
	r := &router{
		self: n.id, boot: n.boot, bufferMax: cfg.BufferMax,
		log: n.log, stats: &n.stats, disp: n.disp, pdisp: n.pdisp, losses: n.losses,
		window:    cfg.BufferMax,
		emitSpace: make(chan struct{}),
		clock:     newMonoClock(),
		byLink:    make(map[*relay.Link]plumtree.PeerID),
		kick:      make(chan struct{}, 1),
		treeKick:  make(chan struct{}, 1),
	}
	// An idle origin is forgotten only once no copy of its events can still
	// be in flight (buffers keep them BufferTimeout per hop) nor held behind
	// a gap (ReorderTimeout): forgetting sooner would let a late copy in as new.
	// Flow control holds an event at most about Timeout (then its
	// consumer is declared slow and it goes), so that bounds copies too.
	idle := 4 * max(cfg.BufferTimeout, cfg.ReorderTimeout, cfg.Timeout)
	reach := max(4096, 4*cfg.BufferMax)
	r.order = dedup.New[*inbound](dedup.Config{
		Window:      reach,
		Grace:       cfg.ReorderTimeout,
		DropLate:    true, // order holds without exception; a late copy is a reported drop
		IdleTimeout: idle,
	})
	r.tree = plumtree.New(plumtree.Config{
		Self: n.id, SelfBoot: n.boot, Flood: cfg.Flood, Released: r.order,
		// As long as the orderer waits for a gap: after that, what is still
		// missing was skipped (or never existed to be held for).
		GiveUp:      cfg.ReorderTimeout,
		IdleTimeout: idle,
		Reach:       uint64(reach),
	})
	// The stores answer GRAFTs for as long as a link would have kept the
	// events for an absent peer: a lazy link's peer that was cut off must
	// be able to graft what it missed once it is back.
	r.flow = flow.New[*held](flow.Config{
		Window:      uint64(cfg.BufferMax),
		Timeout:     cfg.Timeout,
		Drop:        cfg.SlowConsumer == Drop,
		IdleTimeout: idle,
		// A tentative peer that needs an event grafts it within about
		// the orderer's grace; past twice that it is not waited for.
		MaybeTimeout: 2 * cfg.ReorderTimeout,
		Rooms:        flowRooms{r},
	})
	keep, age := 4*cfg.BufferMax, max(storeMaxAge, cfg.BufferTimeout)
	r.recent, r.own = store.NewRecent(keep, age), store.NewOwn(keep, age)
	return r
}

// storeMaxAge is the stores' age bound, at least (BufferTimeout if longer).
const storeMaxAge = 30 * time.Second

// read is the router's clock: one monotonic reading that never goes back.
// Called with mu held, once per input (a batch of events, an Emit, a
// timer), not per event.
func (r *router) read() time.Time {
	if now := r.clock.now(); now.After(r.now) {
		r.now = now
	}
	r.disp.look() // and the handler queue's length, for flow control
	return r.now
}

// snapshot returns the current links: shared, not to be modified.
func (r *router) snapshot() []*relay.Link {
	if p := r.links.Load(); p != nil {
		return *p
	}
	return nil
}

// addLink starts routing over l; p is the Peer that reports name (nil if
// not known yet). Idempotent: a link's handshake may come first.
func (r *router) addLink(l *relay.Link, p *Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id := r.idLocked(l)
	if p != nil {
		r.peers[id].peer = p
	}
}

// idLocked returns l's PeerID, made if l is new.
func (r *router) idLocked(l *relay.Link) plumtree.PeerID {
	if id, ok := r.byLink[l]; ok {
		return id
	}
	id := r.tree.AddPeer()
	for int(id) >= len(r.peers) {
		r.peers = append(r.peers, routed{})
	}
	r.peers[id] = routed{link: l}
	r.byLink[l] = id
	r.flow.AddPeer(flow.Peer(id))
	r.publishLocked()
	return id
}

// removeLink stops routing over l. It returns how many events flow control
// held for l, which go nowhere now: the caller reports them.
func (r *router) removeLink(l *relay.Link) (held int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.byLink[l]
	if !ok {
		return 0
	}
	r.tree.RemovePeer(id)
	now := r.read()
	held = r.flow.RemovePeer(flow.Peer(id), now)
	r.carryFlowLocked(now)
	r.peers[id] = routed{}
	delete(r.byLink, l)
	r.publishLocked()
	return held
}

func (r *router) publishLocked() {
	out := make([]*relay.Link, 0, len(r.byLink))
	for l := range r.byLink {
		out = append(out, l)
	}
	r.links.Store(&out)
}

// linkUp notes a completed handshake on l.
func (r *router) linkUp(l *relay.Link) {
	r.mu.Lock()
	id := r.idLocked(l)
	r.tree.PeerUp(id, l.RemoteID(), l.RemoteBoot())
	now := r.read()
	r.flow.PeerUp(flow.Peer(id), uint64(l.RemoteWindow()), now)
	r.carryFlowLocked(now)
	due := r.tree.TakeDue()
	r.mu.Unlock()
	if due {
		r.kickTree()
	}
}

// linkDown notes that l lost its connection (it buffers what it is sent).
func (r *router) linkDown(l *relay.Link) {
	r.mu.Lock()
	if id, ok := r.byLink[l]; ok {
		r.tree.PeerDown(id)
		now := r.read()
		r.flow.PeerDown(flow.Peer(id), now) // its buffer takes what waited for it
		r.carryFlowLocked(now)
	}
	r.mu.Unlock()
}

// emit sends one of this node's own events, payload its encoding, where the
// tree says: in full to the peers it returns, noticed to the others; and
// keeps it for GRAFTs. Under mu, so that a GRAFT sees each own event either
// stored or not yet sent, never half-way.
func (r *router) emit(seq uint64, payload []byte) {
	r.mu.Lock()
	now := r.read()
	d := r.flow.Release(r.self, r.boot, seq, asFlow(&r.fwd, r.tree.Emit(seq, now)), nil, false, now)
	for _, p := range d.Send {
		r.peers[p].link.Send(payload)
	}
	if d.Held {
		r.holdLocked(payload, nil, false)
		r.ownFull.Store(true)
	}
	r.own.Add(seq, payload, now)
	if d.Held || r.flow.Pending() {
		r.carryFlowLocked(now)
	}
	due := r.tree.TakeDue()
	r.mu.Unlock()
	if due {
		r.kickTree()
	}
}

// receiveEvents routes a run of event payloads from l under one hold of
// the lock; the first bad one's error is returned (the others are counted).
func (r *router) receiveEvents(l *relay.Link, payloads [][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.idLocked(l)
	now := r.read()
	var first error
	for _, p := range payloads {
		if err := r.receiveEvent(from, p, now); err != nil {
			if first == nil {
				first = err
			} else {
				r.stats.badPayloads.Add(1)
			}
		}
	}
	r.stats.received.Add(r.arrived) // once per batch: an atomic add per event cost ~2%
	r.arrived = 0
	r.afterLocked(now)
	return first
}

// receiveEvent dedups and orders one event from peer from, then releases
// what the orderer lets go. payload is the link's, valid during the call:
// what outlives it is copied (see inbound). Called with mu held.
func (r *router) receiveEvent(from plumtree.PeerID, payload []byte, now time.Time) error {
	in := r.pool.next()
	env := &in.env
	if err := r.parser.Parse(env, in.path[:0], payload); err != nil {
		return err
	}
	in.from, in.raw = from, payload
	r.arrived++
	if env.Boot == r.boot && env.Origin == r.self {
		r.stats.duplicates.Add(1) // our own event came back round a cycle
		return nil
	}
	r.arrivedLocked(from, env, now)
	ready, verdict := r.order.Offer(env.Origin, env.Boot, env.Seq, in, now, r.ready[:0])
	switch verdict {
	case dedup.Fresh:
		r.pool.take() // the orderer holds or releases it
		r.tree.Fresh(env.Origin, from, now)
		if !slices.Contains(ready, in) {
			in.own() // held behind a gap, beyond this call
			r.kickOrderer()
		}
		r.release(ready, now)
	case dedup.Duplicate:
		r.stats.duplicates.Add(1)
		r.tree.Duplicate(env.Origin, from, now)
	case dedup.Late:
		// A copy of an event the orderer had declared lost: dropped to
		// keep the origin's order, and reported like any other drop.
		pr := r.peers[from]
		r.losses.add(lossKey{link: pr.link, err: ErrLate}, pr.peer, 1)
	case dedup.Stale:
		r.stats.stale.Add(1)
	}
	return nil
}

// arrivedLocked tells flow control which link brought an (origin, boot),
// once per run: consecutive events mostly share all three.
func (r *router) arrivedLocked(from plumtree.PeerID, env *wire.Envelope, now time.Time) {
	a := &r.lastArrival
	if a.from == from && a.boot == env.Boot && a.origin == env.Origin && a.gen == r.flow.Gen() {
		return
	}
	r.flow.Arrived(flow.Peer(from), env.Origin, env.Boot, env.Seq, now)
	*a = arrival{origin: env.Origin, boot: env.Boot, from: from, gen: r.flow.Gen()}
}

// arrival is the last (origin, boot, link) reported to flow control.
type arrival struct {
	origin string
	boot   uint64
	from   plumtree.PeerID
	gen    uint64
}

// release forwards, stores and stages the events the orderer released, in
// that order, so that every link carries each origin's events in origin
// order. Called with mu held.
func (r *router) release(ready []*inbound, now time.Time) {
	for i, in := range ready {
		env := &in.env
		fwd := r.tree.Release(env.Origin, env.Boot, env.Seq, in.from, env.Path, now)
		k := store.Key{Origin: env.Origin, Boot: env.Boot, Seq: env.Seq}
		local := env.Origin != r.self // not an event of an earlier boot of ours, come back
		d := r.flow.Release(env.Origin, env.Boot, env.Seq, asFlow(&r.fwd, fwd), asFlow(&r.tent, r.tree.Tentative()), local, now)
		var payload []byte
		if len(fwd) > 0 {
			env.Path = append(env.Path, r.self)
			payload = wire.CutEnvelope(&r.forwards, env) // the links keep it
			for _, p := range d.Send {
				r.peers[p].link.Send(payload)
			}
			r.stats.forwarded.Add(uint64(len(d.Send)))
			r.recent.Add(k, payload, true, now)
		} else {
			r.recent.Add(k, in.raw, false, now)
		}
		if d.Deliver {
			r.disp.stage(env)
		}
		if d.Held {
			r.holdLocked(payload, env, local && !d.Deliver)
		}
		r.pool.reuse(in) // everyone kept a copy of what they need
		ready[i] = nil
	}
	r.ready = ready[:0]
}

// afterLocked ends an input that released events: the dispatcher gets
// them at once, losses the orderer declared are reported, and the tree's
// outputs are carried out.
func (r *router) afterLocked(now time.Time) {
	r.carryFlowLocked(now)
	r.reportSkipsLocked()
	r.carryOutLocked(now)
	if r.tree.TakeDue() {
		r.kickTree()
	}
}

// reportSkipsLocked reports the gaps the orderer declared lost: events
// this node will never deliver, aggregated per origin.
func (r *router) reportSkipsLocked() {
	r.skips = r.order.TakeSkips(r.skips[:0])
	for _, s := range r.skips {
		r.losses.add(lossKey{origin: s.Origin, err: ErrGap}, nil, int(s.To-s.From))
	}
}

// receiveTree handles IHAVE, GRAFT and PRUNE from l.
func (r *router) receiveTree(l *relay.Link, kind wire.Kind, payload []byte) error {
	var (
		ih  *wire.IHave
		gr  *wire.Graft
		pr  *wire.Prune
		gt  *wire.Grant
		err error
	)
	switch kind {
	case wire.KindIHave:
		ih, err = wire.DecodeIHave(payload)
	case wire.KindGraft:
		gr, err = wire.DecodeGraft(payload)
	case wire.KindGrant:
		gt, err = wire.DecodeGrant(payload)
	default:
		pr, err = wire.DecodePrune(payload)
	}
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	from := r.idLocked(l)
	now := r.read()
	switch {
	case gt != nil:
		r.receiveGrant(from, gt, now)
		return nil
	case ih != nil:
		r.tree.IHave(from, ih, now)
	case gr != nil:
		if !gr.Stalled && !r.wholeLocked(gr, now) {
			// The grafter's eager path still brings the range; it grafts
			// again, here or elsewhere, once its lag fits a store.
			r.stats.graftsRefused.Add(1)
			r.log.Debug("graft refused: the range's head is no longer stored and the grafter's eager path still brings it",
				"origin", gr.Origin, "from", gr.From, "peer", l.RemoteID())
			return nil
		}
		r.tree.Graft(from, gr, now)
	default:
		r.tree.Prune(from, pr.Origin, now)
	}
	r.carryOutLocked(now)
	if r.tree.TakeDue() {
		r.kickTree()
	}
	return nil
}

// carryOutLocked sends what the tree asked for: its messages, then the
// events it asked to resend.
func (r *router) carryOutLocked(now time.Time) {
	rd := r.tree.Ready()
	for _, k := range rd.Known {
		r.flow.Untarget(flow.Peer(k.Peer), k.Origin, now)
	}
	for _, s := range rd.Sends {
		l := r.peers[s.To].link
		l.Send(s.Msg.Encode())
		switch m := s.Msg.(type) {
		case *wire.IHave:
			r.stats.notices.Add(1)
		case *wire.Graft:
			r.stats.grafts.Add(1)
			r.log.Debug("graft", "origin", m.Origin, "boot", m.Boot, "from", m.From, "peer", l.RemoteID())
		case *wire.Prune:
			r.stats.prunes.Add(1)
		}
	}
	for _, rs := range rd.Resends {
		r.resend(rs, now)
	}
	for _, a := range rd.Abandoned {
		// Announced, grafted, never brought: declared lost like a gap past
		// ReorderTimeout, and what the orderer held beyond it is released.
		r.release(r.order.Abandon(a.Origin, a.Boot, a.Upto, r.ready[:0]), now)
	}
	if len(rd.Abandoned) > 0 {
		r.reportSkipsLocked()
	}
	if len(rd.Resends)+len(rd.Known)+len(rd.Abandoned) > 0 {
		r.carryFlowLocked(now)
	}
}

// resend answers a GRAFT: the range is taken out of the stores now, and
// flow control sends it to the grafter first, in order and as its credit
// and its link's room allow (flow's Graft says why now). A range longer
// than the stores keep is cut to what they can hold; the rest is counted
// missed, and the grafter falls back on another neighbour's notice.
func (r *router) resend(rs plumtree.Resend, now time.Time) {
	lo, hi := rs.From, rs.Upto
	if span := uint64(r.recent.Cap()); hi-lo+1 > span {
		r.stats.graftMisses.Add(hi - span + 1 - lo)
		lo = hi - span + 1
	}
	payloads := make([][]byte, 0, hi-lo+1)
	for seq := lo; seq <= hi; seq++ {
		payloads = append(payloads, r.resendable(store.Key{Origin: rs.Origin, Boot: rs.Boot, Seq: seq}, now))
	}
	r.flow.Graft(flow.Peer(rs.To), rs.Origin, rs.Boot, lo, payloads, now)
}

// wholeLocked reports whether the stores can answer g from its first seq:
// they hold event From of (origin, boot), and so everything released after
// it (they drop oldest first), or there is nothing to resend.
func (r *router) wholeLocked(g *wire.Graft, now time.Time) bool {
	next, ok := r.tree.Released(g.Origin, g.Boot)
	switch {
	case !ok || next <= g.From:
		return true
	case next-g.From > uint64(r.recent.Cap()):
		return false
	case g.Origin == r.self:
		return r.own.Get(g.From, now) != nil
	}
	return r.recent.Has(store.Key{Origin: g.Origin, Boot: g.Boot, Seq: g.From}, now)
}

// resendable returns event k's payload with this node on its path, from
// the own-event store or the recent-event store; nil if neither has it.
// The payload is the caller's to send, never to modify.
func (r *router) resendable(k store.Key, now time.Time) []byte {
	if k.Origin == r.self { // the tree's released check says the boot is this one
		return r.own.Get(k.Seq, now)
	}
	// The link keeps what it is sent: the ring's bytes are copied (or
	// re-encoded) into the forwards' chunks, which nothing writes again.
	b, pathed, shared, ok := r.recent.Peek(k, now)
	switch {
	case !ok:
		return nil
	case shared:
		return b
	case pathed:
		return r.forwards.Clone(b, slab.MaxRegion)
	}
	var env wire.Envelope
	if err := (*wire.Parser)(nil).Parse(&env, nil, b); err != nil {
		return nil // cannot be: it was parsed on arrival
	}
	if n := len(env.Path); n == 0 || env.Path[n-1] != r.self {
		env.Path = append(env.Path, r.self)
	}
	p := wire.CutEnvelope(&r.forwards, &env) // before anything is added to the ring
	r.recent.Repath(k, p, now)               // the next GRAFT sends it as it is
	return p
}

// tick releases what the orderer held past its deadline and returns the
// next deadline.
func (r *router) tick() (next time.Time, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.read()
	r.release(r.order.Tick(now, r.ready[:0]), now)
	r.flow.Tick(now)
	r.afterLocked(now)
	next, ok = r.order.NextDeadline()
	fnext, fok := r.flow.NextDeadline()
	r.flowArmed = fok
	if fok && (!ok || fnext.Before(next)) {
		next, ok = fnext, true
	}
	return next, ok
}

// round runs one of the tree's rounds (notices, grafts) and expires old
// stored events. It reports whether another round is due.
func (r *router) round() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.read()
	again := r.tree.Round(now)
	r.carryOutLocked(now)
	r.recent.ExpireAt(now)
	r.own.ExpireAt(now)
	return again
}

func (r *router) kickOrderer() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *router) kickTree() {
	select {
	case r.treeKick <- struct{}{}:
	default:
	}
}

// tickLoop releases events held behind a gap once ReorderTimeout passes.
func (r *router) tickLoop(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-r.kick:
		case <-timer.C:
		}
		if next, ok := r.tick(); ok {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
	}
}

// treeLoop runs the tree's rounds: every RoundInterval while there is work
// (notices due, events missing), and not at all while there is none, so an
// idle node costs no wake-ups.
func (r *router) treeLoop(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	timer.Stop()
	armed := false
	for {
		select {
		case <-stop:
			return
		case <-r.treeKick:
			if !armed {
				timer.Reset(plumtree.RoundInterval)
				armed = true
			}
			continue
		case <-timer.C:
			armed = false
		}
		if r.round() && !armed {
			timer.Reset(plumtree.RoundInterval)
			armed = true
		}
	}
}

// counts returns the tree's eager and lazy (origin, link) pairs, and the
// orderer's counters, for Stats.
func (r *router) counts() (eager, lazy int, os dedup.Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	eager, lazy = r.tree.Counts()
	return eager, lazy, r.order.Stats()
}
