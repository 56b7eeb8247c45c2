package testcluster_test

import (
	"testing"
	"testing/synctest"

	"github.com/verbosemesh/verbose/testcluster"
)

// The README's example, kept compiling and passing.
func TestOrdersReachBilling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 5, testcluster.Options{Topology: testcluster.Ring})
		c.Emit(0, "order.created", "A-17")
		c.Partition([]int{0, 1}, []int{2, 3, 4}) // links across are cut at once
		c.Emit(0, "order.created", "A-18")       // buffered for the far side
		c.Heal()
		c.WaitAll(t) // every node has every event: once, in order
	})
}
