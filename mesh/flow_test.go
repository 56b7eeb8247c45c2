package mesh_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

// The tests of back-pressure (Config.SlowConsumer's default): a cluster
// whose consumers are slower than its emitters loses nothing, in any
// topology, and its emitters wait. Handlers are slowed with time.Sleep,
// which inside synctest costs virtual time only.

// slowHandlers makes every node but the emitters spend per on each event.
func slowHandlers(c *testcluster.Cluster, per time.Duration, except ...int) {
	for i := range c.N() {
		if !contains(except, i) {
			c.Node(i).On("*", func(mesh.Event) { time.Sleep(per) })
		}
	}
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// checkNothingDropped fails if any node dropped an event anywhere.
func checkNothingDropped(t *testing.T, c *testcluster.Cluster) {
	t.Helper()
	for i := range c.N() {
		s := c.Node(i).Stats()
		if s.HandlerDropped+s.Overflowed+s.Expired+s.Skipped+s.Late > 0 {
			t.Errorf("node %d dropped events: %+v", i, s)
		}
	}
}

// A handler slower than the emitter: every event is handled, in order, and
// Emit waits instead of the receiver dropping.
func TestSlowHandlerLosesNothingAndSlowsEmit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 2, testcluster.Options{Configure: func(i int, cfg *mesh.Config) {
			cfg.HandlerQueue = 256
		}})
		slowHandlers(c, 20*time.Microsecond, 0)
		for k := range 5000 {
			c.Emit(0, "load", k)
		}
		c.WaitAll(t)
		checkNothingDropped(t, c)
		if s := c.Node(0).Stats(); s.EmitWaits == 0 || s.EmitWaited == 0 {
			t.Fatalf("Emit never waited for the slow handler: %+v", s)
		}
		if s := c.Node(1).Stats(); s.SlowConsumers != 0 {
			t.Fatalf("a slow but working handler was declared stuck: %+v", s)
		}
	})
}

// A bigger buffer must never mean more loss: a full mesh with BufferMax
// 65536 (the window a receiver grants) and small handler queues, blasted.
func TestBlastWithABigBufferLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 5, testcluster.Options{Configure: func(i int, cfg *mesh.Config) {
			cfg.BufferMax = 1 << 16
			cfg.HandlerQueue = 512
		}})
		slowHandlers(c, 5*time.Microsecond, 0)
		for k := range 8000 {
			c.Emit(0, "load", k)
		}
		c.WaitAll(t)
		checkNothingDropped(t, c)
	})
}

// Relays hold their upstream back: a line and a ring of 5, a slow handler
// at the far end, small buffers, one emitter blasting.
func TestBlastThroughRelaysLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		topo testcluster.Topology
	}{{"line", testcluster.Line}, {"ring", testcluster.Ring}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := testcluster.NewWith(t, 5, testcluster.Options{Topology: tc.topo, Configure: func(i int, cfg *mesh.Config) {
					cfg.BufferMax = 100
					cfg.HandlerQueue = 64
				}})
				c.Node(2).On("*", func(mesh.Event) { time.Sleep(10 * time.Microsecond) })
				c.Node(4).On("*", func(mesh.Event) { time.Sleep(20 * time.Microsecond) })
				for k := range 6000 {
					c.Emit(0, "load", k)
				}
				c.WaitAll(t)
				checkNothingDropped(t, c)
				if s := c.Node(0).Stats(); s.EmitWaits == 0 {
					t.Fatalf("the emitter never waited: %+v", s)
				}
			})
		})
	}
}

// Every node of a ring emits at once, with small buffers and slow
// handlers: the credit of each origin's tree is its own, so the cycle
// cannot deadlock, and every event arrives exactly once, in order.
func TestRingWhereEveryNodeBlastsFinishes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The GRAFT stores (4 × BufferMax events over all origins) hold
		// everything emitted here: when a tree repair asks for more than
		// they hold, the rest is reported lost, which this test would take
		// for a loss of back-pressure's (a known limit, see BENCHMARKS.md).
		const n, each = 5, 300
		c := testcluster.NewWith(t, n, testcluster.Options{Topology: testcluster.Ring, Configure: func(i int, cfg *mesh.Config) {
			cfg.BufferMax = 400
			cfg.HandlerQueue = 32
		}})
		slowHandlers(c, 5*time.Microsecond)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				for k := range each {
					if err := c.Node(i).Emit("load", k); err != nil {
						errs <- fmt.Errorf("node %d: %w", i, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i := range n {
			for o := range n {
				if o != i {
					c.WaitFromOrigin(t, i, o, each)
				}
			}
		}
		c.CheckViolations(t)
		checkNothingDropped(t, c)
	})
}

// A handler that takes nothing stalls Emit once, for at most Timeout: its
// node declares it slow (reported) at Timeout/2 and stops holding its
// senders back, its handler queue overflows (counted, reported), and it
// recovers when it takes events again.
func TestStuckHandlerStallsEmitOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 5 * time.Second
		logs := &logBuffer{}
		c := testcluster.NewWith(t, 2, testcluster.Options{Configure: func(i int, cfg *mesh.Config) {
			cfg.BufferMax = 100
			cfg.HandlerQueue = 64
			cfg.Timeout = timeout
			if i == 0 {
				cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "node-00", Level: hclog.Warn, Output: logs})
			}
		}})
		unstick := make(chan struct{})
		var once sync.Once
		release := func() { once.Do(func() { close(unstick) }) }
		defer release() // also when the test fails: Close waits for the handler
		c.Node(1).On("*", func(mesh.Event) { <-unstick })
		var mu sync.Mutex
		var reports []mesh.PeerEvent
		c.Node(1).OnPeer(func(e mesh.PeerEvent) {
			if e.Peer == nil && (e.Kind == mesh.Slow || e.Kind == mesh.Recovered) {
				mu.Lock()
				reports = append(reports, e)
				mu.Unlock()
			}
		})
		var stalls []time.Duration
		start := time.Now()
		for k := range 2000 {
			t0 := time.Now()
			c.Emit(0, "load", k)
			if d := time.Since(t0); d > 0 {
				stalls = append(stalls, d)
			}
		}
		// The node declares its own handlers slow at Timeout/2, before its
		// sender would declare it slow at Timeout.
		if took := time.Since(start); len(stalls) != 1 || took < timeout/2 || took > timeout {
			t.Fatalf("Emit stalled %v, %v in all; want once, for Timeout/2 to Timeout (%v)", stalls, took, timeout)
		}
		// Past 2s the emitter said what it waits for: node 1, which has
		// granted the first window and takes nothing more.
		if l := logs.lines("Emit waits for consumers"); len(l) != 1 || !strings.Contains(l[0], "waits_for=\"node-01 (granted up to ") {
			t.Fatalf("the emitter's reports of its wait: %q, want one naming node-01 and its grant", l)
		}
		release()
		deadline := time.Now().Add(time.Minute)
		for {
			mu.Lock()
			n := len(reports)
			mu.Unlock()
			if n == 2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(reports) != 2 || reports[0].Kind != mesh.Slow || !errors.Is(reports[0].Err, mesh.ErrSlowConsumer) || reports[1].Kind != mesh.Recovered {
			t.Fatalf("reports %+v, want Slow (ErrSlowConsumer) then Recovered", reports)
		}
		if s := c.Node(1).Stats(); s.HandlerDropped == 0 || s.SlowConsumers != 1 {
			t.Fatalf("stuck node: %+v, want handler drops and one slow consumer", s)
		}
	})
}

// Back-pressure over real TCP: a line of 3 on 127.0.0.1 with a slow last
// handler loses nothing.
func TestBackpressureOverTCP(t *testing.T) {
	if testing.Short() {
		t.Skip("real TCP")
	}
	c := testcluster.NewWith(t, 3, testcluster.Options{Network: testcluster.TCP, Topology: testcluster.Line,
		WaitTimeout: time.Minute, Configure: func(i int, cfg *mesh.Config) {
			cfg.BufferMax = 64
			cfg.HandlerQueue = 32
		}})
	c.WaitConnected(t)
	c.Node(2).On("*", func(mesh.Event) { time.Sleep(20 * time.Microsecond) })
	for k := range 3000 {
		c.Emit(0, "load", k)
	}
	c.WaitAll(t)
	checkNothingDropped(t, c)
}

// logBuffer keeps a node's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// lines returns the lines that contain s.
func (l *logBuffer) lines(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}
