package mesh_test

import (
	"testing"
	"time"

	"github.com/verbosemesh/verbose/testcluster"
)

// A partial view over loopback TCP with real gossip, blasted while the
// views still fill (a star around the seed at first, then a full mesh):
// links made mid-stream never hold the emitter back for Timeout (a
// tentative peer is not waited for past MaybeTimeout), and every event
// arrives exactly once, in order.
func TestPartialViewBlastOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20,000-event blast over TCP in -short mode")
	}
	c := testcluster.NewWith(t, 5, testcluster.Options{Network: testcluster.TCP, Join: true, ActiveView: 7, WaitTimeout: 60 * time.Second})
	for k := range 20000 {
		c.Emit(0, "blast", k)
	}
	c.WaitAll(t)
	for i := range 5 {
		if st := c.Node(i).Stats(); st.SlowConsumers > 0 {
			t.Fatalf("node %d declared %d consumers slow: a wait on a new link lasted Timeout", i, st.SlowConsumers)
		}
	}
	if w := c.Node(0).Stats().EmitWaited; w > 20*time.Second {
		t.Fatalf("Emit waited %v in all", w)
	}
}
