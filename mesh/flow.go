package mesh

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/verbosemesh/verbose/mesh/internal/flow"
	"github.com/verbosemesh/verbose/mesh/internal/plumtree"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
)

// SlowConsumerPolicy says what a node does when its handlers, or a link it
// relays to, cannot keep up.
type SlowConsumerPolicy int

const (
	// Backpressure, the default, holds the node's senders back (credit per
	// link and origin, see PROTOCOL.md): the origin's Emit waits, and
	// nothing is lost. A consumer that takes nothing for Timeout is
	// declared slow and waited for no more until it takes again.
	Backpressure SlowConsumerPolicy = iota
	// Drop never slows anyone for this node's handlers: past HandlerQueue
	// their backlog is dropped, counted and reported (Overflow with
	// ErrSlowConsumer).
	Drop
)

func (p SlowConsumerPolicy) String() string {
	switch p {
	case Backpressure:
		return "backpressure"
	case Drop:
		return "drop"
	}
	return "SlowConsumerPolicy(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText returns the policy's name: backpressure or drop.
func (p SlowConsumerPolicy) MarshalText() ([]byte, error) {
	if p != Backpressure && p != Drop {
		return nil, fmt.Errorf("mesh: unknown SlowConsumerPolicy %d", int(p))
	}
	return []byte(p.String()), nil
}

// UnmarshalText sets the policy by name (backpressure or drop), for flags
// (flag.TextVar) and configuration files.
func (p *SlowConsumerPolicy) UnmarshalText(b []byte) error {
	switch string(b) {
	case "backpressure":
		*p = Backpressure
	case "drop":
		*p = Drop
	default:
		return fmt.Errorf("must be backpressure or drop, got %q", b)
	}
	return nil
}

// held is an event that flow control holds for some target: its encoding
// with this node on its path, for links, and, if the handlers wait for it,
// its envelope with owned args.
type held struct {
	relayed bool // payload is another node's event (Stats.Forwarded)
	payload []byte
	env     wire.Envelope
}

// linkRoomFactor × BufferMax is how full a connected link's buffer may be
// for a credited send: below relay's connected limit (4 × BufferMax), so
// that grants, tree messages and GRAFT answers never push an event out.
const linkRoomFactor = 2

// flowRooms is what flow control asks of the links and the handlers.
// Called with the router's lock held.
type flowRooms struct{ r *router }

func (f flowRooms) LinkRoom(p flow.Peer) int {
	l := f.r.peers[p].link
	switch {
	case l == nil:
		return 0
	case l.State() != relay.Connected:
		return f.r.bufferMax - l.Buffered() // what relay keeps for an absent peer
	}
	return linkRoomFactor*f.r.bufferMax - l.Buffered()
}

func (f flowRooms) HandlerRoom() int      { return f.r.disp.room() }
func (f flowRooms) HandlersTaken() uint64 { return f.r.disp.delivered.Load() }

// asFlow returns the tree's peer ids as flow's, in *buf (reused).
func asFlow(buf *[]flow.Peer, ids []plumtree.PeerID) []flow.Peer {
	*buf = (*buf)[:0]
	for _, id := range ids {
		*buf = append(*buf, flow.Peer(id))
	}
	return *buf
}

// carryFlowLocked carries out what flow control let go: held events to
// their links and handlers (committed to the dispatcher), grants,
// slow-consumer notices and (with Drop) drops.
func (r *router) carryFlowLocked(now time.Time) {
	// A GRAFT answer that the stores no longer hold is lost to the grafter:
	// flow learns it (Lost), which may let more go. Bounded: what is left
	// goes with the next input.
	for range 4 {
		lost := r.carryFlowOnce(now)
		if len(lost) == 0 {
			break
		}
		for _, p := range lost {
			r.flow.Lost(p, now)
		}
	}
	r.disp.commit()
	waiting := r.flow.Waiting()
	if r.flowHeld.Load() != waiting {
		r.flowHeld.Store(waiting)
	}
	if w := waiting || r.flow.AnySlow(); r.flowWaiting.Load() != w {
		r.flowWaiting.Store(w) // a slow consumer recovers on a resume
	}
	if waiting && !r.flowArmed {
		// The tick loop learns flow's deadline (when a consumer would be
		// declared slow); with none, there is nothing to wake it for.
		if _, ok := r.flow.NextDeadline(); ok {
			r.flowArmed = true
			r.kickOrderer()
		}
	}
	// Emit waits as soon as one of its own events waits (emit sets
	// ownFull): holding the emitter is cheaper than holding its events
	// (meshbench's blast: with the window as the bound, two thirds of the
	// events took the held path and the ratio fell from 0.17 to 0.14).
	if r.ownFull.Load() && r.flow.Backlog(r.self) == 0 {
		close(r.emitSpace)
		r.emitSpace = make(chan struct{})
		r.ownFull.Store(false)
	}
}

// carryFlowOnce carries out one Ready of flow's and returns the peers that
// a stored event could not be resent to.
func (r *router) carryFlowOnce(now time.Time) (lost []flow.Peer) {
	rd := r.flow.Ready()
	forwarded := 0
	for _, s := range rd.Sends {
		r.peers[s.To].link.Send(s.Item.payload)
		if s.Item.relayed {
			forwarded++
		}
	}
	if forwarded > 0 {
		r.stats.forwarded.Add(uint64(forwarded))
	}
	for _, rs := range rd.Resends {
		if rs.Payload != nil {
			r.peers[rs.To].link.Send(rs.Payload)
			r.stats.graftResent.Add(1)
		} else {
			r.stats.graftMisses.Add(1)
			if !slices.Contains(lost, rs.To) {
				lost = append(lost, rs.To)
			}
		}
	}
	for _, h := range rd.Delivers {
		r.disp.stage(&h.env)
	}
	if len(rd.Grants) > 0 {
		r.sendGrants(rd.Grants)
	}
	for _, nt := range rd.Notices {
		r.noticeSlow(nt)
	}
	for _, d := range rd.Dropped {
		pr := r.peers[d.To]
		r.losses.add(lossKey{link: pr.link, err: ErrSlowConsumer}, pr.peer, d.N)
	}
	return lost
}

// linkLost notes that l's retransmit buffer dropped events (overflow): its
// remote will not consume them (see flow's Lost).
func (r *router) linkLost(l *relay.Link) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byLink[l]; ok {
		now := r.read()
		r.flow.Lost(flow.Peer(id), now)
		r.carryFlowLocked(now)
	}
}

// sendGrants sends grants batched per link, at most MaxGrants a payload.
func (r *router) sendGrants(gs []flow.Grant) {
	slices.SortStableFunc(gs, func(a, b flow.Grant) int { return cmp.Compare(a.To, b.To) })
	for i := 0; i < len(gs); {
		j := i
		r.credits = r.credits[:0]
		for j < len(gs) && gs[j].To == gs[i].To && j-i < wire.MaxGrants {
			r.credits = append(r.credits, wire.Credit{Origin: gs[j].Origin, Boot: gs[j].Boot, Upto: gs[j].Upto})
			j++
		}
		if l := r.peers[gs[i].To].link; l != nil {
			l.Send(wire.NewGrant(r.credits).Encode())
			r.stats.grants.Add(1)
		}
		i = j
	}
}

// noticeSlow reports a consumer declared slow, or taking again.
func (r *router) noticeSlow(nt flow.Notice) {
	pe := PeerEvent{Kind: Slow, Err: ErrSlowConsumer}
	if !nt.Slow {
		pe.Kind, pe.Err = Recovered, nil
	}
	if nt.Target != flow.Local {
		pr := r.peers[nt.Target]
		pe.Peer, pe.PeerID, pe.Err = pr.peer, pr.link.RemoteID(), nil
	}
	if nt.Slow {
		r.stats.slowConsumers.Add(1)
		r.log.Warn("a consumer took nothing for Timeout: not waiting for it until it takes again",
			"peer", pe.PeerID, "handlers", nt.Target == flow.Local)
	} else {
		r.log.Info("a slow consumer takes events again", "peer", pe.PeerID, "handlers", nt.Target == flow.Local)
	}
	r.pdisp.peerEvent(pe)
}

// holdLocked hands flow control the event it held: the payload its links
// wait for and, if the handlers wait, the envelope with owned args.
func (r *router) holdLocked(payload []byte, env *wire.Envelope, local bool) {
	h := &held{payload: payload, relayed: env != nil}
	if local {
		h.env = wire.Envelope{Origin: env.Origin, Boot: env.Boot, Seq: env.Seq, Name: env.Name, Args: bytes.Clone(env.Args)}
	}
	r.flow.Keep(h)
}

// resume lets flow control look again at what it holds: a link's buffer
// drained or the handlers took events.
func (r *router) resume() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.read()
	r.flow.Resume(now)
	r.carryFlowLocked(now)
}

// resumeIfHeld resumes flow control if it holds events: called when the
// handlers took a batch or a link's buffer drained.
func (r *router) resumeIfHeld() {
	if r.flowWaiting.Load() {
		r.resume()
	}
}

// receiveGrant handles a GRANT from l.
func (r *router) receiveGrant(from plumtree.PeerID, g *wire.Grant, now time.Time) {
	for _, c := range g.Entries {
		r.flow.Granted(flow.Peer(from), c.Origin, c.Boot, c.Upto, now)
	}
	r.carryFlowLocked(now)
}

// An Emit that waits this long is logged with what it waits for, and
// again every emitWaitRepeat while it waits: a held emitter is never
// silent, and says which consumer holds it before Timeout declares that
// one slow.
const (
	emitWaitReport = 2 * time.Second
	emitWaitRepeat = 10 * time.Second
)

// waitFlow is Emit's back-pressure: it waits while some of this node's own
// events wait for a consumer (credit or link room). Flow control stops waiting for a
// consumer that takes nothing for Timeout, so the wait ends by then.
func (n *Node) waitFlow(ctx context.Context) error {
	r := n.router
	if !r.ownFull.Load() {
		return nil
	}
	start := time.Now()
	report := time.NewTimer(emitWaitReport)
	defer report.Stop()
	for {
		r.mu.Lock()
		full, ch := r.ownFull.Load(), r.emitSpace
		r.mu.Unlock()
		if !full {
			break
		}
		select {
		case <-ch:
		case <-report.C:
			r.reportEmitWait(time.Since(start))
			report.Reset(emitWaitRepeat)
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stop:
			return ErrClosed
		}
	}
	n.stats.emitWaits.Add(1)
	n.stats.emitWaited.Add(uint64(time.Since(start)))
	return nil
}

// reportEmitWait logs, at Warn, that Emit has waited this long, and for
// what: the consumers this node's oldest held event still waits for, each
// with the credit it gave and how long it has taken nothing.
func (r *router) reportEmitWait(waited time.Duration) {
	r.mu.Lock()
	now := r.read()
	seq, at, waits, ok := r.flow.Oldest(r.self)
	held := r.flow.Backlog(r.self)
	var desc []string
	for _, w := range waits {
		var b strings.Builder
		if w.Peer == flow.Local {
			b.WriteString("this node's handlers")
		} else {
			id := r.peers[w.Peer].link.RemoteID()
			if id == "" {
				id = "a link not yet linked"
			}
			b.WriteString(id)
			switch {
			case !w.Up:
				b.WriteString(" (down")
			case w.Granted:
				fmt.Fprintf(&b, " (granted up to %d", w.Credit)
			default:
				b.WriteString(" (no grant yet")
			}
			if w.Tentative {
				b.WriteString(", tentative")
			}
			b.WriteString(")")
		}
		if w.Slow {
			b.WriteString(" slow")
		}
		if !w.Since.IsZero() {
			fmt.Fprintf(&b, " idle %v", now.Sub(w.Since).Round(time.Millisecond))
		}
		desc = append(desc, b.String())
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	r.log.Warn("Emit waits for consumers (back-pressure)", "waited", waited.Round(time.Millisecond),
		"held", held, "oldest_seq", seq, "oldest_held", now.Sub(at).Round(time.Millisecond), "waits_for", strings.Join(desc, "; "))
}
