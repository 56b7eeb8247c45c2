package mesh_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// benchCluster is n nodes in a full mesh by Connect, over memnet or TCP,
// every node but 0 counting what its On("*") handler gets.
type benchCluster struct {
	nodes []*mesh.Node
	got   []atomic.Int64
}

func newBenchCluster(b *testing.B, n int, network string) *benchCluster {
	b.Helper()
	c := &benchCluster{got: make([]atomic.Int64, n)}
	var mnet *memnet.Network
	if network == "mem" {
		mnet = memnet.New(1)
	}
	for i := range n {
		cfg := mesh.Config{NodeID: fmt.Sprintf("bench-%d", i), Logger: hclog.NewNullLogger(), BufferMax: 4096}
		listen := "127.0.0.1:0"
		if mnet != nil {
			host := fmt.Sprintf("n%d", i)
			cfg.Transport, listen = mnet.Host(host), host+":7947"
		}
		node, err := mesh.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { node.Close() })
		if err := node.Listen(listen); err != nil {
			b.Fatal(err)
		}
		node.On("*", func(mesh.Event) { c.got[i].Add(1) })
		c.nodes = append(c.nodes, node)
	}
	for i := range n {
		for j := i + 1; j < n; j++ {
			if _, err := c.nodes[i].Connect(c.nodes[j].Addr().String()); err != nil {
				b.Fatal(err)
			}
		}
	}
	c.waitFor(b, 10*time.Second, func() bool {
		for _, node := range c.nodes {
			up := 0
			for _, p := range node.Peers() {
				if p.State() == mesh.Connected {
					up++
				}
			}
			if up < n-1 {
				return false
			}
		}
		return true
	}, "links up")
	return c
}

func (c *benchCluster) waitFor(b *testing.B, limit time.Duration, cond func() bool, what string) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("not %s after %v", what, limit)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// benchmarkEmit measures Emit→deliver end to end: node 0 emits b.N
// 128-byte events as fast as Emit returns, and the clock stops when every
// other node's handler has had all of them. ev/s is per receiver; allocs
// count the whole cluster's allocations per event.
func benchmarkEmit(b *testing.B, n int, network string) {
	c := newBenchCluster(b, n, network)
	pad := make([]byte, 112)
	base := make([]int64, n)
	for i := range c.got {
		base[i] = c.got[i].Load()
	}
	b.ReportAllocs()
	b.SetBytes(128)
	start := time.Now()
	var emitted int64
	for b.Loop() {
		if err := c.nodes[0].Emit("bench", emitted, int64(0), pad); err != nil {
			b.Fatal(err)
		}
		emitted++
	}
	c.waitFor(b, 60*time.Second, func() bool {
		for i := 1; i < n; i++ {
			if c.got[i].Load()-base[i] < emitted {
				if s := c.nodes[i].Stats(); s.HandlerDropped+s.Skipped+s.Overflowed > 0 {
					// Lost for good: say how, rather than time out.
					b.Fatalf("node %d: %d of %d events delivered; stats %+v", i, c.got[i].Load()-base[i], emitted, s)
				}
				return false
			}
		}
		return true
	}, "delivered everywhere")
	elapsed := time.Since(start)
	b.ReportMetric(float64(emitted)/elapsed.Seconds(), "ev/s")
	var received uint64
	for _, node := range c.nodes[1:] {
		received += node.Stats().Received
	}
	b.ReportMetric(float64(received)/float64(emitted*int64(n-1)), "frames/delivery")
}

func BenchmarkEmitDeliver(b *testing.B) {
	for _, network := range []string{"mem", "tcp"} {
		for _, n := range []int{2, 5} {
			b.Run(fmt.Sprintf("%s/nodes=%d", network, n), func(b *testing.B) { benchmarkEmit(b, n, network) })
		}
	}
}
