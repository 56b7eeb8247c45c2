package plumtree

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

var t0 = time.Unix(1000, 0)

// marks is a Watermarks the tests set by hand: next[origin/boot].
type marks map[string]uint64

// giveUp is the GiveUp newTest configures.
const giveUp = time.Second

// Holding says a gap holds events when the test set "gap:origin/boot".
func (w marks) Holding(origin string, boot uint64) bool {
	_, ok := w[fmt.Sprint("gap:", origin, "/", boot)]
	return ok
}

func (w marks) Next(origin string, boot uint64) (uint64, bool) {
	if n, ok := w[fmt.Sprint(origin, "/", boot)]; ok {
		return n, true
	}
	return boot, true
}

// newTest is the machine of node "me" (boot 100) with peers to nodes a, b
// and c, all up: PeerIDs 0, 1, 2.
func newTest(t *testing.T, flood bool) (*Machine, marks) {
	t.Helper()
	return newTestReach(t, flood, 0)
}

// newTestReach is newTest with Config.Reach.
func newTestReach(t *testing.T, flood bool, reach uint64) (*Machine, marks) {
	t.Helper()
	w := marks{}
	m := New(Config{Self: "me", SelfBoot: 100, Flood: flood, GiveUp: giveUp, IdleTimeout: time.Hour, Reach: reach, Released: w})
	for i, node := range []string{"a", "b", "c"} {
		if p := m.AddPeer(); p != PeerID(i) {
			t.Fatalf("AddPeer gave %d, want %d", p, i)
		}
		m.PeerUp(PeerID(i), node, 1)
	}
	m.TakeDue()
	m.Round(t0) // the announcements of the peers coming up: nothing yet
	m.Ready()
	return m, w
}

// sends describes the messages of r as "to:KIND origin" strings, sorted.
func sends(r Ready) []string {
	var out []string
	for _, s := range r.Sends {
		switch msg := s.Msg.(type) {
		case *wire.IHave:
			for _, e := range msg.Entries {
				out = append(out, fmt.Sprintf("%d:IHAVE %s/%d/%d", s.To, e.Origin, e.Boot, e.Upto))
			}
		case *wire.Graft:
			out = append(out, fmt.Sprintf("%d:GRAFT %s/%d/%d", s.To, msg.Origin, msg.Boot, msg.From))
		case *wire.Prune:
			out = append(out, fmt.Sprintf("%d:PRUNE %s", s.To, msg.Origin))
		}
	}
	slices.Sort(out)
	return out
}

func want(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func ids(ps []PeerID) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprint(p))
	}
	return out
}

// This node's own events go to every peer until one prunes them; the
// pruned peer then gets notices, the others the events.
func TestEmitEagerUntilPruned(t *testing.T) {
	m, _ := newTest(t, false)
	want(t, "first emit", ids(m.Emit(100, t0)), []string{"0", "1", "2"})
	if m.TakeDue() {
		t.Fatal("notices due with every peer eager")
	}
	m.Prune(1, "me", t0)
	want(t, "after b pruned", ids(m.Emit(101, t0)), []string{"0", "2"})
	if !m.TakeDue() {
		t.Fatal("no notice due for the pruned peer")
	}
	m.Round(t0)
	want(t, "notice", sends(m.Ready()), []string{"1:IHAVE me/100/101"})
	m.Graft(1, wire.NewGraft("me", 100, 101, true), t0)
	rd := m.Ready()
	if len(rd.Resends) != 1 || rd.Resends[0] != (Resend{To: 1, Origin: "me", Boot: 100, From: 101, Upto: 101}) {
		t.Fatalf("resends %+v, want 101 to b", rd.Resends)
	}
	want(t, "after b grafted", ids(m.Emit(102, t0)), []string{"0", "1", "2"})
}

// Another origin's events are relayed only over peers that grafted them,
// never back to the peer they came from nor to a node on their path; a
// leaf (no peer grafted) relays nothing while every peer is up.
func TestReleaseFollowsGrafts(t *testing.T) {
	m, w := newTest(t, false)
	want(t, "leaf", ids(m.Release("x", 5, 5, 0, []string{"x", "a"}, t0)), nil)
	w["x/5"] = 6
	m.Graft(2, wire.NewGraft("x", 5, 6, true), t0)
	m.Graft(1, wire.NewGraft("x", 5, 6, true), t0)
	m.Ready()
	want(t, "grafted by b and c", ids(m.Release("x", 5, 6, 0, []string{"x", "a"}, t0)), []string{"1", "2"})
	want(t, "c on the path", ids(m.Release("x", 5, 7, 0, []string{"x", "c"}, t0)), []string{"1"})
	want(t, "from b", ids(m.Release("x", 5, 8, 1, []string{"x", "b"}, t0)), []string{"2"})
}

// A peer that is down gets every event in full, lazy or not: its buffer
// keeps them for when it is back. It gets no notice, and is re-announced
// every lazy origin when it is back.
func TestPeerDownGetsEventsInFull(t *testing.T) {
	m, _ := newTest(t, false)
	m.PeerDown(2)
	want(t, "leaf with c down", ids(m.Release("x", 5, 5, 0, []string{"x"}, t0)), []string{"2"})
	m.Round(t0)
	// Notices go to every lazy peer that is up, the one the event came from
	// included (the machine does not track who has what), but never to the
	// origin's own link.
	want(t, "notices while c is down", sends(m.Ready()), []string{"0:IHAVE x/5/5", "1:IHAVE x/5/5"})
	m.PeerUp(2, "c", 1)
	if !m.TakeDue() {
		t.Fatal("no round due after c came back")
	}
	m.Round(t0)
	want(t, "re-announced to c", sends(m.Ready()), []string{"2:IHAVE x/5/5"})
	want(t, "leaf again", ids(m.Release("x", 5, 6, 0, []string{"x"}, t0)), nil)
}

// A peer whose link never completed a handshake (a new neighbour being
// dialled) gets no relayed event, in full or by notice: it is not in the
// tree yet, and a blast would only fill and overflow its buffer. This
// node's own events still go to it, buffered, as on any link. Once up it is
// announced every relayed origin, and grafts what it lacks; down after
// that, it gets events in full like any peer that was connected.
func TestPeerNeverUpGetsNoRelayedEvent(t *testing.T) {
	m, w := newTest(t, false)
	d := m.AddPeer() // 3, dialling
	m.TakeDue()
	want(t, "relayed, d never up", ids(m.Release("x", 5, 5, 0, []string{"x"}, t0)), nil)
	w["x/5"] = 6
	want(t, "own events", ids(m.Emit(100, t0)), []string{"0", "1", "2", fmt.Sprint(d)})
	m.Round(t0)
	want(t, "notices while d is dialled", sends(m.Ready()), []string{"0:IHAVE x/5/5", "1:IHAVE x/5/5", "2:IHAVE x/5/5"})
	m.PeerUp(d, "d", 1)
	if !m.TakeDue() {
		t.Fatal("no round due after d came up")
	}
	m.Round(t0)
	want(t, "announced to d", sends(m.Ready()), []string{"3:IHAVE me/100/100", "3:IHAVE x/5/5"})
	m.Graft(d, wire.NewGraft("x", 5, 5, true), t0)
	if rd := m.Ready(); len(rd.Resends) != 1 || rd.Resends[0].To != d {
		t.Fatalf("d's graft answered with %+v", rd.Resends)
	}
	m.PeerDown(d)
	want(t, "d down after it was up", ids(m.Release("x", 5, 6, 0, []string{"x"}, t0)), []string{"3"})
}

// An event emitted while the node has no link at all goes nowhere; the
// first peer to come up is told how far this node's events go, in a flood
// too, and grafts them. Otherwise, with no event after it, nobody would
// ever hear of it.
func TestAloneEmitIsAnnounced(t *testing.T) {
	for _, flood := range []bool{false, true} {
		t.Run(fmt.Sprint("flood=", flood), func(t *testing.T) {
			m := New(Config{Self: "me", SelfBoot: 100, Flood: flood, GiveUp: giveUp, IdleTimeout: time.Hour, Released: marks{}})
			want(t, "alone", ids(m.Emit(100, t0)), nil)
			want(t, "alone", ids(m.Emit(101, t0)), nil)
			m.Round(t0)
			want(t, "no peer to tell", sends(m.Ready()), nil)
			p := m.AddPeer()
			m.PeerUp(p, "a", 1)
			if !m.TakeDue() {
				t.Fatal("no round due after a came up")
			}
			m.Round(t0)
			want(t, "announced to a", sends(m.Ready()), []string{"0:IHAVE me/100/101"})
			m.Graft(p, wire.NewGraft("me", 100, 100, true), t0)
			if rd := m.Ready(); len(rd.Resends) != 1 || rd.Resends[0] != (Resend{To: p, Origin: "me", Boot: 100, From: 100, Upto: 101}) {
				t.Fatalf("a's graft answered with %+v, want 100-101", rd.Resends)
			}
			m.Round(t0)
			want(t, "announced once", sends(m.Ready()), nil)
		})
	}
}

// The announcement of this node's own events names the last one emitted
// when the peer came up, not those emitted since: flow control may hold
// them for the peer's credit, and a notice of them made the peer graft
// what was on its way, around its own back-pressure.
func TestOwnAnnouncementStopsAtPeerUp(t *testing.T) {
	m, _ := newTest(t, false)
	for s := uint64(100); s <= 105; s++ {
		m.Emit(s, t0)
	}
	m.PeerDown(1)
	m.PeerUp(1, "b", 1)
	for s := uint64(106); s <= 110; s++ {
		m.Emit(s, t0) // held for b by flow control, say
	}
	m.Round(t0)
	want(t, "announced to b", sends(m.Ready()), []string{"1:IHAVE me/100/105"})
}

// A remote that restarted (a new boot in its handshake) has forgotten the
// tree: its marks go, and what it had grafted is lazy again.
func TestRestartedPeerForgetsItsMarks(t *testing.T) {
	m, w := newTest(t, false)
	w["x/5"] = 6
	m.Graft(1, wire.NewGraft("x", 5, 6, true), t0)
	m.Prune(2, "me", t0)
	m.PeerUp(1, "b", 1) // a reconnect of the same boot keeps them
	want(t, "reconnect", ids(m.Release("x", 5, 6, 0, nil, t0)), []string{"1"})
	m.PeerUp(1, "b", 2)
	m.PeerUp(2, "c", 2)
	want(t, "restarted b", ids(m.Release("x", 5, 7, 0, nil, t0)), nil)
	want(t, "restarted c", ids(m.Emit(100, t0)), []string{"0", "1", "2"})
}

// A duplicate prunes its peer once, then at most every pruneRetry; never
// the provider of the origin's last fresh event; the origin's own link is
// never pruned (the provider is, in its place); nothing in flood mode.
func TestDuplicatePrunes(t *testing.T) {
	m, _ := newTest(t, false)
	m.Duplicate("x", 0, t0)
	want(t, "first duplicate", sends(m.Ready()), []string{"0:PRUNE x"})
	m.Duplicate("x", 0, t0.Add(pruneRetry/2))
	want(t, "within pruneRetry", sends(m.Ready()), nil)
	m.Duplicate("x", 0, t0.Add(pruneRetry))
	want(t, "after pruneRetry", sends(m.Ready()), []string{"0:PRUNE x"})
	m.Fresh("y", 1, t0)
	m.Duplicate("y", 1, t0)
	want(t, "the provider", sends(m.Ready()), nil)
	m.Fresh("a", 2, t0) // a's event came first through c
	m.Duplicate("a", 0, t0)
	want(t, "over a's own link", sends(m.Ready()), []string{"2:PRUNE a"})
	if m.Provider("a") != 0 {
		t.Fatalf("provider of a is %d, want its own link", m.Provider("a"))
	}
	f, _ := newTest(t, true)
	f.Duplicate("x", 0, t0)
	f.Prune(1, "me", t0)
	want(t, "flood", sends(f.Ready()), nil)
	want(t, "flood ignores PRUNE", ids(f.Emit(100, t0)), []string{"0", "1", "2"})
}

// A noticed event is grafted after the grace, from the announcers in
// turn while it stays missing, at most every graftRetry, and given up
// after GiveUp twice without progress; a notice of what was released, or of our own events, is
// ignored.
func TestNoticeGrafted(t *testing.T) {
	m, w := newTest(t, false)
	w["x/5"] = 6 // something of x/5 was released: the grace applies
	m.IHave(0, wire.NewIHave([]wire.Notice{{Origin: "x", Boot: 5, Upto: 9}, {Origin: "me", Boot: 100, Upto: 200}}), t0)
	m.IHave(1, wire.NewIHave([]wire.Notice{{Origin: "x", Boot: 5, Upto: 9}, {Origin: "y", Boot: 7, Upto: 4000}}), t0)
	if !m.TakeDue() {
		t.Fatal("nothing due after notices of missing events")
	}
	m.Round(t0.Add(graftGrace - time.Millisecond))
	// y/7: nothing of it released here, no eager path: grafted at once.
	want(t, "before the grace", sends(m.Ready()), []string{"1:GRAFT y/7/7"})
	m.Round(t0.Add(graftGrace))
	want(t, "after the grace", sends(m.Ready()), []string{"0:GRAFT x/5/6"})
	w["y/7"] = 4001 // y/7 answered
	w["x/5"] = 8    // partly answered
	m.Round(t0.Add(graftGrace + graftRetry/2))
	want(t, "within graftRetry", sends(m.Ready()), nil)
	m.Round(t0.Add(graftGrace + graftRetry))
	want(t, "the next announcer", sends(m.Ready()), []string{"1:GRAFT x/5/8"})
	m.PeerDown(0)
	m.Round(t0.Add(graftGrace + 2*graftRetry))
	want(t, "a is down: b again", sends(m.Ready()), []string{"1:GRAFT x/5/8"})
	if !m.Round(t0.Add(graftGrace + 3*graftRetry)) {
		t.Fatal("no round wanted while x/5 is missing")
	}
	m.Ready()
	// Past GiveUp, but the watermark moved (6, then 8): the wait starts
	// afresh. Then GiveUp without progress: the grafts go on (stalled);
	// after another, the entry is given up, once minAsks grafts have gone
	// since the watermark moved. Rounds this far apart are a node starved
	// of CPU: two GiveUps pass in three grafts, and it grafts on.
	at := t0.Add(time.Second + graftRetry)
	m.Round(at)
	want(t, "progress: grafting on", sends(m.Ready()), []string{"1:GRAFT x/5/8"})
	at = at.Add(time.Second + graftRetry)
	m.Round(at)
	want(t, "no progress for GiveUp: grafting on, stalled", sends(m.Ready()), []string{"1:GRAFT x/5/8"})
	for asked := 2; asked < minAsks; asked++ {
		at = at.Add(time.Second + graftRetry)
		if !m.Round(at) {
			t.Fatalf("given up after %d grafts without progress, want %d", asked, minAsks)
		}
		want(t, "GiveUp twice, too few grafts: grafting on", sends(m.Ready()), []string{"1:GRAFT x/5/8"})
	}
	if m.Round(at.Add(time.Second + graftRetry)) {
		t.Fatal("still grafting after GiveUp twice and minAsks grafts without progress")
	}
	want(t, "given up", sends(m.Ready()), nil)
	w["x/5"] = 10
	m.IHave(0, wire.NewIHave([]wire.Notice{{Origin: "x", Boot: 5, Upto: 9}}), t0)
	if m.TakeDue() {
		t.Fatal("a notice of released events is missing")
	}
}

// RemovePeer forgets the peer's marks and its announcements, and its ID is
// handed out again, unmarked.
func TestRemovePeerReusesID(t *testing.T) {
	m, w := newTest(t, false)
	w["x/5"] = 6
	m.Graft(1, wire.NewGraft("x", 5, 6, true), t0)
	m.IHave(1, wire.NewIHave([]wire.Notice{{Origin: "z", Boot: 3, Upto: 9}}), t0)
	m.Ready()
	m.RemovePeer(1)
	m.Round(t0)
	want(t, "no announcer left", sends(m.Ready()), nil)
	if p := m.AddPeer(); p != 1 {
		t.Fatalf("AddPeer gave %d, want the freed 1", p)
	}
	m.PeerUp(1, "d", 1)
	want(t, "the new peer 1 is unmarked", ids(m.Release("x", 5, 6, 0, nil, t0)), nil)
}

// Counts counts (origin, peer) pairs over live peers, leaving out the
// origin's own link.
func TestCounts(t *testing.T) {
	m, w := newTest(t, false)
	m.Emit(100, t0)                  // me: eager on a, b, c
	m.Release("a", 5, 5, 0, nil, t0) // a: lazy on b, c (a's own link left out)
	w["a/5"] = 6
	m.Graft(2, wire.NewGraft("a", 5, 5, true), t0)
	if e, l := m.Counts(); e != 4 || l != 1 {
		t.Fatalf("counts %d eager, %d lazy; want 4, 1", e, l)
	}
}

// behindProvider returns a machine (Config.Reach reach) that has x/5
// from its provider a (peer 0), released up to 6, and a notice from b
// (peer 1) of x/5 up to upto.
func behindProvider(t *testing.T, reach, upto uint64) (*Machine, marks) {
	t.Helper()
	m, w := newTestReach(t, false, reach)
	m.Fresh("x", 0, t0)
	m.Release("x", 5, 5, 0, nil, t0)
	w["x/5"] = 6
	m.IHave(1, wire.NewIHave([]wire.Notice{{Origin: "x", Boot: 5, Upto: upto}}), t0)
	m.Ready()
	return m, w
}

// grafts returns the GRAFTs of r.
func grafts(r Ready) []*wire.Graft {
	var out []*wire.Graft
	for _, s := range r.Sends {
		if g, ok := s.Msg.(*wire.Graft); ok {
			out = append(out, g)
		}
	}
	return out
}

// A GRAFT says whether an eager path still brings the origin's events
// (the answerer then sends the whole range or nothing, never a tail that
// would open a gap ahead of that path): not stalled while the provider is
// up; stalled once the watermark has not moved for GiveUp, once the
// provider is down, and for a boot of which nothing came yet.
func TestGraftSaysWhetherStalled(t *testing.T) {
	m, w := behindProvider(t, 0, 9)
	m.Round(t0.Add(graftGrace))
	if g := grafts(m.Ready()); len(g) != 0 {
		t.Fatalf("grafts %+v within pathPatience, want none: a brings x", g)
	}
	m.Round(t0.Add(pathPatience))
	g := grafts(m.Ready())
	if len(g) != 1 || g[0].Stalled || g[0].From != 6 {
		t.Fatalf("grafts %+v, want one from 6, not stalled: a still brings x", g)
	}
	m.Round(t0.Add(pathPatience + graftRetry))
	if g := grafts(m.Ready()); len(g) != 1 || g[0].Stalled {
		t.Fatalf("grafts %+v, want one, not stalled: a is up, and GiveUp has not passed", g)
	}
	m.Round(t0.Add(giveUp + graftRetry))
	if g := grafts(m.Ready()); len(g) != 1 || !g[0].Stalled {
		t.Fatalf("grafts %+v, want one, stalled: the watermark has not moved for GiveUp", g)
	}

	m.Fresh("z", 0, t0)
	m.Release("z", 3, 3, 0, nil, t0)
	w["z/3"] = 4
	m.IHave(1, wire.NewIHave([]wire.Notice{{Origin: "z", Boot: 3, Upto: 9}}), t0)
	m.PeerDown(0)
	m.Round(t0.Add(time.Second + 2*graftRetry))
	var z *wire.Graft
	for _, g := range grafts(m.Ready()) {
		if g.Origin == "z" {
			z = g
		}
	}
	if z == nil || !z.Stalled {
		t.Fatalf("z's graft %+v, want one, stalled: a, the provider, is down", z)
	}

	m.IHave(2, wire.NewIHave([]wire.Notice{{Origin: "y", Boot: 7, Upto: 9}}), t0)
	m.Round(t0.Add(time.Second + 2*graftRetry))
	if g := grafts(m.Ready()); len(g) != 1 || !g[0].Stalled || g[0].Origin != "y" || g[0].From != 7 {
		t.Fatalf("grafts %+v, want y from 7, stalled: nothing of y/7 came yet", g)
	}
}

// A noticed event is not grafted while the path from the provider looks
// whole and its events keep coming, however far behind the announcer:
// back-pressure paces that path, and what a graft would bring is on its
// way. It is grafted a grace after the watermark stops behind a gap (the
// orderer holds what came after it), and pathPatience after it stops with
// nothing held.
func TestGraftWaitsForAWholePath(t *testing.T) {
	m, w := behindProvider(t, 0, 4000)
	at := t0
	for i := range 3 * pathPatience / RoundInterval {
		at = at.Add(RoundInterval)
		w["x/5"] = 7 + uint64(i) // a's events keep coming
		m.Round(at)
		if g := grafts(m.Ready()); len(g) != 0 {
			t.Fatalf("the watermark moves: grafts %+v", g)
		}
	}
	w["gap:x/5"] = 1
	m.Round(at.Add(graftGrace - time.Millisecond))
	if g := grafts(m.Ready()); len(g) != 0 {
		t.Fatalf("stopped behind a gap, within the grace: grafts %+v", g)
	}
	m.Round(at.Add(graftGrace))
	if g := grafts(m.Ready()); len(g) != 1 || g[0].From != w["x/5"] || g[0].Stalled {
		t.Fatalf("grafts %+v, want one from %d a grace after the watermark stopped behind a gap", g, w["x/5"])
	}

	w["x/5"] = 4001 // answered: x is caught up
	delete(w, "gap:x/5")
	m.Fresh("y", 0, at)
	m.Release("y", 3, 3, 0, nil, at)
	w["y/3"] = 4
	m.IHave(1, wire.NewIHave([]wire.Notice{{Origin: "y", Boot: 3, Upto: 4000}}), at)
	m.Ready()
	m.Round(at.Add(pathPatience - time.Millisecond))
	if g := grafts(m.Ready()); len(g) != 0 {
		t.Fatalf("stopped, nothing held, within pathPatience: grafts %+v", g)
	}
	m.Round(at.Add(pathPatience))
	if g := grafts(m.Ready()); len(g) != 1 || g[0].Origin != "y" || g[0].From != 4 {
		t.Fatalf("grafts %+v, want y's from 4 once its watermark stopped for pathPatience", g)
	}
}

// A node half its orderer's reach behind a notice (noticed for the grace)
// grafts even while its path moves: a new link's live events would land
// beyond what its orderer holds, and the rest would be skipped. Less far
// behind, the moving path is waited for.
func TestGraftWhenFarBehind(t *testing.T) {
	m, w := behindProvider(t, 1000, 504)
	at := t0
	step := func() []*wire.Graft {
		at = at.Add(RoundInterval)
		w["x/5"]++ // a's events keep coming
		m.Round(at)
		return grafts(m.Ready())
	}
	for range 2 * graftGrace / RoundInterval {
		if g := step(); len(g) != 0 {
			t.Fatalf("grafts %+v less than half the reach behind, on a moving path", g)
		}
	}
	// The first notice, still unmet, is older than the grace: the next
	// round grafts.
	m.IHave(1, wire.NewIHave([]wire.Notice{{Origin: "x", Boot: 5, Upto: w["x/5"] + 600}}), at)
	if g := step(); len(g) != 1 || g[0].From != w["x/5"] {
		t.Fatalf("grafts %+v, want one from %d: 600 behind with a reach of 1000", g, w["x/5"])
	}
}

// A fresh event over a peer this node has just pruned was sent before the
// PRUNE arrived: that peer stops, so it does not become the provider, and
// the duplicates that the remaining eager path then brings do not prune
// it. (Taking the pruned peer as provider pruned both paths, and the node
// got nothing more of the origin.)
func TestFreshOverPrunedPeerKeepsProvider(t *testing.T) {
	m, _ := newTest(t, false)
	m.Fresh("x", 0, t0)     // a brings x's events
	m.Duplicate("x", 1, t0) // so does b: pruned
	want(t, "b pruned", sends(m.Ready()), []string{"1:PRUNE x"})
	m.Fresh("x", 1, t0) // b had sent this one before the PRUNE got there
	if p := m.Provider("x"); p != 0 {
		t.Fatalf("provider %d, want a (0): b stops once it reads the PRUNE", p)
	}
	m.Duplicate("x", 0, t0) // a's copy of it
	want(t, "a, the path left, is not pruned", sends(m.Ready()), nil)
}
