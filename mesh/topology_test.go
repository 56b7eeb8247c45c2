package mesh_test

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/verbosemesh/verbose/testcluster"
)

var topologies = []struct {
	name string
	n    int
	topo testcluster.Topology
}{
	{"line", 5, testcluster.Line},
	{"ring", 5, testcluster.Ring},
	{"star", 5, testcluster.Star},
	{"full-mesh", 5, testcluster.FullMesh},
	{"random-cycles", 8, testcluster.Random(7, 3)},
}

// everyoneEmits has every node emit k events, concurrently, then waits until
// every node has every other node's events, with no duplicate, gap or
// reorder (the recorder and WaitAll check each).
func everyoneEmits(t *testing.T, c *testcluster.Cluster, k int) {
	var wg sync.WaitGroup
	for i := range c.N() {
		wg.Go(func() {
			for j := range k {
				c.Emit(i, "topo", i, j)
			}
		})
	}
	wg.Wait()
	c.WaitAll(t)
}

func TestTopologiesInMemory(t *testing.T) {
	for _, tc := range topologies {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := testcluster.NewWith(t, tc.n, testcluster.Options{Topology: tc.topo, Seed: 1})
				everyoneEmits(t, c, 200)
			})
		})
	}
}

func TestTopologiesOverTCP(t *testing.T) {
	for _, tc := range topologies {
		t.Run(tc.name, func(t *testing.T) {
			c := testcluster.NewWith(t, tc.n, testcluster.Options{Network: testcluster.TCP, Topology: tc.topo})
			everyoneEmits(t, c, 100)
		})
	}
}

// A busy triangle never waits for the acknowledge timer: acks go out as
// soon as a quarter of the window is unacknowledged.
func TestTriangleBusy(t *testing.T) {
	const each = 5000
	c := testcluster.NewWith(t, 3, testcluster.Options{Network: testcluster.TCP})
	everyoneEmits(t, c, each)
	for i := range 3 {
		if got := c.Recorder(i).Count("topo"); got != 2*each {
			t.Fatalf("node %d got %d events, want %d", i, got, 2*each)
		}
	}
}

func TestRandomGraphsManySeeds(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := testcluster.NewWith(t, 10, testcluster.Options{Topology: testcluster.Random(seed, 3), Seed: seed})
				everyoneEmits(t, c, 30)
			})
		})
	}
}
