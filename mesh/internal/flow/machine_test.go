package flow

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// rooms is a Rooms the tests set by hand.
type rooms struct {
	full    map[Peer]bool // links whose retransmit buffer takes nothing
	room    int           // otherwise, what it takes (0: plenty)
	handler int           // room in the handler queue
	taken   uint64
}

func (r *rooms) LinkRoom(p Peer) int {
	if r.full[p] {
		return 0
	}
	if r.room > 0 {
		return r.room
	}
	return 1 << 20
}
func (r *rooms) HandlerRoom() int      { return r.handler }
func (r *rooms) HandlersTaken() uint64 { return r.taken }

var t0 = time.Unix(1000, 0)

const (
	a Peer = 0
	b Peer = 1
)

type item struct{ seq uint64 }

func newMachine(window uint64, drop bool) (*Machine[item], *rooms) {
	r := &rooms{full: map[Peer]bool{}, handler: 1 << 20}
	m := New[item](Config{Window: window, Timeout: time.Second, IdleTimeout: time.Minute, Drop: drop, Rooms: r})
	return m, r
}

// release feeds seq of origin "x", boot 1, and keeps it if held.
func release(m *Machine[item], seq uint64, targets []Peer, local bool, now time.Time) Decision {
	d := m.Release("x", 1, seq, targets, nil, local, now)
	d.Send = slices.Clone(d.Send)
	if d.Held {
		m.Keep(item{seq})
	}
	return d
}

// sent collects the seqs Ready sends to p.
func sent(r Ready[item], p Peer) []uint64 {
	var out []uint64
	for _, s := range r.Sends {
		if s.To == p {
			out = append(out, s.Item.seq)
		}
	}
	return out
}

func seqs(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// answer is a GRAFT's answer of seqs from..to, each payload its seq.
func answer(from, to uint64) [][]byte {
	var out [][]byte
	for s := from; s <= to; s++ {
		out = append(out, []byte{byte(s)})
	}
	return out
}

func TestCreditBeforeTheFirstGrantIsTheRemotesWindow(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 4, t0)
	for s := uint64(10); s < 20; s++ {
		d := release(m, s, []Peer{a}, false, t0)
		if wantSend := s < 14; (len(d.Send) == 1) != wantSend || d.Held == wantSend {
			t.Fatalf("seq %d: decision %+v, want send=%v", s, d, wantSend)
		}
	}
	if got := m.Backlog("x"); got != 6 {
		t.Fatalf("backlog %d, want 6", got)
	}
	m.Granted(a, "x", 1, 16, t0)
	if got := sent(m.Ready(), a); !slices.Equal(got, seqs(14, 16)) {
		t.Fatalf("after grant to 16 sent %v", got)
	}
	// A stale or repeated grant changes nothing.
	m.Granted(a, "x", 1, 15, t0)
	m.Granted(a, "x", 1, 16, t0)
	if got := sent(m.Ready(), a); len(got) != 0 {
		t.Fatalf("stale grant sent %v", got)
	}
	m.Granted(a, "x", 1, 100, t0)
	if got := sent(m.Ready(), a); !slices.Equal(got, seqs(17, 19)) {
		t.Fatalf("after grant to 100 sent %v", got)
	}
	if m.Backlog("x") != 0 {
		t.Fatalf("backlog %d after everything went", m.Backlog("x"))
	}
}

func TestATargetWaitsAloneTheOthersGoOn(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.AddPeer(b)
	m.PeerUp(a, 100, t0)
	m.PeerUp(b, 2, t0)
	var toA []uint64
	for s := uint64(1); s <= 6; s++ {
		d := release(m, s, []Peer{a, b}, false, t0)
		if !slices.Contains(d.Send, a) {
			t.Fatalf("seq %d not sent to a at once: %+v", s, d)
		}
		toA = append(toA, s)
		if slices.Contains(d.Send, b) != (s <= 2) {
			t.Fatalf("seq %d to b: %+v", s, d)
		}
	}
	if len(toA) != 6 || m.Backlog("x") != 4 {
		t.Fatalf("sent to a %v, backlog %d", toA, m.Backlog("x"))
	}
	m.Granted(b, "x", 1, 6, t0)
	if got := sent(m.Ready(), b); !slices.Equal(got, seqs(3, 6)) {
		t.Fatalf("b got %v", got)
	}
}

// Oldest says what the oldest held event waits for: the link with no
// credit left (its grant, and since when it is waited on), not the one
// that took it; and nothing once it went.
func TestOldestNamesWhatItWaitsFor(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.AddPeer(b)
	m.PeerUp(a, 100, t0)
	m.PeerUp(b, 2, t0)
	if _, _, _, ok := m.Oldest("x"); ok {
		t.Fatal("Oldest with nothing held")
	}
	for s := uint64(1); s <= 4; s++ {
		release(m, s, []Peer{a, b}, false, t0.Add(time.Duration(s)*time.Millisecond))
	}
	seq, at, waits, ok := m.Oldest("x")
	want := []Waiter{{Peer: b, Up: true, Credit: 2, Granted: true, Since: t0.Add(3 * time.Millisecond)}}
	if !ok || seq != 3 || !at.Equal(t0.Add(3*time.Millisecond)) || !slices.Equal(waits, want) {
		t.Fatalf("Oldest: seq %d at %v waits %+v ok %v; want 3, held at +3ms, waiting for %+v", seq, at, waits, ok, want)
	}
	m.Granted(b, "x", 1, 4, t0)
	m.Ready()
	if _, _, w, ok := m.Oldest("x"); ok {
		t.Fatalf("Oldest after the grant: %+v", w)
	}
}

func TestLinkRoomHoldsAndResumeSends(t *testing.T) {
	m, r := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 100, t0)
	r.full[a] = true
	for s := uint64(1); s <= 3; s++ {
		if d := release(m, s, []Peer{a}, false, t0); !d.Held {
			t.Fatalf("seq %d sent into a full buffer", s)
		}
	}
	m.Resume(t0)
	if got := sent(m.Ready(), a); len(got) != 0 {
		t.Fatalf("sent %v while full", got)
	}
	r.full[a] = false
	m.Resume(t0)
	if got := sent(m.Ready(), a); !slices.Equal(got, seqs(1, 3)) {
		t.Fatalf("after room sent %v", got)
	}
}

func TestHandlersAreATargetWithTheQueuesRoom(t *testing.T) {
	m, r := newMachine(16, false)
	r.handler = 2
	var delivered []uint64
	for s := uint64(1); s <= 5; s++ {
		d := release(m, s, nil, true, t0)
		if d.Deliver {
			delivered = append(delivered, s)
			r.handler--
		}
	}
	if !slices.Equal(delivered, seqs(1, 2)) || m.Backlog("x") != 3 {
		t.Fatalf("delivered %v, backlog %d", delivered, m.Backlog("x"))
	}
	r.handler, r.taken = 2, 2
	m.Resume(t0)
	got := m.Ready()
	var ds []uint64
	for _, it := range got.Delivers {
		ds = append(ds, it.seq)
	}
	if !slices.Equal(ds, seqs(3, 4)) {
		t.Fatalf("resume delivered %v, want 3 4 (room 2)", ds)
	}
}

func TestReceiverGrantsOnArrivalAndEachQuarterWindow(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 16, t0)
	m.Arrived(a, "x", 1, 5, t0)
	g := m.Ready().Grants
	if len(g) != 1 || g[0] != (Grant{To: a, Origin: "x", Boot: 1, Upto: 20}) {
		t.Fatalf("first arrival granted %+v", g)
	}
	m.Arrived(a, "x", 1, 6, t0)
	if g := m.Ready().Grants; len(g) != 0 {
		t.Fatalf("second arrival granted again: %+v", g)
	}
	var grants []Grant
	for s := uint64(5); s < 13; s++ {
		release(m, s, nil, true, t0)
		grants = append(grants, m.Ready().Grants...)
	}
	// Consumed 5..12: the watermark reached 9 (a quarter past 5), then 13.
	want := []Grant{{a, "x", 1, 9 + 15}, {a, "x", 1, 13 + 15}}
	if !slices.Equal(grants, want) {
		t.Fatalf("grants %+v, want %+v", grants, want)
	}
}

func TestHeldEventsHoldTheWatermark(t *testing.T) {
	m, r := newMachine(8, false)
	m.AddPeer(a)
	m.PeerUp(a, 8, t0)
	m.Arrived(a, "x", 1, 1, t0)
	m.Ready()
	r.handler = 0
	for s := uint64(1); s <= 8; s++ {
		release(m, s, nil, true, t0)
	}
	if g := m.Ready().Grants; len(g) != 0 {
		t.Fatalf("granted %+v while nothing was consumed", g)
	}
	r.handler, r.taken = 100, 0
	m.Resume(t0)
	out := m.Ready()
	if len(out.Delivers) != 8 || len(out.Grants) != 1 || out.Grants[0].Upto != 9+7 {
		t.Fatalf("after consuming: %d delivers, grants %+v", len(out.Delivers), out.Grants)
	}
}

func TestSlowPeerIsDeclaredAndRecovers(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 2, t0)
	for s := uint64(1); s <= 5; s++ {
		release(m, s, []Peer{a}, false, t0)
	}
	m.Ready()
	if dl, ok := m.NextDeadline(); !ok || !dl.Equal(t0.Add(time.Second)) {
		t.Fatalf("next deadline %v %v", dl, ok)
	}
	m.Tick(t0.Add(999 * time.Millisecond))
	if out := m.Ready(); len(out.Notices) != 0 || len(out.Sends) != 0 {
		t.Fatalf("declared early: %+v", out)
	}
	now := t0.Add(time.Second)
	m.Tick(now)
	out := m.Ready()
	if !slices.Equal(out.Notices, []Notice{{Target: a, Slow: true}}) || !slices.Equal(sent(out, a), seqs(3, 5)) {
		t.Fatalf("at Timeout: notices %+v sent %v", out.Notices, sent(out, a))
	}
	if !m.Slow(a) {
		t.Fatal("a not slow")
	}
	// A slow peer takes what comes, without credit, and nobody waits.
	if d := release(m, 6, []Peer{a}, false, now); d.Held || len(d.Send) != 1 {
		t.Fatalf("slow peer: %+v", d)
	}
	m.Granted(a, "x", 1, 30, now)
	if out := m.Ready(); !slices.Equal(out.Notices, []Notice{{Target: a}}) || m.Slow(a) {
		t.Fatalf("after a grant: %+v slow=%v", out.Notices, m.Slow(a))
	}
}

func TestStuckHandlersStallOnceThenOverflow(t *testing.T) {
	m, r := newMachine(16, false)
	r.handler = 0
	if d := release(m, 1, nil, true, t0); !d.Held {
		t.Fatal("delivered into a full queue")
	}
	m.Tick(t0.Add(time.Second))
	out := m.Ready()
	if !slices.Equal(out.Notices, []Notice{{Target: Local, Slow: true}}) || len(out.Delivers) != 1 {
		t.Fatalf("at Timeout: %+v", out)
	}
	if d := release(m, 2, nil, true, t0.Add(time.Second)); !d.Deliver {
		t.Fatal("slow handlers still hold events")
	}
	r.taken = 1
	m.Resume(t0.Add(2 * time.Second))
	if out := m.Ready(); !slices.Equal(out.Notices, []Notice{{Target: Local}}) {
		t.Fatalf("handlers took one: %+v", out.Notices)
	}
}

// The handlers' wait restarts when they take, as the caller resumes, not
// when a later Tick notices: a take 100ms after the handlers were first
// waited on has them declared slow Timeout/2 after the take, not
// Timeout/2 after the first Tick.
func TestHandlersWaitFromTheirLastTake(t *testing.T) {
	m, r := newMachine(16, false)
	r.handler = 0
	if d := release(m, 1, nil, true, t0); !d.Held {
		t.Fatal("delivered into a full queue")
	}
	r.taken = 1 // the dispatcher took a batch; the handler is stuck in it
	m.Resume(t0.Add(100 * time.Millisecond))
	m.Ready()
	if at, ok := m.NextDeadline(); !ok || !at.Equal(t0.Add(600*time.Millisecond)) {
		t.Fatalf("next deadline %v (%v), want the take + Timeout/2", at, ok)
	}
	m.Tick(t0.Add(600 * time.Millisecond))
	if out := m.Ready(); !slices.Equal(out.Notices, []Notice{{Target: Local, Slow: true}}) {
		t.Fatalf("Timeout/2 after the take: %+v", out.Notices)
	}
}

func TestANoLongerWaitedTargetIsNotDeclared(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 1, t0)
	release(m, 1, []Peer{a}, false, t0)
	release(m, 2, []Peer{a}, false, t0) // waits
	m.Granted(a, "x", 1, 2, t0.Add(500*time.Millisecond))
	m.Ready()
	m.Tick(t0.Add(10 * time.Second))
	if out := m.Ready(); len(out.Notices) != 0 {
		t.Fatalf("declared a peer nothing waits for: %+v", out.Notices)
	}
}

func TestPeerDownSendsIntoTheBufferAndRemoveForgets(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.AddPeer(b)
	m.PeerUp(a, 1, t0)
	m.PeerUp(b, 1, t0)
	for s := uint64(1); s <= 4; s++ {
		release(m, s, []Peer{a, b}, false, t0)
	}
	m.Ready()
	m.PeerDown(a, t0)
	if got := sent(m.Ready(), a); !slices.Equal(got, seqs(2, 4)) {
		t.Fatalf("down peer got %v", got)
	}
	if m.Backlog("x") != 3 {
		t.Fatalf("backlog %d: b still waits for 2..4", m.Backlog("x"))
	}
	if n := m.RemovePeer(b, t0); n != 3 {
		t.Fatalf("RemovePeer dropped %d held events, want 3 (reported by the caller)", n)
	}
	if out := m.Ready(); len(out.Sends) != 0 || m.Backlog("x") != 0 {
		t.Fatalf("removed peer: sends %+v backlog %d", out.Sends, m.Backlog("x"))
	}
	// Back up: credit starts afresh from the remote's window.
	m.PeerUp(a, 2, t0)
	if d := release(m, 5, []Peer{a}, false, t0); len(d.Send) != 1 {
		t.Fatalf("after PeerUp: %+v", d)
	}
}

func TestANewBootStartsAfresh(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 2, t0)
	release(m, 1, []Peer{a}, false, t0)
	release(m, 2, []Peer{a}, false, t0)
	if d := m.Release("x", 2, 1, []Peer{a}, nil, false, t0); len(d.Send) != 1 {
		t.Fatalf("new boot's first event: %+v", d)
	}
}

func TestDropHoldsAtMostWindowPerOrigin(t *testing.T) {
	m, _ := newMachine(4, true)
	m.AddPeer(a)
	m.PeerUp(a, 1, t0)
	dropped := 0
	for s := uint64(1); s <= 10; s++ {
		d := release(m, s, []Peer{a}, true, t0)
		if !d.Deliver {
			t.Fatalf("Drop held seq %d from the handlers", s)
		}
		for _, x := range m.Ready().Dropped {
			dropped += x.N
		}
	}
	if m.Backlog("x") != 4 || dropped != 5 {
		t.Fatalf("backlog %d dropped %d, want 4 and 5 (1 sent)", m.Backlog("x"), dropped)
	}
	m.Granted(a, "x", 1, 100, t0)
	if got := sent(m.Ready(), a); !slices.Equal(got, seqs(7, 10)) {
		t.Fatalf("after grant sent %v, want the newest 4", got)
	}
}

func TestIdleOriginsAreForgotten(t *testing.T) {
	m, _ := newMachine(16, false)
	release(m, 1, nil, true, t0)
	gen := m.Gen()
	// Forgotten after four sweeps (IdleTimeout/4 apart) without an event.
	for i := 1; i <= 4; i++ {
		m.Tick(t0.Add(time.Duration(i) * 20 * time.Second))
		if len(m.origins) != 1 {
			t.Fatalf("forgotten after %d sweeps", i)
		}
	}
	m.Tick(t0.Add(100 * time.Second))
	if len(m.origins) != 0 || m.Gen() == gen {
		t.Fatalf("%d origins kept after five sweeps (gen %d, was %d)", len(m.origins), m.Gen(), gen)
	}
}

// TestChainIsLosslessAndInOrder runs a line of nodes with random handler
// room and link room, relaying grants and sends between their machines,
// and checks that every node's handlers get every event once, in order,
// and that no node ever holds more than Window events.
func TestChainIsLosslessAndInOrder(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runChain(t, seed) })
	}
}

type chainNode struct {
	m     *Machine[item]
	r     *rooms
	inbox []uint64 // arrived from upstream, not yet released
	queue []uint64 // handler queue
	got   []uint64
}

func runChain(t *testing.T, seed uint64) {
	const n, window, events = 4, 8, 300
	rng := rand.New(rand.NewPCG(seed, 1))
	nodes := make([]*chainNode, n)
	for i := range nodes {
		r := &rooms{full: map[Peer]bool{}}
		nodes[i] = &chainNode{r: r, m: New[item](Config{Window: window, Timeout: time.Hour, IdleTimeout: time.Hour, Rooms: r})}
		// Peer 0 is upstream, peer 1 downstream.
		nodes[i].m.AddPeer(0)
		nodes[i].m.AddPeer(1)
		nodes[i].m.PeerUp(0, window, t0)
		nodes[i].m.PeerUp(1, window, t0)
	}
	down := func(i int) []Peer {
		if i == n-1 {
			return nil
		}
		return []Peer{1}
	}
	// apply carries out node i's Ready.
	var carry func(i int)
	carry = func(i int) {
		out := nodes[i].m.Ready()
		for _, s := range out.Sends {
			nodes[i+1].inbox = append(nodes[i+1].inbox, s.Item.seq)
		}
		for _, d := range out.Delivers {
			nodes[i].queue = append(nodes[i].queue, d.seq)
		}
		for _, g := range out.Grants {
			if g.To != 0 || i == 0 {
				t.Fatalf("node %d grants %+v", i, g)
			}
			nodes[i-1].m.Granted(1, g.Origin, g.Boot, g.Upto, t0)
		}
		if len(out.Grants) > 0 {
			carry(i - 1) // a machine's outputs are carried out before its next input
		}
	}
	apply := func(i int, d *Decision, it uint64) {
		if len(d.Send) > 0 {
			nodes[i+1].inbox = append(nodes[i+1].inbox, it)
		}
		if d.Deliver {
			nodes[i].queue = append(nodes[i].queue, it)
		}
		if d.Held {
			nodes[i].m.Keep(item{it})
		}
	}
	next := uint64(1)
	for step := 0; step < 100000; step++ {
		done := next > events
		for _, nd := range nodes {
			done = done && len(nd.got) == events
		}
		if done {
			break
		}
		i := rng.IntN(n)
		nd := nodes[i]
		nd.r.handler = 4 - len(nd.queue)
		switch rng.IntN(4) {
		case 0: // emit or release what arrived
			if i == 0 {
				if next <= events && nd.m.Backlog("x") < window {
					d := nd.m.Release("x", 1, next, down(0), nil, true, t0)
					apply(0, &d, next)
					next++
				}
			} else if len(nd.inbox) > 0 {
				s := nd.inbox[0]
				nd.inbox = nd.inbox[1:]
				nd.m.Arrived(0, "x", 1, s, t0)
				d := nd.m.Release("x", 1, s, down(i), nil, true, t0)
				apply(i, &d, s)
			}
		case 1: // handlers take one
			if len(nd.queue) > 0 {
				nd.got = append(nd.got, nd.queue[0])
				nd.queue = nd.queue[1:]
				nd.r.taken++
				nd.r.handler = 4 - len(nd.queue)
				nd.m.Resume(t0)
			}
		case 2: // the downstream link's buffer fills or drains
			nd.r.full[1] = rng.IntN(3) == 0
			nd.m.Resume(t0)
		case 3:
			nd.m.Resume(t0)
		}
		carry(i)
		if b := nd.m.Backlog("x"); b > window {
			t.Fatalf("node %d holds %d > window", i, b)
		}
		if len(nd.inbox) > window {
			t.Fatalf("node %d was sent %d > window unreleased events", i, len(nd.inbox))
		}
	}
	for i, nd := range nodes {
		if !slices.Equal(nd.got, seqs(1, events)) {
			t.Fatalf("node %d got %d events, first %v", i, len(nd.got), nd.got[:min(10, len(nd.got))])
		}
	}
}

func TestAGraftResendsFromTheStoreFirst(t *testing.T) {
	m, _ := newMachine(16, false)
	m.AddPeer(a)
	m.PeerUp(a, 4, t0)
	// a asks for 1..10, all released here; its credit starts at 1.
	m.Graft(a, "x", 1, 1, answer(1, 10), t0)
	out := m.Ready()
	if len(out.Resends) != 4 || out.Resends[0].Seq != 1 || out.Resends[3].Seq != 4 {
		t.Fatalf("resends %+v, want 1..4 (the remote's window)", out.Resends)
	}
	// A new event waits behind the range.
	if d := release(m, 11, []Peer{a}, false, t0); !d.Held {
		t.Fatalf("event 11 went before the range: %+v", d)
	}
	m.Granted(a, "x", 1, 20, t0)
	out = m.Ready()
	var got []uint64
	for _, r := range out.Resends {
		got = append(got, r.Seq)
	}
	if !slices.Equal(got, seqs(5, 10)) || !slices.Equal(sent(out, a), []uint64{11}) {
		t.Fatalf("after a grant: resends %v, sends %v", got, sent(out, a))
	}
}

func TestSendsCountAgainstTheLinksRoom(t *testing.T) {
	m, r := newMachine(100, false)
	m.AddPeer(a)
	m.PeerUp(a, 100, t0)
	r.full[a] = true
	for s := uint64(1); s <= 10; s++ {
		release(m, s, []Peer{a}, false, t0)
	}
	r.full[a] = false
	r.room = 3 // the link takes 3 more, and Ready has sent nothing yet
	m.Resume(t0)
	if got := sent(m.Ready(), a); !slices.Equal(got, seqs(1, 3)) {
		t.Fatalf("sent %v into a room of 3", got)
	}
}

func TestTentativeTargetsHoldUntilKnownOrGrafted(t *testing.T) {
	m, _ := newMachine(4, false)
	m.AddPeer(a)
	m.AddPeer(b)
	m.PeerUp(a, 100, t0)
	m.PeerUp(b, 100, t0)
	for s := uint64(1); s <= 6; s++ {
		d := m.Release("x", 1, s, nil, []Peer{a, b}, false, t0)
		if len(d.Send) != 0 || !d.Held {
			t.Fatalf("seq %d: %+v, want held for the tentative peers, sent to none", s, d)
		}
		m.Keep(item{s})
	}
	if m.Backlog("x") != 6 {
		t.Fatalf("backlog %d", m.Backlog("x"))
	}
	m.Untarget(a, "x", t0)
	if m.Backlog("x") != 6 {
		t.Fatalf("backlog %d after a is known: b may still need them", m.Backlog("x"))
	}
	m.Graft(b, "x", 1, 3, answer(3, 6), t0)
	out := m.Ready()
	if m.Backlog("x") != 0 || len(out.Sends) != 0 || len(out.Resends) != 4 {
		t.Fatalf("after b grafted 3..6: backlog %d, sends %+v, resends %+v", m.Backlog("x"), out.Sends, out.Resends)
	}
}

// An event kept for a tentative peer that neither shows the origin nor
// grafts is let go after MaybeTimeout (NextDeadline says when), without
// declaring the peer slow: a link made while the origin's emitter waits
// learns of the origin only from events still to come.
func TestTentativeHoldsExpire(t *testing.T) {
	r := &rooms{full: map[Peer]bool{}, handler: 1 << 20}
	m := New[item](Config{Window: 4, Timeout: time.Minute, MaybeTimeout: time.Second, IdleTimeout: time.Hour, Rooms: r})
	m.AddPeer(a)
	m.PeerUp(a, 100, t0)
	for s := uint64(1); s <= 3; s++ {
		if d := m.Release("x", 1, s, nil, []Peer{a}, false, t0.Add(time.Duration(s)*time.Millisecond)); !d.Held {
			t.Fatalf("seq %d not held for the tentative peer", s)
		}
		m.Keep(item{s})
	}
	if at, ok := m.NextDeadline(); !ok || !at.Equal(t0.Add(time.Second+time.Millisecond)) {
		t.Fatalf("next deadline %v %v, want the first hold's expiry", at, ok)
	}
	m.Tick(t0.Add(time.Second + 2*time.Millisecond))
	if got := m.Backlog("x"); got != 1 {
		t.Fatalf("backlog %d after the first two expired, want 1", got)
	}
	m.Tick(t0.Add(2 * time.Second))
	if got := m.Backlog("x"); got != 0 || m.Slow(a) {
		t.Fatalf("backlog %d, slow %v: want all let go, the peer not slow", got, m.Slow(a))
	}
}
