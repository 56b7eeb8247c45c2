package testcluster

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

// Chaos is one seeded fault-injection run: a cluster on the in-memory
// network where several nodes emit continuously while a scheduler cuts
// links, partitions the cluster, delays links and kills and restarts nodes
// (same NodeID, new boot). At the end every fault is healed and the checker
// (chaos_check.go) asserts the guarantees of DESIGN.md (at the repository root) on every node.
//
// Run it inside testing/synctest: time is virtual, so minutes of faults take
// a second, and one seed replays the same fault schedule (the interleaving
// of the nodes' goroutines may still differ between runs).
//
// By default the bounds are chosen so that nothing may be dropped:
// BufferMax above every event of the run, BufferTimeout and ReorderTimeout
// above the longest outage. The checker then asserts zero loss outright.
// Set Configure to tighten them; the checker then accepts, per receiver, as
// many missing events as Overflow and Expired reports account for.
type Chaos struct {
	Seed     int64
	Nodes    int           // default 5
	Topology Topology      // links made by Connect; default FullMesh; ignored with Join
	Join     bool          // link by membership instead of Connect
	Emitters int           // how many nodes emit (a seeded choice); default min(Nodes, 4)
	Steps    int           // scheduler steps; default 60
	Step     time.Duration // virtual time per step; default 500ms
	Rate     int           // events per emitter per step; default 4
	Kills    bool          // let the scheduler kill and restart nodes
	// MaxOutage bounds a partition, a kill and a latency episode. Default 20s.
	MaxOutage time.Duration
	// MaxLatency bounds an injected one-way delay. Default 300ms.
	MaxLatency time.Duration
	// Configure adjusts every node's config after the chaos defaults.
	Configure func(i int, c *mesh.Config)
	// Flood turns mesh's epidemic broadcast tree off (mesh.Config.Flood),
	// to tell a tree bug from a flooding one.
	Flood bool
	// AllowLate accepts, per receiver, as many out-of-order deliveries as
	// its Stats().Late counts (events delivered after a skip declared them
	// lost). Off: any reorder fails the run.
	AllowLate bool
}

// ChaosOp is one fault of a schedule.
type ChaosOp struct {
	Step   int
	Kind   string // cut, partition, heal, kill, restart, latency
	A, B   int
	Groups [][]int
	Delay  time.Duration
}

func (o ChaosOp) String() string {
	switch o.Kind {
	case "cut":
		return fmt.Sprintf("step %d: cut %d-%d", o.Step, o.A, o.B)
	case "partition":
		return fmt.Sprintf("step %d: partition %v", o.Step, o.Groups)
	case "kill", "restart":
		return fmt.Sprintf("step %d: %s %d", o.Step, o.Kind, o.A)
	case "latency":
		return fmt.Sprintf("step %d: latency %d-%d %v", o.Step, o.A, o.B, o.Delay)
	}
	return fmt.Sprintf("step %d: %s", o.Step, o.Kind)
}

func (ch Chaos) withDefaults() Chaos {
	if ch.Nodes == 0 {
		ch.Nodes = 5
	}
	if ch.Topology == nil {
		ch.Topology = FullMesh
	}
	if ch.Emitters == 0 {
		ch.Emitters = min(ch.Nodes, 4)
	}
	if ch.Steps == 0 {
		ch.Steps = 60
	}
	if ch.Step == 0 {
		ch.Step = 500 * time.Millisecond
	}
	if ch.Rate == 0 {
		ch.Rate = 4
	}
	if ch.MaxOutage == 0 {
		ch.MaxOutage = 20 * time.Second
	}
	if ch.MaxLatency == 0 {
		ch.MaxLatency = 300 * time.Millisecond
	}
	return ch
}

// Schedule returns the faults of this seed, in step order, and the emitting
// nodes. It is a pure function of the Chaos value.
func (ch Chaos) Schedule() (ops []ChaosOp, emitters []int) {
	ch = ch.withDefaults()
	r := rand.New(rand.NewPCG(uint64(ch.Seed), 0xc4a05))
	emitters = r.Perm(ch.Nodes)[:ch.Emitters]
	slices.Sort(emitters)
	maxSteps := max(1, int(ch.MaxOutage/ch.Step))
	partEnd, dead, deadEnd := -1, -1, 0
	latEnd := map[[2]int]int{}
	pair := func() (int, int) {
		a := r.IntN(ch.Nodes)
		b := (a + 1 + r.IntN(ch.Nodes-1)) % ch.Nodes
		return min(a, b), max(a, b)
	}
	endFaults := func(s int, all bool) {
		if partEnd >= 0 && (all || s >= partEnd) {
			ops = append(ops, ChaosOp{Step: s, Kind: "heal"})
			partEnd = -1
		}
		if dead >= 0 && (all || s >= deadEnd) {
			ops = append(ops, ChaosOp{Step: s, Kind: "restart", A: dead})
			dead = -1
		}
		for _, p := range sortedPairs(latEnd) {
			if all || s >= latEnd[p] {
				ops = append(ops, ChaosOp{Step: s, Kind: "latency", A: p[0], B: p[1]})
				delete(latEnd, p)
			}
		}
	}
	for s := 0; s < ch.Steps; s++ {
		endFaults(s, false)
		switch k := r.IntN(10); {
		case k < 3:
			a, b := pair()
			ops = append(ops, ChaosOp{Step: s, Kind: "cut", A: a, B: b})
		// With Join, a node restarted alone in its half could join no one:
		// kills and partitions take turns.
		case k == 3 && partEnd < 0 && (!ch.Join || dead < 0):
			perm := r.Perm(ch.Nodes)
			cut := 1 + r.IntN(ch.Nodes-1)
			g1, g2 := slices.Sorted(slices.Values(perm[:cut])), slices.Sorted(slices.Values(perm[cut:]))
			ops = append(ops, ChaosOp{Step: s, Kind: "partition", Groups: [][]int{g1, g2}})
			partEnd = s + 1 + r.IntN(maxSteps)
		case k == 4 && ch.Kills && dead < 0 && (!ch.Join || partEnd < 0):
			dead, deadEnd = r.IntN(ch.Nodes), s+1+r.IntN(maxSteps)
			ops = append(ops, ChaosOp{Step: s, Kind: "kill", A: dead})
		case k == 5:
			a, b := pair()
			d := time.Duration(1 + r.Int64N(int64(ch.MaxLatency)))
			ops = append(ops, ChaosOp{Step: s, Kind: "latency", A: a, B: b, Delay: d})
			latEnd[[2]int{a, b}] = s + 1 + r.IntN(maxSteps)
		}
	}
	endFaults(ch.Steps, true)
	return ops, emitters
}

func sortedPairs(m map[[2]int]int) [][2]int {
	out := make([][2]int, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	return out
}

// Run builds the cluster, plays the schedule while the emitters emit, heals
// everything, waits for delivery and checks. Call it inside synctest.Test.
// On failure it logs the seed and the whole schedule.
func (ch Chaos) Run(t *testing.T) {
	t.Helper()
	ch = ch.withDefaults()
	ops, emitters := ch.Schedule()
	t.Cleanup(func() {
		if t.Failed() {
			var b strings.Builder
			fmt.Fprintf(&b, "chaos seed %d (%d nodes, join=%v, kills=%v), emitters %v, schedule:\n",
				ch.Seed, ch.Nodes, ch.Join, ch.Kills, emitters)
			for _, op := range ops {
				fmt.Fprintf(&b, "  %s\n", op)
			}
			t.Log(b.String())
		}
	})
	total := ch.Steps * ch.Emitters * ch.Rate
	r := &chaosRun{ch: ch, t: t, emitters: emitters, inc: make([]int, ch.Nodes),
		count: make([]map[int]int, ch.Nodes), waiting: make([]bool, ch.Nodes), since: make([]map[int][2]int, ch.Nodes)}
	for i := range r.count {
		r.count[i] = map[int]int{}
	}
	r.c = NewWith(t, ch.Nodes, Options{
		Topology: ch.Topology, Join: ch.Join, Seed: ch.Seed, KeepEvents: true, RawHandlers: true,
		LogLevel:    hclog.Error,
		WaitTimeout: 10 * time.Minute,
		Configure: func(i int, c *mesh.Config) {
			// Bounds that cannot be reached: zero loss is then the contract.
			c.BufferMax = 2*total + 100
			c.BufferTimeout = time.Hour
			c.ReorderTimeout = 2 * time.Minute
			c.Flood = ch.Flood
			if ch.Configure != nil {
				ch.Configure(i, c)
			}
		},
	})
	r.cache, r.index = map[*Recorder]*received{}, map[string]int{}
	for i := range ch.Nodes {
		r.index[r.c.ID(i)] = i
	}
	next := 0
	for s := 0; s <= ch.Steps; s++ {
		if s < ch.Steps {
			r.emit(ch.Rate / 2)
		}
		for ; next < len(ops) && ops[next].Step == s; next++ {
			r.apply(ops[next])
		}
		if s < ch.Steps {
			r.emit(ch.Rate - ch.Rate/2)
			time.Sleep(ch.Step)
		}
	}
	r.finish()
}

// chaosRun is the state of one Run, owned by the test goroutine.
type chaosRun struct {
	ch       Chaos
	t        *testing.T
	c        *Cluster
	emitters []int
	inc      []int            // node → current incarnation
	count    []map[int]int    // node → incarnation → events emitted
	since    []map[int][2]int // node → origin → (incarnation, count) when the node was last killed
	past     []incarnation    // incarnations that were killed
	// waiting marks a restarted emitter that does not emit until it has a
	// link to every running neighbour: Emit buffers only for the links a
	// node has, and a restarted node forgot its inbound ones until their
	// dialers come back (an event emitted before is lost by contract).
	waiting []bool

	cache map[*Recorder]*received // the checker's reading of each recorder
	index map[string]int          // NodeID → node
}

func (r *chaosRun) emit(n int) {
	for _, i := range r.emitters {
		if !r.c.Alive(i) || (r.waiting[i] && !r.linked(i)) {
			continue
		}
		r.waiting[i] = false
		for range n {
			k := r.count[i][r.inc[i]]
			if err := r.c.Node(i).Emit("chaos", r.inc[i], k); err != nil {
				r.t.Fatalf("chaos: node %d emit: %v", i, err)
			}
			r.count[i][r.inc[i]] = k + 1
		}
	}
}

// linked reports whether node i has a link (in any state: a disconnected
// link buffers) to every running neighbour.
func (r *chaosRun) linked(i int) bool {
	have := map[string]bool{}
	for _, p := range r.c.Node(i).Peers() {
		have[p.ID()] = true
		have[p.Addr()] = p.Outbound() // dialled: buffers before its first handshake
	}
	for _, id := range r.c.neighbours(i) {
		if !have[id] && !have[r.c.Addr(r.index[id])] {
			return false
		}
	}
	return true
}

func (r *chaosRun) apply(op ChaosOp) {
	c := r.c
	switch op.Kind {
	case "cut":
		c.Cut(op.A, op.B)
	case "partition":
		c.Partition(op.Groups...)
	case "heal":
		c.Heal()
	case "latency":
		c.SetLatency(op.A, op.B, op.Delay)
	case "kill":
		i := op.A
		r.past = append(r.past, incarnation{node: i, inc: r.inc[i], rec: c.Recorder(i), stats: c.Node(i).Stats(), since: r.since[i]})
		c.Kill(i)
		snap := map[int][2]int{}
		for o := range r.count {
			snap[o] = [2]int{r.inc[o], r.count[o][r.inc[o]]}
		}
		r.since[i] = snap
	case "restart":
		r.inc[op.A]++
		r.waiting[op.A] = true
		c.Restart(op.A)
	}
}
