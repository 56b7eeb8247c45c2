package mesh_test

import (
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/testcluster"
)

var overlayBlast = flag.Bool("overlay.blast", false, "run the blasts over a partial view (make overlay-blast)")

// A blast over a partial view several hops deep (in memory, real time: the
// paths' speeds are the scheduler's, as in production) reaches every node
// exactly once, in order, with nothing declared lost. Back-pressure paces
// each origin's tree, so a node whose eager path is long lags a lazy
// neighbour that is one hop from the origin by more than that neighbour's
// store: a GRAFT answer that then sent only the range's tail opened a gap
// ahead of the eager path that the orderer declared lost (meshbench, 20
// nodes, view 7: 14,336 lost). Now such a GRAFT is refused, and the
// grafter keeps its path.
//
// Behind -overlay.blast (make overlay-blast): under the full suite's load
// with -race (CI) one run left every node at 14,650–18,198 of 30,000.
// Gossip, starved of CPU, declared live neighbours dead, and forgetting
// them closed healthy links and released their buffers (the rest was
// declared lost, Stats.Skipped). Such neighbours now stay while their
// links are connected; under a heavier load than CI's a run still lost 52
// of 450,000 deliveries, reported, so the test stays out of the default run.
func TestPartialViewBlastMultiHop(t *testing.T) {
	if !*overlayBlast {
		t.Skip("a 30,000-event blast over 16 nodes: make overlay-blast (-overlay.blast)")
	}
	const n, events = 16, 30000
	c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: 4, WaitTimeout: 3 * time.Minute, Seed: 4})
	checkViews(t, c, 4)
	if g := c.Overlay(); !g.Connected() {
		t.Fatalf("not connected: %s", g.Unreached())
	}
	for k := range events {
		c.Emit(0, "blast", k)
	}
	c.WaitAll(t)
	var misses, refused, resent uint64
	for i := range n {
		st := c.Node(i).Stats()
		if st.Skipped > 0 || st.Late > 0 {
			t.Errorf("node %d: %d events declared lost, %d late", i, st.Skipped, st.Late)
		}
		misses += st.GraftMisses
		refused += st.GraftsRefused
		resent += st.GraftResent
	}
	t.Logf("%d events from node 0 to %d nodes over views of 4: %d resent for GRAFTs, %d GRAFTs refused (head no longer stored), %d misses", events, n-1, resent, refused, misses)
}

// Several origins blasting at once over a partial view: whatever a node
// does not deliver it declares lost (Stats.Skipped), nothing waits
// silently, and what it delivers is exactly once and in order. (Two nodes
// could take each other for provider, having both pruned their source,
// and wait for ever.) In the default run: it asserts that nothing is lost
// silently, which held in every run, alone or under load. What is lost,
// reported, varies: 0 in most runs alone; under -race with other packages'
// tests beside it up to a few thousand of 480,000: ranges that left every
// neighbour's store before a GRAFT for them was answered. (Live events of
// a link formed mid-blast landing beyond the orderer's window had lost up
// to 37,363; a node half that window behind now grafts at once.)
func TestPartialViewBlastManyOrigins(t *testing.T) {
	if testing.Short() {
		t.Skip("a blast from 4 origins over 16 nodes in -short mode")
	}
	const n, perOrigin = 16, 8000
	origins := []int{0, 5, 10, 15}
	c := testcluster.NewWith(t, n, testcluster.Options{Join: true, ActiveView: 4, WaitTimeout: 3 * time.Minute, Seed: 5})
	checkViews(t, c, 4)
	var wg sync.WaitGroup
	for _, o := range origins {
		wg.Go(func() {
			for k := range perOrigin {
				c.Emit(o, "blast", k)
			}
		})
	}
	wg.Wait()
	accounted := func() (lacking, skipped uint64, ok bool) {
		ok = true
		for i := range n {
			var l uint64
			for _, o := range origins {
				if i != o {
					l += uint64(perOrigin - c.Recorder(i).FromOrigin(c.ID(o)))
				}
			}
			s := c.Node(i).Stats().Skipped
			lacking, skipped = lacking+l, skipped+s
			ok = ok && l == s
		}
		return lacking, skipped, ok
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, _, ok := accounted(); !ok; _, _, ok = accounted() {
		if time.Now().After(deadline) {
			for i := range n {
				st := c.Node(i).Stats()
				for _, o := range origins {
					if got := c.Recorder(i).FromOrigin(c.ID(o)); i != o && got != perOrigin {
						t.Logf("node %d has %d/%d from node %d (skipped %d, late %d, stale %d, handler drops %d)", i, got, perOrigin, o, st.Skipped, st.Late, st.Stale, st.HandlerDropped)
					}
				}
			}
			t.Fatal("not every event delivered or declared lost after 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.CheckViolations(t)
	lacking, _, _ := accounted()
	t.Logf("%d origins × %d events over %d nodes, views of 4: %d deliveries declared lost (of %d)", len(origins), perOrigin, n, lacking, len(origins)*perOrigin*(n-1))
}
