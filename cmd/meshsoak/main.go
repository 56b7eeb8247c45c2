// Command meshsoak runs a 5-node verbose cluster on loopback TCP at a steady
// event rate for a set duration, sampling heap and goroutines, and prints a
// verdict: the heap must level off (guarantee 5, bounded memory) and the
// goroutine count stay flat. It exits 1 when either does not, or when an
// event was lost or duplicated.
//
//	go run ./cmd/meshsoak -duration 3m -rate 2000
//
// Lifecycle: everything it starts is closed before it exits; it owns no
// state beyond main.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

func main() {
	duration := flag.Duration("duration", 3*time.Minute, "how long to emit")
	rate := flag.Int("rate", 2000, "events per second, over all emitters")
	nodes := flag.Int("nodes", 5, "cluster size (full mesh, every node emits)")
	every := flag.Duration("sample", 10*time.Second, "sampling interval")
	flag.Parse()
	if err := run(*nodes, *rate, *duration, *every); err != nil {
		fmt.Fprintln(os.Stderr, "meshsoak:", err)
		os.Exit(1)
	}
}

type sample struct {
	at         time.Duration
	heap       uint64
	goroutines int
	delivered  uint64
}

func run(n, rate int, duration, every time.Duration) error {
	log := hclog.New(&hclog.LoggerOptions{Name: "meshsoak", Level: hclog.Error})
	nodes := make([]*mesh.Node, n)
	got := make([]atomic.Uint64, n)
	for i := range nodes {
		node, err := mesh.New(mesh.Config{NodeID: fmt.Sprintf("soak-%d", i), Logger: log})
		if err != nil {
			return err
		}
		defer node.Close()
		if err := node.Listen("127.0.0.1:0"); err != nil {
			return err
		}
		node.On("*", func(mesh.Event) { got[i].Add(1) })
		nodes[i] = node
	}
	for i := range nodes {
		for j := i + 1; j < n; j++ {
			if _, err := nodes[i].Connect(nodes[j].Addr().String()); err != nil {
				return err
			}
		}
	}
	if err := waitLinks(nodes, n-1, 10*time.Second); err != nil {
		return err
	}

	start := time.Now()
	var samples []sample
	take := func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		var d uint64
		for i := range got {
			d += got[i].Load()
		}
		s := sample{at: time.Since(start).Round(time.Second), heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine(), delivered: d}
		samples = append(samples, s)
		fmt.Printf("t=%-6v heap=%7.2f MiB goroutines=%4d delivered=%d\n", s.at, float64(s.heap)/(1<<20), s.goroutines, s.delivered)
	}
	take()
	// Emit in batches every 10ms, round-robin over the nodes.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	sampleAt := start.Add(every)
	emitted := uint64(0)
	for k := 0; time.Since(start) < duration; {
		<-tick.C
		for range perTick {
			if err := nodes[k%n].Emit("soak", k, "payload-of-some-size-0123456789"); err != nil {
				return err
			}
			k++
			emitted++
		}
		if time.Now().After(sampleAt) {
			take()
			sampleAt = sampleAt.Add(every)
		}
	}
	want := emitted * uint64(n-1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var d uint64
		for i := range got {
			d += got[i].Load()
		}
		if d >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	take()
	return verdict(samples, emitted, want, nodes)
}

func waitLinks(nodes []*mesh.Node, want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for _, node := range nodes {
		for {
			up := 0
			for _, p := range node.Peers() {
				if p.State() == mesh.Connected {
					up++
				}
			}
			if up >= want {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d of %d links up", node.ID(), up, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// verdict compares the end of the run with its first quarter (after
// warm-up: buffers, dedup windows and pools filled once).
func verdict(s []sample, emitted, want uint64, nodes []*mesh.Node) error {
	ref := s[min(len(s)-1, max(1, len(s)/4))]
	end := s[len(s)-1]
	fmt.Printf("heap: start %.2f MiB (t=%v), after warm-up %.2f MiB (t=%v), end %.2f MiB (t=%v)\n",
		mib(s[0].heap), s[0].at, mib(ref.heap), ref.at, mib(end.heap), end.at)
	fmt.Printf("goroutines: start %d, after warm-up %d, end %d\n", s[0].goroutines, ref.goroutines, end.goroutines)
	fmt.Printf("events: emitted %d, delivered %d of %d\n", emitted, end.delivered, want)
	var dropped uint64
	for _, node := range nodes {
		st := node.Stats()
		dropped += st.Overflowed + st.Expired + st.HandlerDropped
	}
	var fails []string
	if end.heap > ref.heap+ref.heap/2+4<<20 {
		fails = append(fails, fmt.Sprintf("heap grew from %.2f to %.2f MiB after warm-up", mib(ref.heap), mib(end.heap)))
	}
	if end.goroutines > ref.goroutines+2 {
		fails = append(fails, fmt.Sprintf("goroutines grew from %d to %d", ref.goroutines, end.goroutines))
	}
	if end.delivered != want {
		fails = append(fails, fmt.Sprintf("delivered %d, want %d (drops reported: %d)", end.delivered, want, dropped))
	}
	if len(fails) > 0 {
		return fmt.Errorf("FAIL: %v", fails)
	}
	fmt.Println("verdict: PASS — heap levelled off, goroutines flat, every event delivered once")
	return nil
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
