package mesh_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

// One node whose handlers are slow (5ms an event against 1500 events a
// second), with SlowConsumer: Drop. The rest of the cluster keeps its pace:
// each healthy node has everything from the other emitters as soon as the
// emitters are done. The slow node drops deliveries to its handlers by its
// policy — counted and reported, never silent, never holding back its links.
//
// Regression: drops that stopped within a second of the previous report
// were counted (Stats.HandlerDropped) but never reported as an Overflow
// PeerEvent; the dispatcher now flushes them a second later.
func TestSlowConsumer(t *testing.T) {
	slowScenario(t, false)
}

// As TestSlowConsumer, with one more node whose links are throttled (200ms
// each way): it must lose nothing and only be late, and no peer buffer may
// overflow (1500 events a second over a 400ms round trip fit BufferMax).
//
// Regression test: the throttled node's IHAVE notices used to outrun the
// events and its GRAFTs made every node resend thousands of events
// (GraftResent ≈ 4× the events emitted), overflowing every buffer towards
// it. Relayed origins now start lazy and a graft is retried only after
// graftRetry, not every grace.
func TestThrottledLink(t *testing.T) {
	slowScenario(t, true)
}

func slowScenario(t *testing.T, throttle bool) {
	synctest.Test(t, func(t *testing.T) {
		const slow, throttled, perEmitter = 3, 4, 1000
		c := testcluster.NewWith(t, 5, testcluster.Options{Configure: func(i int, cfg *mesh.Config) {
			if i == slow {
				cfg.HandlerQueue = 64
				cfg.SlowConsumer = mesh.Drop
			}
		}})
		var handled atomic.Int64
		c.Node(slow).On("*", func(mesh.Event) {
			time.Sleep(5 * time.Millisecond)
			handled.Add(1)
		})
		var mu sync.Mutex
		var reported int
		var reportErrs []error
		c.Node(slow).OnPeer(func(e mesh.PeerEvent) {
			if e.Kind == mesh.Overflow && e.Peer == nil {
				mu.Lock()
				reported += e.Dropped
				reportErrs = append(reportErrs, e.Err)
				mu.Unlock()
			}
		})
		for j := range 5 {
			if throttle && j != throttled {
				c.SetLatency(throttled, j, 200*time.Millisecond)
			}
		}

		start := time.Now()
		for k := range perEmitter {
			for e := range 3 {
				c.Emit(e, "load", k)
			}
			time.Sleep(2 * time.Millisecond)
		}
		emitted := time.Since(start)
		// Healthy nodes: everything from the other emitters, with no more
		// delay than one ack round after the last emit.
		for i := range 3 {
			for o := range 3 {
				if o != i {
					c.WaitFromOrigin(t, i, o, perEmitter)
				}
			}
		}
		if took := time.Since(start); took > emitted+100*time.Millisecond {
			t.Errorf("healthy nodes were held back: %v to deliver what was emitted in %v", took, emitted)
		}
		// The throttled node: everything, late.
		for o := range 3 {
			c.WaitFromOrigin(t, throttled, o, perEmitter)
		}
		// The slow node: whatever its handlers did not get was dropped,
		// counted and reported with ErrSlowConsumer.
		want := uint64(3 * perEmitter)
		var st mesh.Stats
		deadline := time.Now().Add(time.Minute)
		for {
			st = c.Node(slow).Stats()
			if st.Delivered+st.HandlerDropped >= want && uint64(handled.Load())+st.HandlerDropped >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("slow node: handled %d, dropped %d, stats %+v: %d unaccounted", handled.Load(), st.HandlerDropped, st, want-uint64(handled.Load())-st.HandlerDropped)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if st.HandlerDropped == 0 {
			t.Fatal("slow node dropped nothing: the test did not overload it")
		}
		if got := uint64(handled.Load()) + st.HandlerDropped; got != want {
			t.Fatalf("slow node: handled %d + dropped %d = %d, want %d", handled.Load(), st.HandlerDropped, got, want)
		}
		// Reports come at most once a second; wait for the last one.
		eventuallyReported := func() bool {
			mu.Lock()
			defer mu.Unlock()
			return uint64(reported) == st.HandlerDropped
		}
		deadline = time.Now().Add(10 * time.Second)
		for !eventuallyReported() {
			if time.Now().After(deadline) {
				mu.Lock()
				t.Fatalf("slow node dropped %d deliveries but reported %d", st.HandlerDropped, reported)
			}
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		for _, err := range reportErrs {
			if !errors.Is(err, mesh.ErrSlowConsumer) {
				t.Errorf("overflow report with err %v, want ErrSlowConsumer", err)
			}
		}
		mu.Unlock()
		for i := range 5 {
			if s := c.Node(i).Stats(); s.Overflowed+s.Expired > 0 {
				t.Errorf("node %d dropped from peer buffers: %+v", i, s)
				t.Logf("throttled node: %+v", c.Node(throttled).Stats())
			}
		}
		c.CheckViolations(t)
	})
}
