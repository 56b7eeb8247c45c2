package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// blastResult is the mesh throughput phase's figures.
type blastResult struct {
	Topology           string  `json:"topology"`
	Receivers          int     `json:"receivers"`
	Events             int64   `json:"events"`
	Seconds            float64 `json:"seconds"` // first Emit to the last receiver complete
	EmitSeconds        float64 `json:"emit_s"`  // first to last Emit
	EvPerSec           float64 `json:"ev_s"`    // events/s delivered per receiver
	Loss               int64   `json:"loss"`    // summed over receivers
	Dups               int64   `json:"dups"`    // summed over receivers
	Reordered          int64   `json:"reordered"`
	Redundancy         float64 `json:"redundancy"` // event frames received per event per receiver
	Forwarded          uint64  `json:"forwarded"`
	HandlerDropped     uint64  `json:"handler_dropped"`
	Overflowed         uint64  `json:"overflowed"`
	DeclaredLost       uint64  `json:"declared_lost"` // deliveries the receivers declared lost (Stats.Skipped): loss beyond it is not yet delivered
	EmitErrors         int64   `json:"emit_errors"`
	NoticesPerDelivery float64 `json:"notices_per_delivery"` // IHAVE batches sent, over all nodes, per delivery
	Grafts             uint64  `json:"grafts"`               // GRAFTs sent, over all nodes
	GraftResent        uint64  `json:"graft_resent"`         // events resent to answer them
	EmitWaits          uint64  `json:"emit_waits"`           // Emit calls that waited for back-pressure
	EmitWaited         float64 `json:"emit_waited_s"`        // the time they waited, in all
	WarmupSeconds      float64 `json:"warmup_s,omitempty"`   // the unmeasured blast before (--warmup), first Emit to complete
	// CPUPerDelivery is the process's CPU time per event delivered to a
	// receiver's handler, in ns, everything included (emit, links, routing,
	// handlers, GC): the figure to compare across commits on a busy machine.
	CPUPerDelivery float64 `json:"cpu_ns_per_delivery"`
}

// latencyResult is a paced phase's figures, at the measured receivers.
type latencyResult struct {
	quantiles
	Topology string `json:"topology"`
	Nodes    int    `json:"nodes"`
	Rate     int    `json:"rate"`
	Loss     int64  `json:"loss"`
	Dups     int64  `json:"dups"`
}

// processCPU is the CPU time the process has used so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpuPerDelivery(cpu time.Duration, deliveries int64) float64 {
	if deliveries <= 0 || cpu <= 0 {
		return 0
	}
	return float64(cpu.Nanoseconds()) / float64(deliveries)
}

// eventArgs builds the args of event idx: index, timestamp, padding (a
// []byte, boxed by the caller once for all events).
func eventArgs(pad any, idx int64, ts int64) []any {
	return []any{idx, ts, pad}
}

// attach registers a tracker on every node but the emitter (node 0).
// With --handler=raw (c.raw) it is an OnRaw handler that Scans.
func attach(c *cluster, latency bool, expect int) (ts []*tracker, off func()) {
	var offs []func()
	for i, n := range c.nodes[1:] {
		t := newTracker(latency, expect)
		ts = append(ts, t)
		onRaw, on := t.onRaw, t.on
		if c.slow > 0 && i == len(c.nodes)-2 {
			// --slow-handler: the last node's handler works this long per
			// event (a busy loop: time.Sleep cannot sleep microseconds).
			onRaw = func(e mesh.Event) { spin(c.slow); t.onRaw(e) }
			on = func(e mesh.Event) { spin(c.slow); t.on(e) }
		}
		if c.raw {
			offs = append(offs, n.OnRaw("*", onRaw))
		} else {
			offs = append(offs, n.On("*", on))
		}
	}
	return ts, func() {
		for _, f := range offs {
			f()
		}
	}
}

// spin keeps the goroutine busy for d.
func spin(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// drain waits until every tracker has sent distinct events, at most limit.
func drain(ts []*tracker, sent int64, limit time.Duration) bool {
	return waitFor(limit, 200*time.Microsecond, func() bool {
		for _, t := range ts {
			if t.distinct.Load() < sent {
				return false
			}
		}
		return true
	})
}

// sumStats sums the Stats of every node (for mesh.Stats.Sub).
func sumStats(c *cluster) (sum mesh.Stats) {
	for _, n := range c.nodes {
		sum = sum.Add(n.Stats())
	}
	return sum
}

// blast emits from node 0 as fast as Emit returns for o.Duration, then
// waits (bounded) for every receiver to have every event. With o.Warmup it
// first blasts that long unmeasured, so that the figures are the steady
// state's: every node's stores, link buffers and heap have reached their
// working size (with 100 nodes in one process that is ~17 MB of memory
// touched for the first time per node, page faults a 10 s blast does not
// amortize). The warm-up's events are checked as the measured ones are:
// its losses, duplicates and reorders are added to the result.
func blast(o options, c *cluster) (blastResult, error) {
	if o.Warmup <= 0 {
		return blastFor(o, c, o.Duration, true)
	}
	progress("blast: warm-up for %v, not measured", o.Warmup)
	w, err := blastFor(o, c, o.Warmup, false)
	if err != nil {
		return w, err
	}
	r, err := blastFor(o, c, o.Duration, true)
	r.WarmupSeconds = w.Seconds
	r.Loss += w.Loss
	r.Dups += w.Dups
	r.Reordered += w.Reordered
	r.DeclaredLost += w.DeclaredLost
	r.EmitErrors += w.EmitErrors
	return r, err
}

// blastFor is one blast of length; profile: the profiles of o are written.
func blastFor(o options, c *cluster, length time.Duration, profile bool) (blastResult, error) {
	r := blastResult{Topology: o.Topology, Receivers: len(c.nodes) - 1}
	ts, off := attach(c, false, 0)
	defer off()
	before := sumStats(c)
	if !profile {
		o.CPUProfile, o.MemProfile = "", ""
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return r, fmt.Errorf("meshbench: cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return r, fmt.Errorf("meshbench: cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	emitter := c.nodes[0]
	pad := any(make([]byte, o.Size-16)) // boxed once: Emit encodes it, and never keeps it
	st0 := emitter.Stats()
	cpu0 := processCPU()
	start := time.Now()
	end := start.Add(length)
	// Emit may wait for back-pressure up to Config.Timeout per peer; the
	// context keeps a stuck cluster from stretching the phase past its bound.
	ctx, cancel := context.WithDeadline(context.Background(), end.Add(5*time.Second))
	defer cancel()
	var sent int64
	for ; ; sent++ {
		if sent%256 == 0 && time.Now().After(end) {
			break
		}
		if err := emitter.EmitContext(ctx, "blast", eventArgs(pad, sent, 0)...); err != nil {
			r.EmitErrors++
			progress("blast: emit stopped: %v", err)
			break
		}
	}
	r.EmitSeconds = time.Since(start).Seconds()
	st := emitter.Stats().Sub(st0)
	r.EmitWaits, r.EmitWaited = st.EmitWaits, st.EmitWaited.Seconds()
	complete := drain(ts, sent, max(10*time.Second, 3*length))
	elapsed := time.Since(start)
	r.CPUPerDelivery = cpuPerDelivery(processCPU()-cpu0, sent*int64(len(ts)))
	if o.CPUProfile != "" {
		pprof.StopCPUProfile()
	}
	if o.MemProfile != "" {
		if err := writeHeapProfile(o.MemProfile); err != nil {
			return r, err
		}
	}
	d := sumStats(c).Sub(before)
	r.Events, r.Seconds = sent, elapsed.Seconds()
	r.EvPerSec = float64(sent) / elapsed.Seconds()
	for _, t := range ts {
		tr := t.result(sent)
		r.Loss += tr.Loss
		r.Dups += tr.Dups
		r.Reordered += tr.Reordered + tr.Malformed
	}
	if sent > 0 {
		r.Redundancy = float64(d.Received) / float64(sent*int64(r.Receivers))
		r.NoticesPerDelivery = float64(d.Notices) / float64(sent*int64(r.Receivers))
	}
	r.Forwarded, r.HandlerDropped, r.Overflowed, r.DeclaredLost = d.Forwarded, d.HandlerDropped, d.Overflowed, d.Skipped
	r.Grafts, r.GraftResent = d.Grafts, d.GraftResent
	if !complete {
		progress("blast: receivers incomplete after the drain limit: loss reported")
	}
	return r, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("meshbench: memprofile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		return fmt.Errorf("meshbench: memprofile: %w", err)
	}
	return nil
}

// paced emits from node 0 at o.Rate for o.Duration and reports the latency
// measured at the receivers in measure (indexes into c.nodes[1:]; nil: all).
func paced(o options, c *cluster, topology string, measure []int) (latencyResult, error) {
	total := int64(o.Duration.Seconds() * float64(o.Rate))
	r := latencyResult{Topology: topology, Nodes: len(c.nodes), Rate: o.Rate}
	ts, off := attach(c, true, int(total))
	defer off()
	pad := any(make([]byte, o.Size-16)) // boxed once: Emit encodes it, and never keeps it
	p := newPacer(o.Rate)
	emitter := c.nodes[0]
	var sent int64
	for ; sent < total; sent++ {
		p.wait(int(sent))
		if err := emitter.Emit("lat", eventArgs(pad, sent, time.Now().UnixNano())...); err != nil {
			return r, fmt.Errorf("meshbench: latency emit: %w", err)
		}
	}
	drain(ts, sent, 10*time.Second)
	if measure == nil {
		for i := range ts {
			measure = append(measure, i)
		}
	}
	var all []int64
	for _, i := range measure {
		tr := ts[i].result(sent)
		r.Loss += tr.Loss
		r.Dups += tr.Dups
		all = append(all, tr.Samples...)
	}
	r.quantiles = quantilesOf(all)
	return r, nil
}

// memoryResult is the memory phase's figures.
type memoryResult struct {
	Nodes              int     `json:"nodes"`
	HeapPerNodeRest    int64   `json:"heap_per_node_b"`          // links up, nothing in flight
	LinksPerNode       float64 `json:"links_per_node"`           // relay links, mean
	GoroutinesPerNode  float64 `json:"goroutines_per_node"`      // at rest, mean
	HeapPerNodeBuffers int64   `json:"heap_per_node_buffered_b"` // the live nodes, with events held for the absent peer
	Buffered           int     `json:"buffered"`                 // events held over all live nodes' links
	BytesPerBuffered   float64 `json:"bytes_per_buffered_event"`
	Events             int     `json:"events"`
}

func heapNow() int64 {
	runtime.GC()
	runtime.GC() // the second cycle frees what the first one's finalizers released
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// memory measures heap per node at rest, then closes the last node and
// emits events from node 0 so that every live node buffers them for it.
func memory(o options, log loggerFn) (memoryResult, error) {
	const events = 1000
	r := memoryResult{Nodes: o.Nodes, Events: events}
	base, g0 := heapNow(), runtime.NumGoroutine()
	c, err := newCluster(o, clusterSpec{n: o.Nodes, topology: o.Topology, network: o.Network, connect: true}, log())
	if err != nil {
		return r, err
	}
	defer c.close()
	r.HeapPerNodeRest = (heapNow() - base) / int64(o.Nodes)
	r.GoroutinesPerNode = float64(runtime.NumGoroutine()-g0) / float64(o.Nodes)
	for _, n := range c.nodes {
		r.LinksPerNode += float64(len(n.Peers())) / float64(o.Nodes)
	}

	gone := c.nodes[len(c.nodes)-1]
	live := &cluster{nodes: c.nodes[:len(c.nodes)-1]}
	gone.Close()
	// Wait until the links to the absent peer know it is gone, so that Emit
	// buffers for it instead of waiting for its acknowledgements.
	waitFor(10*time.Second, time.Millisecond, func() bool {
		for _, n := range live.nodes {
			for _, p := range n.Peers() {
				if p.ID() == gone.ID() && p.State() == mesh.Connected {
					return false
				}
			}
		}
		return true
	})
	ts, off := attach(live, false, 0)
	defer off()
	rest := heapNow()
	pad := any(make([]byte, o.Size-16)) // boxed once: Emit encodes it, and never keeps it
	for i := range events {
		if err := c.nodes[0].Emit("mem", eventArgs(pad, int64(i), 0)...); err != nil {
			return r, fmt.Errorf("meshbench: memory emit: %w", err)
		}
	}
	drain(ts, events, 10*time.Second)
	// Every link to a live peer is acknowledged; only the absent one holds events.
	waitFor(5*time.Second, time.Millisecond, func() bool {
		for _, n := range live.nodes {
			for _, p := range n.Peers() {
				if p.ID() != gone.ID() && p.Buffered() > 0 {
					return false
				}
			}
		}
		return true
	})
	held := heapNow()
	for _, n := range live.nodes {
		r.Buffered += n.Stats().Buffered
	}
	r.HeapPerNodeBuffers = (held - base) / int64(len(live.nodes))
	if r.Buffered > 0 {
		r.BytesPerBuffered = float64(held-rest) / float64(r.Buffered)
	}
	return r, nil
}

// convergeResult is the time from the first Join to every link up.
type convergeResult struct {
	Nodes   int     `json:"nodes"`
	Seconds float64 `json:"seconds"`
	Links   int     `json:"links"`
}

func converge(o options, n int, log loggerFn) (convergeResult, error) {
	r := convergeResult{Nodes: n, Links: n * (n - 1) / 2}
	c, err := newCluster(o, clusterSpec{n: n, topology: "join", network: o.Network}, log())
	if err != nil {
		return r, err
	}
	defer c.close()
	start := time.Now()
	if err := c.join(); err != nil {
		return r, err
	}
	if err := c.waitLinks(60 * time.Second); err != nil {
		return r, err
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
}
