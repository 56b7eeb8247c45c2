package mesh

import (
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/mesh/internal/hyparview"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
)

// The partial view (Config.ActiveView > 0): instead of linking every
// member, a node keeps relay links with the members of its HyParView
// active view only (mesh/internal/hyparview), and the broadcast tree runs
// over those links. The overlay's messages go between members over
// membership's reliable messages (memberlist's TCP streams, under the
// gossip key when one is set), not over relay links, so a relay link
// exists only between active neighbours and is dialled, as between full
// members, by the lower NodeID. To the machine, a link is a member it can
// message: Connect is carried out at once, and a message from a member
// with no link opens one.
//
// A relay link follows the view: it is dialled when its peer is Added
// (by the lower NodeID; the other end waits for it) and closed when the
// peer is Removed, its buffer released (Stats.Released, a log line: the
// peer's other neighbours pass it what it has not yet got, or its tree
// grafts it). An active peer whose relay link is not connected for
// NeighborTimeout is taken for lost (LinkDown): the machine repairs the
// view from its passive peers. An accepted link from a member that is not
// a neighbour (not active, no request pending) is refused.

const (
	overlayTick       = time.Second     // the machine's Tick, and the links' check
	overlayCandidates = 5 * time.Second // how often all members are offered as candidates
	overlayQueue      = 256             // messages waiting for the sender; beyond, dropped (a lost message)
)

// overlay is a node's partial view. Its lock is taken before the node's
// (mu) and never inside it; link closes and dials happen after it is
// released.
type overlay struct {
	n       *Node
	timeout time.Duration // the machine's NeighborTimeout

	mu     sync.Mutex
	m      *hyparview.Machine
	seq    uint64              // the last message's seq
	seen   map[string]seenFrom // sender → the latest message taken from it
	active map[string]time.Time
	// lastCandidates is when all members were last offered.
	lastCandidates time.Time

	out chan outgoing
	in  chan []byte
}

// seenFrom is the boot and seq of the latest message taken from a member:
// one that comes after a later one is dropped (each goes on its own
// stream, so two may cross).
type seenFrom struct{ boot, seq uint64 }

type outgoing struct {
	to      string
	payload []byte
}

// overlayAction is what the overlay does with the node's links once its
// lock is released.
type overlayAction struct {
	dial  string // a member to dial (Added, and this node has the lower id)
	close string // a member whose links to close (Removed, or not a neighbour)
}

func newOverlay(n *Node) (*overlay, error) {
	cfg := hyparview.Config{ActiveSize: n.cfg.ActiveView, MaxActive: min(n.cfg.ActiveView, n.cfg.MaxPeers)}
	seed := n.boot
	m, err := hyparview.New(n.id, cfg, rand.New(rand.NewPCG(seed, seed>>1|1)), time.Now())
	if err != nil {
		return nil, err
	}
	return &overlay{
		n: n, m: m, timeout: hyparview.DefaultNeighborTimeout,
		seen:   make(map[string]seenFrom),
		active: make(map[string]time.Time),
		out:    make(chan outgoing, overlayQueue),
		in:     make(chan []byte, overlayQueue),
	}, nil
}

// start runs the overlay's goroutines: its clock and inbox, and its sender.
func (o *overlay) start() {
	o.n.wg.Add(2)
	go o.run()
	go o.sender()
}

// deliver takes a message from membership (on memberlist's goroutine: it
// must not block). A full inbox drops it: a lost message, which the
// machine's timeouts repair.
func (o *overlay) deliver(msg []byte) {
	select {
	case o.in <- msg:
	default:
		o.n.stats.viewDropped.Add(1)
		o.n.log.Debug("partial view: inbox full, message dropped")
	}
}

func (o *overlay) run() {
	defer o.n.wg.Done()
	t := time.NewTicker(overlayTick)
	defer t.Stop()
	for {
		select {
		case <-o.n.stop:
			return
		case b := <-o.in:
			o.receive(b)
		case now := <-t.C:
			o.tick(now)
		}
	}
}

// sender sends the machine's messages, one at a time, in order. A message
// that cannot be sent to a member with no connected relay link loses the
// link to it (LinkDown): a request to it fails at once instead of at its
// timeout. One to a member whose relay link is connected is only lost:
// gossip's streams time out under load while the relay link, which
// acknowledges, says the member is alive.
func (o *overlay) sender() {
	defer o.n.wg.Done()
	for {
		select {
		case <-o.n.stop:
			return
		case m := <-o.out:
			if err := o.n.mem.Send(m.to, m.payload); err != nil {
				if errors.Is(err, membership.ErrClosed) {
					return
				}
				o.n.stats.viewDropped.Add(1)
				o.n.log.Debug("partial view: message not sent", "peer", m.to, "error", err)
				if o.n.memberLinked(m.to) {
					continue // alive to the link: a lost message, which the machine's timeouts repair
				}
				o.input(func() { o.m.LinkDown(m.to) })
			}
		}
	}
}

// input feeds the machine under the lock, carries out its outputs, and
// then what they ask of the links.
func (o *overlay) input(fn func()) {
	o.mu.Lock()
	fn()
	acts := o.carryLocked()
	o.mu.Unlock()
	o.act(acts)
}

// carryLocked drains the machine: messages go to the sender, connections
// are taken as made (a member can always be messaged), and changes of the
// active view become link actions.
func (o *overlay) carryLocked() (acts []overlayAction) {
	for o.m.Ready() {
		for _, out := range o.m.Drain() {
			switch out := out.(type) {
			case hyparview.Connect:
				o.m.LinkUp(out.Peer)
			case hyparview.Send:
				o.sendLocked(out.To, out.Msg)
			case hyparview.Added:
				o.active[out.Peer] = time.Now()
				if o.n.id < out.Peer {
					acts = append(acts, overlayAction{dial: out.Peer})
				}
			case hyparview.Removed:
				delete(o.active, out.Peer)
				acts = append(acts, overlayAction{close: out.Peer})
			case hyparview.Disconnect:
				// Nothing to close: messages need no link of their own.
			}
		}
	}
	return acts
}

func (o *overlay) sendLocked(to string, msg hyparview.Message) {
	o.seq++
	v := wire.View{From: o.n.id, Boot: o.n.boot, Seq: o.seq, Msg: uint8(msg.Kind), Node: msg.Node, TTL: msg.TTL, Sample: msg.Sample}
	if msg.High {
		v.Flags |= wire.ViewHigh
	}
	if msg.Accept {
		v.Flags |= wire.ViewAccept
	}
	if msg.Alive {
		v.Flags |= wire.ViewAlive
	}
	select {
	case o.out <- outgoing{to: to, payload: v.Encode()}:
	default:
		o.n.stats.viewDropped.Add(1)
		o.n.log.Debug("partial view: sender queue full, message dropped", "peer", to)
	}
}

// receive hands the machine a message from another member.
func (o *overlay) receive(b []byte) {
	v, err := wire.DecodeView(b)
	if err != nil {
		o.n.log.Warn("partial view: bad message", "error", err)
		return
	}
	msg := hyparview.Message{Kind: hyparview.Kind(v.Msg), Node: v.Node, TTL: v.TTL, Sample: v.Sample,
		High: v.Flags&wire.ViewHigh != 0, Accept: v.Flags&wire.ViewAccept != 0, Alive: v.Flags&wire.ViewAlive != 0}
	o.input(func() {
		if s, ok := o.seen[v.From]; ok && (v.Boot < s.boot || v.Boot == s.boot && v.Seq <= s.seq) {
			return // overtaken by a later message
		}
		o.seen[v.From] = seenFrom{boot: v.Boot, seq: v.Seq}
		err := o.m.Receive(v.From, msg)
		if errors.Is(err, hyparview.ErrNotLinked) {
			o.m.LinkUp(v.From) // a member that messages us opens the link
			err = o.m.Receive(v.From, msg)
		}
		if err != nil {
			o.n.log.Warn("partial view: message refused", "peer", v.From, "kind", msg.Kind, "error", err)
		}
	})
}

// tick advances the machine's clock, offers it every member now and then,
// and checks the links against the view.
func (o *overlay) tick(now time.Time) {
	var ids []string
	var succ, pred string
	if now.Sub(o.lastCandidates) >= overlayCandidates {
		o.lastCandidates = now
		ms := o.n.mem.Members()
		ids = o.n.candidates(ms)
		succ, pred = o.n.ring(ms)
	}
	linked := o.n.memberLinks()
	o.mu.Lock()
	o.m.Tick(now)
	if ids != nil {
		o.m.Candidates(ids)
		o.m.Ring(succ, pred)
	}
	var acts []overlayAction
	for peer, since := range o.active {
		if s, ok := linked[peer]; (!ok || s != relay.Connected) && now.Sub(since) > o.timeout {
			// No connected link for a while: lost (LinkDown removes it).
			o.m.LinkDown(peer)
		} else if ok && s == relay.Connected {
			o.active[peer] = now
		}
	}
	for peer := range linked {
		if !o.m.Wants(peer) {
			acts = append(acts, overlayAction{close: peer}) // not a neighbour any more
		}
	}
	acts = append(acts, o.carryLocked()...)
	o.mu.Unlock()
	o.act(acts)
}

// act carries out link actions, outside the overlay's lock.
func (o *overlay) act(acts []overlayAction) {
	for _, a := range acts {
		switch {
		case a.dial != "":
			o.n.linkMember(a.dial)
		case a.close != "":
			o.n.unlinkMember(a.close, "left the partial view")
		}
	}
}

// wants reports whether an accepted link from member id is welcome: a
// neighbour, or one this node asked to be.
func (o *overlay) wants(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m.Wants(id)
}

// forget takes member id out of both views, for good unless membership
// offers it again.
func (o *overlay) forget(id string) {
	o.input(func() { o.m.Forget(id) })
}

// memberEvent feeds membership's news to the machine.
func (o *overlay) memberEvent(ev membership.Event) {
	m := ev.Member
	switch {
	case ev.Kind == membership.MemberLeave && m.State == membership.StateDead && o.n.memberLinked(m.Name):
		// Gossip's failure detector errs under load: a node starved of CPU
		// past its probe timeout is declared dead, and refutes it. An
		// active neighbour whose relay link is connected is alive to this
		// node; the link is the active view's failure detector, as in
		// HyParView (tick: no connected link for NeighborTimeout takes the
		// neighbour for lost). Forgetting it here closed a healthy link
		// and released its buffer, and the repair's NEIGHBOR requests
		// evicted more: under CI's load a blast lost most of its events.
		o.n.log.Debug("partial view: a neighbour declared dead by gossip is kept while its relay link is connected", "peer", m.Name)
	case ev.Kind == membership.MemberLeave:
		o.input(func() { o.m.Forget(m.Name) })
	case m.State == membership.StateAlive && m.RelayAddr != "":
		o.input(func() { o.m.Candidates([]string{m.Name}) })
	}
}

// sizes returns how many members the active and passive views hold.
func (o *overlay) sizes() (active, passive int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m.Sizes()
}

// activeView returns the active view (tests, Stats).
func (o *overlay) activeView() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	v := o.m.Active()
	slices.Sort(v)
	return v
}

// candidates returns the alive members of ms of this node's channel and
// protocol that accept relay links.
func (n *Node) candidates(ms []membership.Member) []string {
	var ids []string
	for _, m := range ms {
		if n.ours(m) && m.State == membership.StateAlive && m.RelayAddr != "" {
			ids = append(ids, m.Name)
		}
	}
	return ids
}

// ring returns this node's neighbours on the ring of members ordered by
// NodeID (hyparview's Ring keeps the successor linked, which joins every
// member): the members of ms (sorted by name) of this node's channel and
// protocol that accept relay links and have not left. A suspect or dead
// member keeps its place until membership reaps it, so that gossip's
// errors under load do not reshape the ring: a dead successor is only a
// request that times out, and a ring missing one link still joins everyone.
func (n *Node) ring(ms []membership.Member) (succ, pred string) {
	var ids []string
	for _, m := range ms {
		if m.Name == n.id || n.ours(m) && m.State != membership.StateLeft && m.RelayAddr != "" {
			ids = append(ids, m.Name)
		}
	}
	i := slices.Index(ids, n.id)
	if i < 0 || len(ids) < 2 {
		return "", ""
	}
	return ids[(i+1)%len(ids)], ids[(i+len(ids)-1)%len(ids)]
}

// member returns what membership knows of id, in any state; false if it
// lists no such member, or this node runs without membership.
func (n *Node) member(id string) (membership.Member, bool) {
	if n.mem == nil {
		return membership.Member{}, false
	}
	for _, m := range n.mem.Members() {
		if m.Name == id {
			return m, true
		}
	}
	return membership.Member{}, false
}

// memberLinks returns the state of each member's link (dialled or
// accepted; the connected one if both). Links of nodes that are not
// members (clients that connected by Connect) are not the view's.
func (n *Node) memberLinks() map[string]relay.State {
	ms := n.mem.Members()
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]relay.State, len(n.members)+len(n.inbound))
	for _, m := range ms {
		if s, ok := n.memberLinkLocked(m.Name); ok {
			out[m.Name] = s
		}
	}
	return out
}

// memberLinked reports whether a relay link to member id is connected.
func (n *Node) memberLinked(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, _ := n.memberLinkLocked(id)
	return s == relay.Connected
}

// memberLinkLocked returns the state of member id's link (the connected one
// if it has two), false if it has none. Called with mu held.
func (n *Node) memberLinkLocked(id string) (s relay.State, ok bool) {
	for _, p := range n.memberPeersLocked(id) {
		if s, ok = p.link.State(), true; s == relay.Connected {
			break
		}
	}
	return s, ok
}

// linkMember dials member id at its relay address, unless a link to it
// exists or it is not one this node may link (ours).
func (n *Node) linkMember(id string) {
	n.mu.Lock()
	_, dialled := n.members[id]
	_, accepted := n.inbound[id]
	n.mu.Unlock()
	if dialled || accepted {
		return
	}
	if m, ok := n.member(id); ok && m.RelayAddr != "" && n.ours(m) {
		if _, err := n.dial(m.RelayAddr, id); err != nil {
			n.log.Warn("cannot link a neighbour", "peer", id, "addr", m.RelayAddr, "error", err)
		}
	}
}

// unlinkMember closes this node's links to member id for good; their
// buffers are released (Stats.Released) and logged.
func (n *Node) unlinkMember(id, why string) {
	n.mu.Lock()
	gone := n.memberPeersLocked(id)
	n.mu.Unlock()
	for _, p := range gone {
		addr := p.Addr()
		if freed := n.release(p); freed > 0 {
			n.log.Info("link closed: "+why+"; its neighbours pass on what it had not acknowledged", "peer", id, "addr", addr, "released", freed)
		} else {
			n.log.Debug("link closed: "+why, "peer", id, "addr", addr)
		}
	}
}
