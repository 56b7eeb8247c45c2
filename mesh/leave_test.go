package mesh_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

// peerOf returns n's links to id.
func peersTo(n *mesh.Node, id string) []*mesh.Peer {
	var out []*mesh.Peer
	for _, p := range n.Peers() {
		if p.ID() == id {
			out = append(out, p)
		}
	}
	return out
}

func bufferedFor(n *mesh.Node, id string) int {
	b := 0
	for _, p := range peersTo(n, id) {
		b += p.Buffered()
	}
	return b
}

// leaveBound is how long the others may take to release a member that
// left: a few gossip rounds (ProbeFast), nowhere near BufferTimeout.
const leaveBound = 5 * time.Second

// A member that leaves gracefully is released everywhere at once: its links
// are gone from Peers(), what was buffered for it is freed, counted as
// Released (not a loss) and reported as Expired with ErrPeerLeft.
func TestLeaveReleasesPeerAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true})
		gone := c.ID(2)
		pl0, pl1 := watchPeers(c.Node(0)), watchPeers(c.Node(1))
		// Cut the relay links to node 2 (gossip still flows) so that node 0
		// holds events for it when it leaves.
		c.Net().Partition([]string{c.Host(0), c.Host(1)}, []string{c.Host(2)})
		eventually(t, time.Minute, "links to node 2 down", func() bool {
			for _, p := range peersTo(c.Node(0), gone) {
				if p.State() == mesh.Connected {
					return false
				}
			}
			return true
		})
		for i := range 10 {
			c.Emit(0, "held", i)
		}
		eventually(t, time.Minute, "10 events buffered for node 2", func() bool { return bufferedFor(c.Node(0), gone) == 10 })

		start := time.Now()
		c.Stop(2)
		for i, pl := range []*peerLog{pl0, pl1} {
			n := c.Node(i)
			eventually(t, leaveBound, "node 2 gone from Peers()", func() bool { return len(peersTo(n, gone)) == 0 })
			eventually(t, time.Second, "the release reported", func() bool {
				pl.mu.Lock()
				defer pl.mu.Unlock()
				for _, e := range pl.evs {
					if e.Kind == mesh.Expired && errors.Is(e.Err, mesh.ErrPeerLeft) && e.PeerID == gone {
						return true
					}
				}
				return false
			})
			// The router forgot it too: one link left, to the other node.
			if s := n.Stats(); s.Peers != 1 || s.Expired != 0 {
				t.Errorf("node %d after the leave: %d links, expired %d", i, s.Peers, s.Expired)
			}
		}
		t.Logf("released within %v (virtual)", time.Since(start))
		if s := c.Node(0).Stats(); s.Released != 10 || pl0.dropped(mesh.Expired) != 10 {
			t.Errorf("node 0 released %d events, reported %d, want 10", s.Released, pl0.dropped(mesh.Expired))
		}
		if m := memberState(c.Node(0), gone); m != "left" {
			t.Errorf("node 2 listed as %q, want left", m)
		}
		// Nobody redials it or waits for it: the others still talk.
		c.Net().Heal()
		c.Emit(1, "after", 1)
		c.WaitFromOrigin(t, 0, 1, 1)
	})
}

// A member that fails (no leave) keeps its promise: its links stay, buffer
// for it, and when it comes back under the same NodeID the links redial at
// once despite a long back-off, and it gets what it missed exactly once.
func TestFailedMemberKeptThenBackAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true})
		back := c.ID(2)
		c.Kill(2)
		eventually(t, time.Minute, "node 2 seen dead", func() bool { return memberState(c.Node(0), back) == "dead" })
		for i := range 5 {
			c.Emit(0, "missed", i)
		}
		time.Sleep(3 * time.Minute) // the redial back-off reaches its 30s ceiling
		for i := range 2 {
			if len(peersTo(c.Node(i), back)) != 1 {
				t.Fatalf("node %d dropped the link to a failed member", i)
			}
		}
		if b := bufferedFor(c.Node(0), back); b != 5 {
			t.Fatalf("node 0 holds %d events for the failed member, want 5", b)
		}
		if s := c.Node(0).Stats(); s.Released != 0 || s.Expired != 0 {
			t.Fatalf("a failure released %d, expired %d", s.Released, s.Expired)
		}

		c.Restart(2)
		start := time.Now()
		// node 0 and 1 dial node 2 (lower NodeIDs): seen alive, redialled.
		c.WaitConnected(t)
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("linked again after %v, want well under the 30s back-off", d)
		}
		c.WaitFromOrigin(t, 2, 0, 5)
		c.Emit(2, "back", 1)
		c.WaitFromOrigin(t, 0, 2, 1)
		if v := c.Recorder(2).Violations(); len(v) > 0 {
			t.Fatalf("node 2: %v", v)
		}
		if n := c.Recorder(2).FromOrigin(c.ID(0)); n != 5 {
			t.Fatalf("node 2 got %d of node 0's events, want 5 exactly", n)
		}
	})
}

// A member that left and starts again under the same NodeID is the same
// peer: linked again (one link per pair, no ghost), and events flow both
// ways exactly once, in order.
func TestRejoinAfterLeaveSameNodeID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true, KeepEvents: true})
		id := c.ID(1) // dialled by node 0, dials node 2
		c.Stop(1)
		for _, i := range []int{0, 2} {
			eventually(t, leaveBound, "node 1 released", func() bool { return len(peersTo(c.Node(i), id)) == 0 })
		}
		c.Restart(1)
		c.WaitConnected(t)
		for _, i := range []int{0, 2} {
			if n := len(peersTo(c.Node(i), id)); n != 1 {
				t.Fatalf("node %d has %d links to the rejoined node, want 1", i, n)
			}
		}
		for k := range 20 {
			c.Emit(0, "a", k)
			c.Emit(1, "b", k)
			c.Emit(2, "c", k)
		}
		c.WaitFromOrigin(t, 1, 0, 20)
		c.WaitFromOrigin(t, 1, 2, 20)
		c.WaitFromOrigin(t, 0, 1, 20)
		c.WaitFromOrigin(t, 2, 1, 20)
		for i := range 3 {
			if v := c.Recorder(i).Violations(); len(v) > 0 {
				t.Fatalf("node %d: %v", i, v)
			}
		}
		for _, i := range []int{0, 2} {
			var got []int64
			for _, e := range c.Recorder(i).Events() {
				if e.Origin == id {
					got = append(got, e.Args[0].(int64))
				}
			}
			if len(got) != 20 {
				t.Fatalf("node %d got %d events from the rejoined node, want 20", i, len(got))
			}
			for k, v := range got {
				if v != int64(k) {
					t.Fatalf("node %d got the rejoined node's events as %v", i, got)
				}
			}
		}
	})
}

// A node that closes waits for its peers to acknowledge its last events,
// so that they are delivered, not counted lost.
func TestCloseDeliversLastEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true})
		for k := range 50 {
			c.Emit(2, "last", k)
		}
		node2 := c.Node(2)
		c.Stop(2)
		if s := node2.Stats(); s.Expired != 0 {
			t.Errorf("closing node counted %d events unacknowledged", s.Expired)
		}
		c.WaitFromOrigin(t, 0, 2, 50)
		c.WaitFromOrigin(t, 1, 2, 50)
	})
}

// A node that closes while a peer is unreachable counts its own events that
// peer never acknowledged as lost for it, reports them (Expired, ErrClosed),
// and counts nothing for the peer that acknowledged everything.
func TestCloseCountsOwnUnacknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.New(t, 3)
		n0 := c.Node(0)
		pl := watchPeers(n0)
		c.Net().Partition([]string{c.Host(0), c.Host(1)}, []string{c.Host(2)})
		eventually(t, time.Minute, "node 0's link to node 2 down", func() bool {
			for _, p := range peersTo(n0, c.ID(2)) {
				if p.State() == mesh.Connected {
					return false
				}
			}
			return true
		})
		for k := range 5 {
			c.Emit(0, "own", k)
		}
		c.Stop(0)
		if s := n0.Stats(); s.Expired != 5 {
			t.Fatalf("closing node counted %d own events lost, want 5", s.Expired)
		}
		var got []mesh.PeerEvent
		pl.mu.Lock()
		for _, e := range pl.evs {
			if e.Kind == mesh.Expired {
				got = append(got, e)
			}
		}
		pl.mu.Unlock()
		if len(got) != 1 || got[0].PeerID != c.ID(2) || got[0].Dropped != 5 || !errors.Is(got[0].Err, mesh.ErrClosed) {
			t.Fatalf("Expired reports at close: %+v, want one for node 2 with 5 and ErrClosed", got)
		}
		c.WaitFromOrigin(t, 1, 0, 5) // the reachable peer got them all
	})
}

// The same over loopback TCP and real gossip: a node that closes is gone
// from the others' Peers() within seconds, not BufferTimeout.
func TestLeaveReleasesPeerOverLoopback(t *testing.T) {
	c := testcluster.NewWith(t, 3, testcluster.Options{Network: testcluster.TCP, Join: true})
	gone := c.ID(1)
	c.Emit(1, "last", 1)
	start := time.Now()
	c.Stop(1)
	for _, i := range []int{0, 2} {
		eventually(t, leaveBound, "node 1 gone from Peers()", func() bool { return len(peersTo(c.Node(i), gone)) == 0 })
		c.WaitFromOrigin(t, i, 1, 1)
	}
	t.Logf("released everywhere %v after Close began", time.Since(start))
	c.Emit(0, "after", 1)
	c.WaitFromOrigin(t, 2, 0, 1)
}

// Once a member is released for leaving, the incarnation that left is
// refused if it redials before it has closed its links (no ghost link); the
// same NodeID restarted (a new boot) is accepted and its events flow.
func TestLeftIncarnationRefusedRestartAccepted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		b := tn.server("b")
		a := tn.node("a")
		plA := watchPeers(a)
		if _, err := a.Connect("b:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "a linked to b", connected(b, 1))

		mesh.ReleaseLeft(b, "a")
		eventually(t, time.Minute, "a's redial refused", func() bool {
			plA.mu.Lock()
			defer plA.mu.Unlock()
			for _, e := range plA.evs {
				if e.Kind == mesh.Rejected && e.Err != nil && strings.Contains(e.Err.Error(), "left the cluster") {
					return true
				}
			}
			return false
		})
		time.Sleep(10 * time.Second) // a keeps redialling, refused each time
		if n := len(peersTo(b, "a")); n != 0 {
			t.Fatalf("b took %d links from the incarnation that left", n)
		}
		a.Close()

		a2 := tn.node("a") // the same NodeID, restarted: a new boot
		got := listen(b, "*")
		if _, err := a2.Connect("b:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the restarted a linked to b", connected(b, 1))
		if err := a2.Emit("hello", 1); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "its event delivered", func() bool { return len(got.all()) == 1 })
	})
}
