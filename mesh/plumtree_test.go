package mesh_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

// totals sums the Stats of every running node.
func totals(c *testcluster.Cluster) mesh.Stats {
	var s mesh.Stats
	for i := range c.N() {
		if c.Alive(i) {
			s = s.Add(c.Node(i).Stats())
		}
	}
	return s
}

// emitRounds has each of the emitters emit k events, concurrently, and
// waits until every node has all of them, exactly once and in order.
func emitRounds(t *testing.T, c *testcluster.Cluster, emitters []int, k int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, i := range emitters {
		wg.Go(func() {
			for j := range k {
				c.Emit(i, "tree", i, j)
			}
		})
	}
	wg.Wait()
	c.WaitAll(t)
}

// steadyRedundancy warms the tree up, then measures event frames received
// per delivery over a second phase.
func steadyRedundancy(t *testing.T, c *testcluster.Cluster, emitters []int, warm, steady int) (float64, mesh.Stats) {
	t.Helper()
	emitRounds(t, c, emitters, warm)
	before := totals(c)
	emitRounds(t, c, emitters, steady)
	d := totals(c).Sub(before)
	return d.Redundancy(), d
}

func TestTreeRedundancy(t *testing.T) {
	all := func(n int) []int {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	cases := []struct {
		name     string
		n        int
		topo     testcluster.Topology
		emitters []int
	}{
		{"full-mesh-5", 5, testcluster.FullMesh, all(5)},
		{"full-mesh-20", 20, testcluster.FullMesh, []int{0, 7, 13, 19}},
		{"random-cycles-12", 12, testcluster.Random(3, 4), all(12)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := testcluster.NewWith(t, tc.n, testcluster.Options{Topology: tc.topo, Seed: 1})
				r, d := steadyRedundancy(t, c, tc.emitters, 50, 200)
				t.Logf("steady redundancy %.3f (received %d, delivered %d, notices %d, grafts %d, prunes %d, eager %d, lazy %d)",
					r, d.Received, d.Delivered, d.Notices, d.Grafts, d.Prunes, d.EagerLinks, d.LazyLinks)
				if r > 1.2 {
					t.Fatalf("steady-state redundancy %.3f, want <= 1.2", r)
				}
				if d.LazyLinks == 0 {
					t.Fatal("no lazy links: the tree was not built")
				}
			})
		})
	}
}

// With Flood, every link carries every event: a full mesh of 5 costs about
// 3-4 frames per delivery and no tree message is sent.
func TestFloodModeFloods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 5, testcluster.Options{Seed: 1,
			Configure: func(_ int, cfg *mesh.Config) { cfg.Flood = true }})
		r, d := steadyRedundancy(t, c, []int{0, 1, 2, 3, 4}, 20, 100)
		if r < 2.5 {
			t.Fatalf("flooding redundancy %.3f, want about 3-4", r)
		}
		if d.Notices+d.Prunes+d.Grafts != 0 || d.LazyLinks != 0 {
			t.Fatalf("flood mode sent tree messages: %+v", d)
		}
	})
}

func TestFloodModeTopologies(t *testing.T) {
	for _, tc := range topologies {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := testcluster.NewWith(t, tc.n, testcluster.Options{Topology: tc.topo, Seed: 1,
					Configure: func(_ int, cfg *mesh.Config) { cfg.Flood = true }})
				everyoneEmits(t, c, 100)
			})
		})
	}
}

// A flooding node among tree nodes is served correctly: it ignores PRUNEs
// but grafts on notices and answers grafts.
func TestMixedFloodAndTree(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 5, testcluster.Options{Seed: 2,
			Configure: func(i int, cfg *mesh.Config) { cfg.Flood = i == 2 }})
		everyoneEmits(t, c, 200)
	})
}

// peerState is node i's view of its link to node j.
func peerState(c *testcluster.Cluster, i, j int) mesh.PeerState {
	for _, p := range c.Node(i).Peers() {
		if p.ID() == c.ID(j) {
			return p.State()
		}
	}
	return mesh.Closed
}

// originSeqs lists what node i's handlers got from node origin, as the
// emitted index arguments.
func originSeqs(t *testing.T, c *testcluster.Cluster, i, origin int) []int64 {
	t.Helper()
	var got []int64
	for _, e := range c.Recorder(i).Events() {
		if e.Origin != c.ID(origin) {
			continue
		}
		var from, v int64
		if err := e.Scan(&from, &v); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	return got
}

func seq(n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(i)
	}
	return out
}

// index returns the cluster index of node id.
func index(t *testing.T, c *testcluster.Cluster, id string) int {
	t.Helper()
	for i := range c.N() {
		if c.ID(i) == id {
			return i
		}
	}
	t.Fatalf("no node %q", id)
	return -1
}

// The eager link that brings node 0's events to node 1 (its parent in
// origin 0's tree) is cut mid-stream and kept down: node 1 keeps receiving
// through a lazy link's notices and a graft — every event once, in order —
// while the cut link is still down.
func TestTreeRepairsCutEagerLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 5, testcluster.Options{Seed: 1, KeepEvents: true})
		const before, after = 100, 200
		for j := range before {
			c.Emit(0, "tree", 0, j)
		}
		c.WaitAll(t)
		p := index(t, c, mesh.TreeProvider(c.Node(1), c.ID(0)))
		if peerState(c, 1, p) != mesh.Connected {
			t.Fatalf("link 1-%d not up before the cut", p)
		}
		grafts := totals(c).Grafts

		c.Net().Refuse(c.Host(p), c.Host(1), true)
		c.Net().Refuse(c.Host(1), c.Host(p), true)
		c.Cut(p, 1)
		for j := range after {
			c.Emit(0, "tree", 0, before+j)
			if j%10 == 0 {
				time.Sleep(time.Millisecond) // a stream, not one burst
			}
		}
		c.WaitFromOrigin(t, 1, 0, before+after)
		if s := peerState(c, 1, p); s == mesh.Connected {
			t.Fatalf("the cut link reconnected (%v) before delivery finished", s)
		}
		if got := originSeqs(t, c, 1, 0); !slices.Equal(got, seq(before+after)) {
			t.Fatalf("node 1 got %d events from node 0, not 0..%d once in order: %v", len(got), before+after-1, got)
		}
		// Node 1 grafts a lazy neighbour, or a child of node 1 (cut off too)
		// does and then feeds node 1 over their eager link.
		if g := totals(c).Grafts; g <= grafts {
			t.Fatalf("no graft (%d): the lazy path was not used", g)
		}
		c.WaitAll(t)

		// Healed, the resent copies are duplicates; the tree settles again.
		c.Heal()
		c.WaitConnected(t)
		next := before + after
		for range 100 {
			c.Emit(0, "tree", 0, next)
			next++
		}
		c.WaitAll(t)
		b := totals(c)
		for range 100 {
			c.Emit(0, "tree", 0, next)
			next++
		}
		c.WaitAll(t)
		if r := totals(c).Sub(b).Redundancy(); r > 1.2 {
			t.Fatalf("redundancy %.3f after healing, want <= 1.2", r)
		}
	})
}

// A slow eager path is kept, not grafted around. On a ring of 5 where the
// tree is two arcs from the origin, the neighbour fed over a link that
// turns slow falls 50 ms behind the notices of its other neighbour; its
// events still come, in order, so it grafts nothing: a graft would resend
// what is on its way (under load, at 100 nodes, such grafts resent 0.6
// copies per delivery and moved the tree onto branches as loaded).
// Deliveries go on once and in order, over the same parent, with one copy
// per delivery.
func TestTreeKeepsASlowPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 5, testcluster.Options{Topology: testcluster.Ring, Seed: 1, KeepEvents: true})
		emitted := 0
		stream := func(k int) {
			for range k {
				c.Emit(0, "tree", 0, emitted)
				emitted++
				time.Sleep(time.Millisecond)
			}
		}
		stream(100)
		c.WaitAll(t)
		// Node 2 is two hops from the origin either way round the ring: it
		// is fed by node 1 or by node 3. Slow that link down.
		const far = 2
		parent := 1
		if mesh.TreeProvider(c.Node(far), c.ID(0)) != c.ID(1) {
			parent = 3
		}
		if p := mesh.TreeProvider(c.Node(far), c.ID(0)); p != c.ID(parent) {
			t.Fatalf("node %d's parent for origin 0 is %q, want node 1 or 3", far, p)
		}
		before := totals(c)
		c.SetLatency(parent, far, 50*time.Millisecond)
		stream(300)
		c.WaitAll(t)
		d := totals(c).Sub(before)
		t.Logf("over the slow path: %+v", d)
		if d.Grafts != 0 {
			t.Fatalf("%d grafts around a path that kept bringing the events", d.Grafts)
		}
		if r := d.Redundancy(); r > 1.01 {
			t.Fatalf("redundancy %.3f over the slow path, want 1", r)
		}
		if p := mesh.TreeProvider(c.Node(far), c.ID(0)); p != c.ID(parent) {
			t.Fatalf("node %d's parent for origin 0 is %q, want node %d still", far, p, parent)
		}
		for i := 1; i < 5; i++ {
			if got := originSeqs(t, c, i, 0); !slices.Equal(got, seq(emitted)) {
				t.Fatalf("node %d did not get 0..%d once in order: %v", i, emitted-1, got)
			}
		}
	})
}

// A node two hops from an origin hears of its first events by notice only,
// and no eager path will bring them: it grafts at once, not after the grace
// (which, at every hop of a line, delayed an origin's first events).
func TestFirstEventsReachTwoHopsWithoutGraftGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Topology: testcluster.Line, Seed: 1})
		c.WaitConnected(t)
		arrived := make(chan time.Time, 1)
		off := c.Node(2).On("first", func(mesh.Event) { arrived <- time.Now() })
		defer off()
		start := time.Now()
		c.Emit(0, "first", 1)
		// One notice round (5 ms) and a graft round trip; the grace (15 ms)
		// on top of it is what this test catches.
		if took := (<-arrived).Sub(start); took >= 15*time.Millisecond {
			t.Fatalf("the first event took %v to reach the node two hops away", took)
		}
	})
}

// A link that has not yet completed its first handshake is fed none of
// the events its node relays (they would only fill its buffer); once it
// connects, its remote hears of them and grafts them from the stores:
// b relays a's 20 events while its link to c is still being dialled (c
// not listening yet), and c, listening later, gets all 20, once each and
// in order, from b's store, with no overflow reported anywhere.
func TestNewLinkGetsRelayedEventsByGraft(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		a := tn.server("a")
		b := tn.node("b")
		c := tn.node("c")
		got := listen(c, "ev")
		if _, err := b.Connect("a:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "b's link to a", connected(a, 1))
		if _, err := b.Connect("c:7947"); err != nil {
			t.Fatal(err)
		}
		atB := listen(b, "ev")
		const k = 20
		for j := range k {
			if err := a.Emit("ev", j); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "b has a's events", func() bool { return len(atB.all()) == k })
		if err := c.Listen("c:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "c has a's events", func() bool { return len(got.all()) >= k })
		time.Sleep(time.Second) // no late duplicate
		var idx []string
		for _, e := range got.all() {
			idx = append(idx, fmt.Sprint(e.Args[0]))
		}
		want := make([]string, k)
		for j := range want {
			want[j] = fmt.Sprint(j)
		}
		if !slices.Equal(idx, want) {
			t.Fatalf("c got %v, want 0..%d once each in order", idx, k-1)
		}
		if s := b.Stats(); s.Overflowed != 0 || s.GraftResent < k {
			t.Fatalf("b: overflowed %d, resent %d for GRAFTs; want 0 and at least %d", s.Overflowed, s.GraftResent, k)
		}
	})
}

// Events emitted while a node has no link at all (alone, or a partial
// view's node between neighbours) reach the first node it links, by GRAFT
// on the notice a link coming up gets, in order, once each; with the tree
// off too. Before, they went nowhere: the last of them were never
// delivered anywhere, and nothing said so.
func TestEventsEmittedAloneReachTheFirstLink(t *testing.T) {
	for _, flood := range []bool{false, true} {
		t.Run(fmt.Sprint("flood=", flood), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tn := newTestNet(t)
				tree := func(c *mesh.Config) { c.Flood = flood }
				a := tn.node("a", tree)
				b := tn.server("b", tree)
				got := listen(b, "ev")
				const k = 5
				for j := range k {
					if err := a.Emit("ev", j); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := a.Connect("b:7947"); err != nil {
					t.Fatal(err)
				}
				eventually(t, time.Minute, "b has a's events", func() bool { return len(got.all()) >= k })
				time.Sleep(time.Second) // no late duplicate
				var idx []string
				for _, e := range got.all() {
					idx = append(idx, fmt.Sprint(e.Args[0]))
				}
				if want := []string{"0", "1", "2", "3", "4"}; !slices.Equal(idx, want) {
					t.Fatalf("b got %v, want %v", idx, want)
				}
			})
		})
	}
}
