package mesh_test

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

var overlayLarge = flag.Bool("overlay.large", false, "run the partial-view simulation with 1,000 nodes (minutes)")

// A cluster no larger than ActiveView+1 is a full mesh under a partial
// view: every member is every other's neighbour, as without one.
func TestPartialViewSmallClusterIsFullMesh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 6
		c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: 7})
		eventually(t, time.Minute, "every pair linked", func() bool {
			for i := range n {
				if len(c.Overlay().Links(c.ID(i))) != n-1 || len(c.Node(i).ActiveView()) != n-1 || c.Node(i).Stats().ActiveView != n-1 {
					return false
				}
			}
			return true
		})
		everyoneEmits(t, c, 50)
	})
}

// overlaySim checks a partial view of n nodes: joined through node 0, the
// links connect everyone with every active view within its bound; events
// from several origins reach every other node exactly once, in order, with
// few duplicate frames and notices bounded by the view; then a tenth of
// the nodes die at once, the overlay heals and the living origins' events
// all arrive.
func overlaySim(t *testing.T, n int) {
	const active = 7
	start := time.Now()
	c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: active,
		WaitTimeout: 5 * time.Minute, Seed: 1})
	checkViews(t, c, active)
	least, most := c.Overlay().Degrees()
	t.Logf("%d nodes: joined one by one and connected after %v (virtual); links per node %d to %d", n, time.Since(start), least, most)

	before := totals(c)
	origins := []int{0, n / 3, n / 2, n - 1, 7}
	perOrigin := 1000 / len(origins)
	for _, o := range origins {
		for j := range perOrigin {
			c.Emit(o, "sim", o, j)
		}
	}
	c.WaitAll(t)
	d := totals(c).Sub(before)
	deliveries := float64(len(origins) * perOrigin * (n - 1))
	frames := float64(d.Received) / deliveries
	notices := float64(d.Notices) / deliveries
	t.Logf("%d events from %d origins: %.3f event frames and %.3f notice batches per delivery", len(origins)*perOrigin, len(origins), frames, notices)
	if frames > 1.1 {
		t.Errorf("%.3f event frames per delivery, want at most 1.1", frames)
	}
	if notices > active {
		t.Errorf("%.3f notice batches per delivery, want at most the active view (%d)", notices, active)
	}

	// A tenth dies at once.
	var dead []int
	for i := 1; len(dead) < n/10; i += 10 {
		if !slices.Contains(origins, i) {
			dead = append(dead, i)
		}
	}
	killed := time.Now()
	var wg sync.WaitGroup
	for _, i := range dead {
		wg.Go(func() { c.Kill(i) }) // all cut off at once, then closed: crashes, as the others see them
	}
	wg.Wait()
	healed := func() string {
		if g := c.Overlay(); !g.Connected() {
			return "links do not join every living node: " + g.Unreached()
		}
		for i := range c.N() {
			if !c.Alive(i) {
				continue
			}
			v := c.Node(i).ActiveView()
			if len(v) == 0 || len(v) > active {
				return fmt.Sprintf("node %d: active view of %d", i, len(v))
			}
			for _, j := range dead {
				if slices.Contains(v, c.ID(j)) {
					return fmt.Sprintf("node %d still has dead node %d in its active view", i, j)
				}
			}
		}
		return ""
	}
	eventually(t, 2*time.Minute, "the overlay to heal", func() bool { return healed() == "" })
	t.Logf("killed %d at once: healed %v (virtual) after: connected, no dead neighbour, every view 1 to %d", len(dead), time.Since(killed), active)
	checkViews(t, c, active)
	least, most = c.Overlay().Degrees()
	t.Logf("links per living node %d to %d once settled", least, most)
	for _, o := range origins {
		for j := range perOrigin {
			c.Emit(o, "after", o, j)
		}
	}
	c.WaitAll(t)
}

// checkViews waits until every running node's active view holds 1 to
// bound other nodes, and its links are its view's (a link made for a
// request still pending, or to a neighbour just dropped, lasts a moment).
func checkViews(t *testing.T, c *testcluster.Cluster, bound int) {
	t.Helper()
	var problem string
	settled := func() bool {
		g := c.Overlay()
		for i := range c.N() {
			if !c.Alive(i) {
				continue
			}
			v := c.Node(i).ActiveView()
			if len(v) > bound || len(v) == 0 || slices.Contains(v, c.ID(i)) {
				problem = fmt.Sprintf("node %d: active view %v, want 1 to %d other nodes", i, v, bound)
				return false
			}
			for _, id := range g.Links(c.ID(i)) {
				if !slices.Contains(v, id) {
					problem = fmt.Sprintf("node %d: a link to %s, not in its active view %v", i, id, v)
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(time.Minute)
	for !settled() {
		if time.Now().After(deadline) {
			t.Fatalf("views not settled after a minute: %s", problem)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPartialViewSimulation runs overlaySim with 200 nodes (24s; 50 under
// the race detector, where 200 take five minutes: make test runs it again
// without), 1,000 with -overlay.large.
func TestPartialViewSimulation(t *testing.T) {
	n := 200
	switch {
	case *overlayLarge:
		n = 1000
	case raceEnabled:
		n = 50
	case testing.Short():
		t.Skip("the 200-node partial view in -short mode")
	}
	synctest.Test(t, func(t *testing.T) { overlaySim(t, n) })
}

// MaxPeers below the cluster's size (50 nodes, MaxPeers 8, ActiveView not
// set) is a bound that keeps delivery whole: a partial view of 8, no node
// ever above 8 links, every event at every node exactly once in order, and
// no link refused over and over.
func TestMaxPeersBelowClusterSize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, maxPeers = 50, 8
		c := testcluster.NewWith(t, n, testcluster.Options{Join: true, WaitTimeout: 5 * time.Minute, Seed: 2,
			Configure: func(i int, cfg *mesh.Config) { cfg.MaxPeers = maxPeers }})
		var mu sync.Mutex
		rejected := 0
		for i := range n {
			c.Node(i).OnPeer(func(e mesh.PeerEvent) {
				if e.Kind == mesh.Rejected {
					mu.Lock()
					rejected++
					mu.Unlock()
				}
			})
		}
		eventually(t, 2*time.Minute, "every node in a view", func() bool {
			for i := range n {
				if len(c.Node(i).ActiveView()) == 0 {
					return false
				}
			}
			return c.Overlay().Connected()
		})
		for k := range 600 {
			c.Emit(k%3*17, "capped", k)
		}
		c.WaitAll(t)
		time.Sleep(time.Minute) // a quiet minute: nothing may keep refusing
		for i := range n {
			if p := len(c.Node(i).Peers()); p > maxPeers {
				t.Fatalf("node %d has %d links, MaxPeers is %d", i, p, maxPeers)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if rejected > n {
			t.Fatalf("%d refused links in all, want at most one per node: something redials a refused link", rejected)
		}
		t.Logf("%d nodes, MaxPeers %d: %d refusals in all", n, maxPeers, rejected)
	})
}

// Gossip's failure detector errs under load (a node starved of CPU past
// its probe timeout is declared dead, and refutes it). A neighbour so
// declared whose relay link is connected stays in the active view with its
// link and buffer: forgetting it released the buffer and the repair's
// NEIGHBOR requests evicted more links, and under CI's load a 30,000-event
// blast over 16 nodes lost most of its events (reported). The link is the
// active view's failure detector, as in HyParView.
func TestPartialViewKeepsLinkedNeighbourDeclaredDead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, active = 10, 3
		c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: active, Seed: 3, WaitTimeout: 5 * time.Minute})
		checkViews(t, c, active)
		quietViews(t, c)
		view := c.Node(0).ActiveView()
		v := view[0]
		released := c.Node(0).Stats().Released
		mesh.DeclareDead(c.Node(0), v)
		if got := c.Node(0).ActiveView(); !slices.Equal(got, view) {
			t.Fatalf("node 0's active view went from %v to %v when gossip declared %s dead with its link connected", view, got, v)
		}
		if !slices.Contains(c.Overlay().Links(c.ID(0)), v) {
			t.Fatalf("node 0's link to %s was closed", v)
		}
		for k := range 300 {
			c.Emit(0, "after", k)
		}
		c.WaitAll(t)
		if r := c.Node(0).Stats().Released; r != released {
			t.Fatalf("node 0 released %d buffered events", r-released)
		}
		if got := c.Node(0).ActiveView(); !slices.Equal(got, view) {
			t.Fatalf("node 0's active view went from %v to %v", view, got)
		}
	})
}

// Nodes that start together can fill their views among themselves in two
// components that HyParView alone never joins: every view full, low-
// priority requests refused (10 nodes, views of 3: 6 nodes apart in 17 of
// 60 runs, for ever, and no event crossed). The ring of members keeps
// every node's successor linked, so the overlay is connected whatever the
// order of joins, and an event from the last node reaches every other.
func TestPartialViewConnectedWhenStartedTogether(t *testing.T) {
	for seed := range 12 {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n, active = 10, 3
				c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: active, Seed: int64(seed), WaitTimeout: 5 * time.Minute})
				checkViews(t, c, active)
				for k := range 20 {
					c.Emit(n-1, "across", k)
				}
				c.WaitAll(t)
			})
		})
	}
}

// A node whose gossip is cut while its relay links stay up (as under CPU
// starvation, when probes time out and the links, which acknowledge, do
// not) is declared dead by everyone's membership, and declares them dead:
// its neighbours keep it, and it them, so events still flow both ways.
// Forgetting it closed its links, and it heard nothing more.
func TestPartialViewGossipCutLinksUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, active, k = 10, 3, 4
		c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: active, Seed: 6, WaitTimeout: 5 * time.Minute})
		checkViews(t, c, active)
		quietViews(t, c)
		view := c.Node(k).ActiveView()
		c.IsolateGossip(k)
		eventually(t, 2*time.Minute, "everyone's membership says the node is dead", func() bool {
			for i := range n {
				if i == k {
					continue
				}
				for _, m := range c.Node(i).Members() {
					if m.Name == c.ID(k) && m.State == "alive" {
						return false
					}
				}
			}
			return true
		})
		if got := c.Node(k).ActiveView(); !slices.Equal(got, view) {
			t.Fatalf("the cut-off node's view went from %v to %v", view, got)
		}
		if s := c.Node(k).Stats(); s.ActiveView != len(view) {
			t.Errorf("the cut-off node's stats: active view %d, want %d", s.ActiveView, len(view))
		}
		for _, id := range view {
			if !slices.Contains(c.Overlay().Links(c.ID(k)), id) {
				t.Fatalf("the cut-off node's link to %s closed", id)
			}
		}
		for j := range 50 {
			c.Emit(k, "from-cut", j)
			c.Emit(0, "to-cut", j)
		}
		c.WaitAll(t)
		// Its view messages (a shuffle every 10s) cannot go: counted.
		eventually(t, 30*time.Second, "the cut-off node's lost view messages counted", func() bool { return c.Node(k).Stats().ViewDropped > 0 })
	})
}

// quietViews waits (in a synctest bubble) until no active view has changed
// for twice the interval at which nodes look at membership (the ring's
// requests, made then, may evict a neighbour after checkViews is content).
func quietViews(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	views := func() [][]string {
		var out [][]string
		for i := range c.N() {
			out = append(out, c.Node(i).ActiveView())
		}
		return out
	}
	last := views()
	for range 24 {
		time.Sleep(10 * time.Second)
		now := views()
		if slices.EqualFunc(now, last, slices.Equal[[]string]) {
			return
		}
		last = now
	}
	t.Fatal("the active views kept changing for 4 minutes")
}

// A split that outlasts failure detection heals with the network, full
// mesh or partial view: membership merges again (each side tries the
// members it saw fail), the links come back and every event emitted on
// either side during the split reaches the other, once and in order.
// Before membership tried failed members, the sides stayed apart for ever:
// a full mesh still delivered over its relay links, which it redials for
// BufferTimeout whatever membership says, but a partial view, whose links
// follow membership, delivered nothing across.
func TestSplitOutlastingFailureDetectionHeals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		active int
	}{{"full mesh", 0}, {"partial view", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 10
				c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: tc.active, Seed: 7, WaitTimeout: 5 * time.Minute})
				c.Emit(0, "before", 0)
				c.WaitAll(t)
				c.Partition([]int{0, 1, 2, 3, 4}, []int{5, 6, 7, 8, 9})
				for i := range 200 {
					c.Emit(0, "during", i)
					c.Emit(7, "during", i)
				}
				time.Sleep(2 * time.Minute) // both sides hold the other dead, and memberlist has forgotten it
				if alive := aliveMembers(c.Node(0)); alive != n/2 {
					t.Fatalf("during the split node 0 lists %d members alive, want %d", alive, n/2)
				}
				c.Heal()
				healed := time.Now()
				eventually(t, time.Minute, "membership to merge", func() bool {
					for i := range n {
						if aliveMembers(c.Node(i)) != n {
							return false
						}
					}
					return true
				})
				t.Logf("membership merged %v (virtual) after the network healed", time.Since(healed).Round(100*time.Millisecond))
				c.WaitAll(t)
				t.Logf("every event delivered %v after", time.Since(healed).Round(100*time.Millisecond))
			})
		})
	}
}

// A node that links every member in a cluster of partial views (or the
// reverse) is never linked: each side reports the other once, an error
// log line and a Rejected PeerEvent with ErrViewMismatch, instead of
// missing its events with nothing said; the others carry on. Restarted
// with the cluster's setting, it is linked and gets every event.
func TestViewMismatchIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, odd = 6, 5
		var oddView atomic.Int64
		oddView.Store(3)
		c := testcluster.NewWith(t, n, testcluster.Options{Join: true, Seed: 3, WaitTimeout: time.Minute,
			Configure: func(i int, cfg *mesh.Config) {
				cfg.ActiveView = 3
				if i == odd {
					cfg.ActiveView = int(oddView.Load())
				}
			}})
		logs := make([]*peerLog, odd)
		for i := range odd {
			logs[i] = watchPeers(c.Node(i))
		}
		mismatches := func(pl *peerLog) int { return pl.rejected(c.ID(odd), mesh.ErrViewMismatch) }

		c.Stop(odd)
		oddView.Store(0) // links every member
		c.Restart(odd)
		eventually(t, time.Minute, "every partial-view node to report the odd one", func() bool {
			for _, pl := range logs {
				if mismatches(pl) == 0 {
					return false
				}
			}
			return true
		})
		for i := range odd {
			c.Emit(i, "apart", i)
		}
		time.Sleep(30 * time.Second) // the odd one gossips on: no second report
		for i, pl := range logs {
			if k := mismatches(pl); k != 1 {
				t.Errorf("node %d reported the odd node %d times, want once", i, k)
			}
			if v := c.Node(i).ActiveView(); slices.Contains(v, c.ID(odd)) {
				t.Errorf("node %d has the odd node in its active view %v", i, v)
			}
		}
		if p := c.Node(odd).Peers(); len(p) != 0 {
			t.Errorf("the odd node has %d links, want none", len(p))
		}
		for i := range odd {
			for j := range odd {
				if i != j {
					c.WaitFromOrigin(t, i, j, 1)
				}
			}
		}

		c.Stop(odd)
		oddView.Store(3)
		c.Restart(odd)
		c.WaitAll(t)
	})
}

// A neighbour that crashes and comes back under the same NodeID linking
// every member is unlinked: its old link redialled it and, accepted by a
// node that links every member, kept it in the view while the rest of the
// view could not reach it (it sent nothing onward). Now both its old
// neighbours close their links and repair around it, it refuses their
// redials, and what their links held for it is reported, never silent.
func TestNeighbourRestartedWithOtherViewIsUnlinked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const odd = 2
		var oddView atomic.Int64
		oddView.Store(3)
		c := testcluster.NewWith(t, 3, testcluster.Options{Join: true, Seed: 5, WaitTimeout: time.Minute,
			Configure: func(i int, cfg *mesh.Config) {
				cfg.ActiveView = 3
				if i == odd {
					cfg.ActiveView = int(oddView.Load())
				}
			}})
		logs := []*peerLog{watchPeers(c.Node(0)), watchPeers(c.Node(1))}
		c.Kill(odd)
		const k = 3
		for j := range k {
			c.Emit(0, "while-down", j) // buffered on node 0's link to the odd one
		}
		oddView.Store(0)
		c.Restart(odd)
		eventually(t, time.Minute, "both neighbours to report the odd one", func() bool {
			return logs[0].rejected(c.ID(odd), mesh.ErrViewMismatch) > 0 && logs[1].rejected(c.ID(odd), mesh.ErrViewMismatch) > 0
		})
		time.Sleep(30 * time.Second) // the old links' back-off has long run out
		for i := range 2 {
			if v := c.Node(i).ActiveView(); slices.Contains(v, c.ID(odd)) {
				t.Errorf("node %d keeps the odd node in its active view %v", i, v)
			}
			for _, p := range c.Node(i).Peers() {
				if p.ID() == c.ID(odd) {
					t.Errorf("node %d keeps a link to the odd node (%v)", i, p.State())
				}
			}
		}
		if p := c.Node(odd).Peers(); len(p) != 0 {
			t.Errorf("the odd node has %d links, want none", len(p))
		}
		dropped := logs[0].dropped(mesh.Expired)
		if e, ok := logs[0].find(mesh.Expired); ok && (e.PeerID != c.ID(odd) || !errors.Is(e.Err, mesh.ErrViewMismatch)) {
			t.Errorf("node 0 reported %+v, want the odd node's link dropped for ErrViewMismatch", e)
		}
		if got := c.Recorder(odd).FromOrigin(c.ID(0)); got+dropped < k {
			t.Errorf("of node 0's %d events while the odd node was down, it got %d and %d were reported dropped: the rest went silently", k, got, dropped)
		}
		c.Emit(1, "after", 0)
		c.WaitFromOrigin(t, 0, 1, 1)
	})
}
