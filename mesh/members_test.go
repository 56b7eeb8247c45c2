package mesh_test

import (
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/internal/meshopt"
	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

func aliveMembers(n *mesh.Node) int {
	c := 0
	for _, m := range n.Members() {
		if m.State == "alive" {
			c++
		}
	}
	return c
}

func memberState(n *mesh.Node, id string) string {
	for _, m := range n.Members() {
		if m.Name == id {
			return m.State
		}
	}
	return ""
}

// Five nodes on loopback join through one seed: each lists 5 alive members
// and has 4 connected links (NewWith waits for those), and every event
// reaches every node once, in order.
func TestJoinFiveOverLoopback(t *testing.T) {
	c := testcluster.NewWith(t, 5, testcluster.Options{Network: testcluster.TCP, Join: true})
	for i := range 5 {
		eventually(t, 10*time.Second, "5 alive members", func() bool { return aliveMembers(c.Node(i)) == 5 })
		ms := c.Node(i).Members()
		for _, m := range ms {
			if m.RelayAddr == "" || !strings.HasPrefix(m.Addr, "127.0.0.1:") {
				t.Fatalf("node %d lists member %+v", i, m)
			}
		}
		if n := len(c.Node(i).Peers()); n != 4 {
			t.Fatalf("node %d has %d links, want 4 (one per pair)", i, n)
		}
	}
	everyoneEmits(t, c, 50)
}

func TestJoinInMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 6, testcluster.Options{Join: true})
		for i := range 6 {
			if n := len(c.Node(i).Peers()); n != 5 {
				t.Fatalf("node %d has %d links, want 5", i, n)
			}
		}
		everyoneEmits(t, c, 50)
	})
}

// A member that leaves is seen as left and its link stops; started again
// with the same NodeID it is linked again and receives what it missed.
func TestMemberLeavesAndComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true})
		c.Stop(2)
		eventually(t, time.Minute, "node 2 seen as left", func() bool { return memberState(c.Node(0), c.ID(2)) == "left" })
		eventually(t, time.Minute, "links to node 2 down", func() bool {
			for _, p := range c.Node(0).Peers() {
				if p.ID() == c.ID(2) && p.State() == mesh.Connected {
					return false
				}
			}
			return true
		})
		for i := range 10 {
			c.Emit(0, "missed", i)
		}
		c.Restart(2)
		c.WaitConnected(t)
		c.WaitFromOrigin(t, 2, 0, 10)
		c.Emit(2, "back", 1)
		c.WaitFromOrigin(t, 0, 2, 1)
		c.WaitFromOrigin(t, 1, 2, 1)
	})
}

// A crashed member is seen as dead (not left).
func TestCrashedMemberSeenDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true})
		c.Kill(1)
		eventually(t, time.Minute, "node 1 seen as dead", func() bool {
			s := memberState(c.Node(0), c.ID(1))
			return s == "dead"
		})
	})
}

// A node of another channel joining the same seed is kept out: not listed
// alive, never linked, its events never delivered.
func TestOtherChannelKeptOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gossip := membership.NewMockNetwork()
		tn := newTestNet(t)
		mk := func(id, channel string) *mesh.Node {
			n := tn.server(id, func(c *mesh.Config) {
				c.Channel = channel
				meshopt.Set(c, meshopt.Options{GossipTransport: gossip.Transport(id), FastGossip: true})
			})
			return n
		}
		a, b := mk("a", "blue"), mk("b", "blue")
		if _, err := b.Join(a.GossipAddr()); err != nil {
			t.Fatal(err)
		}
		stranger := mk("z", "green")
		got := listen(a, "*")
		_, _ = stranger.Join(a.GossipAddr()) // may fail, or succeed and be ignored
		if err := stranger.Emit("event", "x"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second) // virtual: gossip has converged many times over
		for _, m := range a.Members() {
			if m.Name == "z" && m.State == "alive" {
				t.Fatal("a node of another channel is listed alive")
			}
		}
		for _, p := range append(a.Peers(), b.Peers()...) {
			if p.ID() == "z" {
				t.Fatal("a node of another channel got linked")
			}
		}
		if len(got.all()) != 0 {
			t.Fatal("an event of another channel was delivered")
		}
		if aliveMembers(a) != 2 {
			t.Fatalf("a lists %d alive members, want 2", aliveMembers(a))
		}
	})
}

// A member of the channel that speaks another protocol version (a cluster
// half upgraded) is never linked, and said so once: an error line and a
// Rejected PeerEvent with ErrVersionMismatch, not a silent split.
func TestOtherVersionIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gossip := membership.NewMockNetwork()
		tn := newTestNet(t)
		a := tn.server("a", func(c *mesh.Config) {
			c.Channel = "blue"
			meshopt.Set(c, meshopt.Options{GossipTransport: gossip.Transport("a"), FastGossip: true})
		})
		pl := watchPeers(a)
		other, err := membership.New(membership.Config{NodeID: "z", Channel: "blue", Transport: gossip.Transport("z"),
			Meta: membership.Meta{RelayAddr: "z:7947", Version: 99}, ProbeFast: true})
		if err != nil {
			t.Fatal(err)
		}
		defer other.Shutdown()
		if _, err := other.Join(a.GossipAddr()); err != nil {
			t.Fatal(err)
		}
		reports := func() int { return pl.rejected("z", mesh.ErrVersionMismatch) }
		eventually(t, time.Minute, "the other version reported", func() bool { return reports() > 0 })
		time.Sleep(30 * time.Second) // virtual: gossip has gone round many times
		if k := reports(); k != 1 {
			t.Errorf("the other version reported %d times, want once", k)
		}
		if len(a.Peers()) != 0 {
			t.Errorf("a has %d links, want none", len(a.Peers()))
		}
	})
}

// With a GossipKey, a node without the key cannot join and is not listed.
func TestGossipKeyKeepsOutsidersOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gossip := membership.NewMockNetwork()
		tn := newTestNet(t)
		key := []byte("0123456789abcdef")
		mk := func(id string, key []byte) *mesh.Node {
			return tn.server(id, func(c *mesh.Config) {
				meshopt.Set(c, meshopt.Options{GossipTransport: gossip.Transport(id), FastGossip: true})
				c.GossipKey = key
			})
		}
		a, b := mk("a", key), mk("b", key)
		if _, err := b.Join(a.GossipAddr()); err != nil {
			t.Fatalf("a node with the key could not join: %v", err)
		}
		outsider := mk("z", nil)
		if n, err := outsider.Join(a.GossipAddr()); err == nil && n > 0 {
			t.Fatalf("a node without the key joined (%d seeds answered)", n)
		}
		time.Sleep(10 * time.Second)
		if s := memberState(a, "z"); s == "alive" {
			t.Fatal("the outsider is listed alive")
		}
		eventually(t, time.Minute, "the keyed pair linked", connected(a, 1))
	})
}

func TestJoinBadSeeds(t *testing.T) {
	cfg := mesh.Config{GossipAddr: "127.0.0.1:0", Logger: testLogger(t, "seeds")}
	meshopt.Set(&cfg, meshopt.Options{FastGossip: true})
	n, err := mesh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Join("nope"); !errors.Is(err, mesh.ErrBadAddress) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("malformed seed: %v", err)
	}
	start := time.Now()
	_, err = n.Join("127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable seed: %v, want an error naming it", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("unreachable seed took %v", d)
	}
	if n.GossipAddr() == "" || strings.HasSuffix(n.GossipAddr(), ":0") {
		t.Fatalf("GossipAddr() = %q, want the bound port", n.GossipAddr())
	}
}

// Twenty nodes in one process converge: every pair linked.
func TestTwentyNodesConverge(t *testing.T) {
	if testing.Short() {
		t.Skip("20-node convergence in -short mode")
	}
	start := time.Now()
	c := testcluster.NewWith(t, 20, testcluster.Options{Network: testcluster.TCP, Join: true, WaitTimeout: 60 * time.Second})
	t.Logf("20 nodes joined and fully linked in %v", time.Since(start))
	for i := range 20 {
		if n := len(c.Node(i).Peers()); n != 19 {
			t.Fatalf("node %d has %d links", i, n)
		}
	}
}
