package hyparview

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// simOptions shape a simulated cluster. Every delay is virtual time.
type simOptions struct {
	nodes    int
	seed     uint64
	cfg      Config
	contacts int           // the first nodes, through which the others join
	joinGap  time.Duration // node i starts and joins at about i*joinGap
	latency  [2]time.Duration
	tick     time.Duration // each node's Tick period
	// detect is how long after a node dies its peers get LinkDown, and how
	// long a dial to a dead node takes to fail.
	detect    time.Duration
	feedEvery time.Duration    // each node's Candidates period ...
	feedSize  int              // ... with this many random living nodes
	forget    [2]time.Duration // membership's Forget of a dead node, after
}

func defaultSimOptions(nodes int, seed uint64) simOptions {
	return simOptions{
		nodes: nodes, seed: seed, contacts: 3, joinGap: 20 * time.Millisecond,
		latency: [2]time.Duration{time.Millisecond, 20 * time.Millisecond},
		tick:    time.Second, detect: 5 * time.Second,
		feedEvery: 2 * time.Second, feedSize: 8,
		forget: [2]time.Duration{3 * time.Second, 8 * time.Second},
	}
}

// sim runs machines over a simulated network on a virtual clock: no
// goroutine, no sleep; one seed gives one run. A link exists between two
// nodes once one asked for it (Connect) and the other is alive; either end's
// Disconnect closes it, after the messages already sent, and the other end
// then gets LinkDown; a killed node's peers get LinkDown after detect.
// Messages between two nodes arrive in order, each after a random latency.
type sim struct {
	t        testing.TB
	opt      simOptions
	rng      *rand.Rand
	now      time.Time
	events   eventQueue
	seq      uint64
	inflight int  // queued events other than ticks and feeds
	quiet    bool // ticks and feeds do nothing (see settle)
	nodes    []*simNode
	byID     map[string]*simNode
	living   []*simNode
	links    map[[2]string]*simLink // the current link of each pair
	fifo     map[[2]string]time.Time
	stats    simStats
}

type simStats struct {
	sent     [KindShuffleReply + 1]int // messages sent, by kind
	connects int                       // links asked for
	dropped  int                       // messages sent on a link the other end had closed
	rejects  int                       // NEIGHBORREPLYs that reject
	maxLinks int                       // the most link ends a node held at once
}

func (s simStats) messages() int {
	n := 0
	for _, c := range s.sent {
		n += c
	}
	return n
}

type simNode struct {
	id    string
	m     *Machine
	alive bool
	ends  map[string]*simEnd // this node's ends of links, by peer
}

// simEnd is a node's end of a link: asked for (Connect, not yet up) or up.
type simEnd struct {
	link *simLink
	up   bool
}

type simLink struct{ closed bool }

type simEvent struct {
	at       time.Time
	seq      uint64
	periodic bool
	fn       func()
}

type eventQueue []*simEvent

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func newSim(t testing.TB, opt simOptions) *sim {
	s := &sim{
		t: t, opt: opt, rng: rand.New(rand.NewPCG(opt.seed, 0x5eed)), now: t0,
		byID: map[string]*simNode{}, links: map[[2]string]*simLink{}, fifo: map[[2]string]time.Time{},
	}
	for i := range opt.nodes {
		s.nodes = append(s.nodes, &simNode{id: fmt.Sprintf("n%04d", i), ends: map[string]*simEnd{}})
		s.byID[s.nodes[i].id] = s.nodes[i]
	}
	for i, n := range s.nodes {
		start := time.Duration(i) * opt.joinGap
		if i > 0 {
			start += time.Duration(s.rng.Int64N(int64(opt.joinGap)))
		}
		s.at(t0.Add(start), false, func() { s.start(n, i) })
	}
	return s
}

// start creates node i's machine and joins it through a contact.
func (s *sim) start(n *simNode, i int) {
	m, err := New(n.id, s.opt.cfg, rand.New(rand.NewPCG(s.opt.seed, uint64(i))), s.now)
	if err != nil {
		s.t.Fatal(err)
	}
	n.m, n.alive = m, true
	s.living = append(s.living, n)
	s.every(n, s.opt.tick, func(m *Machine) { m.Tick(s.now) })
	s.every(n, s.opt.feedEvery, func(m *Machine) { m.Candidates(s.sample(n, s.opt.feedSize)) })
	if i == 0 {
		return
	}
	contact := s.nodes[0]
	if i >= s.opt.contacts {
		contact = s.nodes[s.rng.IntN(s.opt.contacts)]
	}
	s.step(n, func(m *Machine) {
		if err := m.Join(contact.id); err != nil {
			s.t.Fatalf("%s: join: %v", n.id, err)
		}
	})
}

// every gives node n the input every period from a random phase while it
// lives; quiet skips it.
func (s *sim) every(n *simNode, period time.Duration, input func(*Machine)) {
	var loop func()
	loop = func() {
		if !n.alive {
			return
		}
		if !s.quiet {
			s.step(n, input)
		}
		s.at(s.now.Add(period), true, loop)
	}
	s.at(s.now.Add(time.Duration(s.rng.Int64N(int64(period)))), true, loop)
}

func (s *sim) at(t time.Time, periodic bool, fn func()) {
	s.seq++
	if !periodic {
		s.inflight++
	}
	heap.Push(&s.events, &simEvent{at: t, seq: s.seq, periodic: periodic, fn: fn})
}

// carry schedules fn on the channel from -> to, after a latency and after
// everything already scheduled on that channel.
func (s *sim) carry(from, to string, delay time.Duration, fn func()) {
	key := [2]string{from, to}
	at := s.now.Add(delay)
	if last := s.fifo[key]; at.Before(last) {
		at = last
	}
	s.fifo[key] = at
	s.at(at, false, fn)
}

func (s *sim) latency() time.Duration {
	lo, hi := s.opt.latency[0], s.opt.latency[1]
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

func (s *sim) pop() {
	e := heap.Pop(&s.events).(*simEvent)
	if !e.periodic {
		s.inflight--
	}
	s.now = e.at
	e.fn()
}

// runUntil runs every event due by t and leaves the clock at t.
func (s *sim) runUntil(t time.Time) {
	for len(s.events) > 0 && !s.events[0].at.After(t) {
		s.pop()
	}
	s.now = t
}

// run advances the clock by d.
func (s *sim) run(d time.Duration) { s.runUntil(s.now.Add(d)) }

// settle stops ticks and membership feeds until every message, link change
// and Forget in flight has been handled, so that views can be compared
// exactly.
func (s *sim) settle() {
	s.quiet = true
	for s.inflight > 0 {
		s.pop()
	}
	s.quiet = false
}

// step gives node n one input, checks its invariants and carries out its
// outputs.
func (s *sim) step(n *simNode, input func(*Machine)) {
	if !n.alive {
		return
	}
	input(n.m)
	if err := n.m.checkInvariants(); err != nil {
		s.t.Fatalf("%v: %s: %v", s.now.Sub(t0), n.id, err)
	}
	for _, o := range n.m.Drain() {
		switch o := o.(type) {
		case Send:
			s.send(n, o.To, o.Msg)
		case Connect:
			s.connect(n, o.Peer)
		case Disconnect:
			s.disconnect(n, o.Peer)
		}
	}
	s.stats.maxLinks = max(s.stats.maxLinks, len(n.ends))
}

func (s *sim) send(n *simNode, to string, msg Message) {
	e := n.ends[to]
	if e == nil || !e.up {
		s.t.Fatalf("%s: Send %v to %s without an up link", n.id, msg, to)
	}
	s.stats.sent[msg.Kind]++
	if msg.Kind == KindNeighborReply && !msg.Accept {
		s.stats.rejects++
	}
	if e.link.closed {
		s.stats.dropped++ // the other end closed it; LinkDown is on its way
		return
	}
	peer, l := s.byID[to], e.link
	s.carry(n.id, to, s.latency(), func() {
		if pe := peer.ends[n.id]; !peer.alive || pe == nil || pe.link != l {
			return // the receiver closed the link or died
		} else if !pe.up {
			s.t.Fatalf("%s: message from %s before LinkUp", to, n.id)
		}
		s.step(peer, func(m *Machine) {
			if err := m.Receive(n.id, msg); err != nil {
				s.t.Fatalf("%s: %v", to, err)
			}
		})
	})
}

func (s *sim) connect(n *simNode, to string) {
	if n.ends[to] != nil {
		s.t.Fatalf("%s: Connect to %s with a link held", n.id, to)
	}
	s.stats.connects++
	key := pair(n.id, to)
	if l := s.links[key]; l != nil && !l.closed {
		n.ends[to] = &simEnd{link: l} // the peer's link, being opened: adopt it
		return
	}
	l := &simLink{}
	s.links[key] = l
	n.ends[to] = &simEnd{link: l}
	peer := s.byID[to]
	s.carry(n.id, to, s.latency(), func() {
		if l.closed || !n.alive {
			return
		}
		if !peer.alive {
			l.closed = true
			s.at(s.now.Add(s.opt.detect), false, func() { s.linkDown(n, to, l) })
			return
		}
		// The dialer's LinkUp goes on the channel before anything the
		// acceptor sends on its own LinkUp.
		s.carry(to, n.id, s.latency(), func() { s.linkUp(n, to, l) })
		s.linkUp(peer, n.id, l)
	})
}

func (s *sim) linkUp(n *simNode, peer string, l *simLink) {
	if !n.alive {
		return
	}
	e := n.ends[peer]
	switch {
	case e == nil && l.closed:
		return // closed before this end heard of it
	case e == nil:
		n.ends[peer] = &simEnd{link: l, up: true}
	case e.link != l:
		s.t.Fatalf("%s: LinkUp of a second link to %s", n.id, peer)
	default:
		e.up = true // even if the other end closed it since: LinkDown follows
	}
	s.step(n, func(m *Machine) { m.LinkUp(peer) })
}

func (s *sim) linkDown(n *simNode, peer string, l *simLink) {
	if e := n.ends[peer]; !n.alive || e == nil || e.link != l {
		return
	}
	delete(n.ends, peer)
	s.step(n, func(m *Machine) { m.LinkDown(peer) })
}

func (s *sim) disconnect(n *simNode, to string) {
	e := n.ends[to]
	if e == nil {
		s.t.Fatalf("%s: Disconnect from %s without a link", n.id, to)
	}
	delete(n.ends, to)
	if e.link.closed {
		return
	}
	e.link.closed = true
	peer, l := s.byID[to], e.link
	s.carry(n.id, to, s.latency(), func() { s.linkDown(peer, n.id, l) })
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// sample returns up to k random living nodes other than n, as membership
// would list them.
func (s *sim) sample(n *simNode, k int) []string {
	k = min(k, len(s.living)-1)
	var ids []string
	for len(ids) < k {
		c := s.living[s.rng.IntN(len(s.living))]
		if c != n && !slices.Contains(ids, c.id) {
			ids = append(ids, c.id)
		}
	}
	return ids
}

// kill stops the given nodes at once: their links fail at the other ends
// after detect, and membership tells every living node to Forget them.
func (s *sim) kill(dead []*simNode) {
	dead = slices.Clone(dead) // it may share s.living's array
	for _, d := range dead {
		d.alive = false
		s.living = slices.DeleteFunc(s.living, func(n *simNode) bool { return n == d })
	}
	for _, d := range dead {
		for _, n := range s.living {
			if e := n.ends[d.id]; e != nil && !e.link.closed {
				e.link.closed = true
				l := e.link
				s.at(s.now.Add(s.opt.detect), false, func() { s.linkDown(n, d.id, l) })
			}
			delay := s.opt.forget[0] + time.Duration(s.rng.Int64N(int64(s.opt.forget[1]-s.opt.forget[0])+1))
			s.at(s.now.Add(delay), false, func() { s.step(n, func(m *Machine) { m.Forget(d.id) }) })
		}
	}
}

// overlay is a snapshot of the living nodes' active views.
type overlay struct {
	sizes      []int // active view size per living node
	passive    []int // passive view size per living node
	connected  bool
	symmetric  bool
	deadRefs   int // active entries naming a dead node
	eccentric  int // greatest hop distance from a random node
	pathLength float64
}

func (s *sim) overlay() overlay {
	o := overlay{symmetric: true}
	index := map[string]int{}
	for i, n := range s.living {
		index[n.id] = i
	}
	adj := make([][]int, len(s.living))
	for i, n := range s.living {
		act := n.m.Active()
		o.sizes = append(o.sizes, len(act))
		o.passive = append(o.passive, n.m.passive.len())
		for _, p := range act {
			j, ok := index[p]
			if !ok {
				o.deadRefs++
				continue
			}
			if !s.byID[p].m.active.has(n.id) {
				o.symmetric = false
			}
			adj[i] = append(adj[i], j)
			adj[j] = append(adj[j], i)
		}
	}
	if len(s.living) == 0 {
		return o
	}
	dist := bfs(adj, s.rng.IntN(len(s.living)))
	o.connected = true
	total := 0
	for _, d := range dist {
		if d < 0 {
			o.connected = false
			continue
		}
		o.eccentric = max(o.eccentric, d)
		total += d
	}
	o.pathLength = float64(total) / float64(max(1, len(dist)-1))
	return o
}

func bfs(adj [][]int, from int) []int {
	dist := make([]int, len(adj))
	for i := range dist {
		dist[i] = -1
	}
	dist[from] = 0
	queue := []int{from}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, j := range adj[i] {
			if dist[j] < 0 {
				dist[j] = dist[i] + 1
				queue = append(queue, j)
			}
		}
	}
	return dist
}

// healthy: connected, symmetric, no dead neighbour, every view in [lo, hi].
func (o overlay) healthy(lo, hi int) bool {
	if !o.connected || !o.symmetric || o.deadRefs > 0 {
		return false
	}
	for _, n := range o.sizes {
		if n < lo || n > hi {
			return false
		}
	}
	return true
}

// histogram renders the active view sizes as "size:count" pairs.
func histogram(sizes []int) string {
	counts := map[int]int{}
	for _, n := range sizes {
		counts[n]++
	}
	keys := make([]int, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf(" %d:%d", k, counts[k])
	}
	return s
}

func meanInt(xs []int) float64 {
	t := 0
	for _, x := range xs {
		t += x
	}
	return float64(t) / float64(max(1, len(xs)))
}

// waitFor runs the simulation in steps of 100ms until cond holds or limit
// has passed, returning how long it took and whether it held.
func (s *sim) waitFor(limit time.Duration, cond func(overlay) bool) (time.Duration, bool) {
	start := s.now
	for {
		if cond(s.overlay()) {
			return s.now.Sub(start), true
		}
		if s.now.Sub(start) >= limit {
			return s.now.Sub(start), false
		}
		s.run(100 * time.Millisecond)
	}
}
