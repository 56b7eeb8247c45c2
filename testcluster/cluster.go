package testcluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/meshopt"
	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// Network selects what carries the cluster's relay links.
type Network int

const (
	// Memory is the in-memory network of relay/memnet: deterministic,
	// synctest-friendly, with fault injection.
	Memory Network = iota
	// TCP is real TCP on 127.0.0.1.
	TCP
)

// Options shape a cluster. The zero value is a full mesh linked by Connect
// over the in-memory network.
type Options struct {
	Network  Network
	Topology Topology // links made by Connect; default FullMesh; ignored with Join
	// Join links the nodes by membership instead: every node joins through
	// node 0. Gossip runs on the in-memory network too (membership's
	// MockNetwork, partitioned with the relay network) or on 127.0.0.1 with TCP.
	Join bool
	// ActiveView, with Join, gives every node a partial view of that many
	// neighbours (mesh.Config.ActiveView) instead of a link to every
	// member; WaitConnected then waits until the links join every node to
	// every other, directly or not.
	ActiveView int
	// Seed drives the in-memory network's randomness.
	Seed int64
	// Configure adjusts node i's config before New (NodeID, Transport and
	// the addresses are set by the cluster). Logger is the test log at
	// LogLevel when it is called; it may replace or wrap it.
	Configure func(i int, c *mesh.Config)
	// KeepEvents makes every Recorder keep the events themselves.
	KeepEvents bool
	// RawHandlers makes the odd-numbered nodes record with an OnRaw
	// handler (the args lent for the call, read with Scan and RawArgs)
	// instead of On: their Recorders hold events decoded from what the
	// handler read during the call, so a check of the events' args also
	// checks the bytes lent to raw handlers.
	RawHandlers bool
	// WaitTimeout bounds every Wait helper. Default 20s (virtual inside synctest).
	WaitTimeout time.Duration
	// LogLevel for the nodes' loggers. Default: Warn, to the test log.
	LogLevel hclog.Level
}

// Cluster is N nodes of one test.
type Cluster struct {
	t      testing.TB
	opts   Options
	net    *memnet.Network
	gossip *membership.MockNetwork
	edges  [][2]int

	fmu      sync.Mutex
	group    map[string]int  // NodeID → partition group (0: none)
	isolated map[string]bool // NodeID → killed, unreachable by gossip

	mu      sync.Mutex
	nodes   []*member
	emitted map[string]int // origin NodeID → events emitted through Emit
}

type member struct {
	id     string
	host   string
	listen string // relay address to listen on (the bound one after start)
	node   *mesh.Node
	rec    *Recorder
	offs   []func()
	alive  bool
}

// New starts n nodes linked in a full mesh over the in-memory network and
// waits until every link is up. The cluster is closed by t.Cleanup.
func New(t testing.TB, n int) *Cluster {
	return NewWith(t, n, Options{})
}

// NewWith starts n nodes as opts say and waits until every link is up.
func NewWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Topology == nil {
		opts.Topology = FullMesh
	}
	if opts.WaitTimeout == 0 {
		opts.WaitTimeout = 20 * time.Second
	}
	if opts.LogLevel == hclog.NoLevel {
		opts.LogLevel = hclog.Warn
	}
	c := &Cluster{t: t, opts: opts, emitted: map[string]int{}, group: map[string]int{}, isolated: map[string]bool{}}
	if opts.Network == Memory {
		c.net = memnet.New(opts.Seed)
		if opts.Join {
			c.gossip = membership.NewMockNetwork()
		}
	}
	for i := 0; i < n; i++ {
		m := &member{id: fmt.Sprintf("node-%02d", i), host: fmt.Sprintf("n%02d", i)}
		if opts.Network == Memory {
			m.listen = m.host + ":7947"
		} else {
			m.listen = "127.0.0.1:0"
		}
		c.nodes = append(c.nodes, m)
	}
	t.Cleanup(c.Close)
	for i := range c.nodes {
		c.start(i)
	}
	if opts.Join {
		for i := 1; i < n; i++ {
			c.join(i)
		}
	} else {
		c.edges = opts.Topology(n)
		for _, e := range c.edges {
			c.connect(e[0], e[1])
		}
	}
	c.WaitConnected(t)
	return c
}

func (c *Cluster) start(i int) {
	c.t.Helper()
	m := c.nodes[i]
	cfg := mesh.Config{NodeID: m.id}
	// Before Configure, which may replace or wrap it.
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: m.id, Level: c.opts.LogLevel, Output: testWriter{c.t}})
	if c.opts.Configure != nil {
		c.opts.Configure(i, &cfg)
	}
	cfg.NodeID = m.id
	if c.opts.ActiveView > 0 {
		cfg.ActiveView = c.opts.ActiveView
	}
	if c.net != nil {
		cfg.Transport = c.net.Host(m.host)
	}
	if c.opts.Join {
		opts := meshopt.Options{FastGossip: true}
		if c.gossip != nil {
			opts.GossipTransport = c.gossip.Transport(m.id)
		} else {
			cfg.GossipAddr = "127.0.0.1:0"
		}
		meshopt.Set(&cfg, opts)
	}
	node, err := mesh.New(cfg)
	if err != nil {
		c.t.Fatalf("testcluster: node %d: %v", i, err)
	}
	if err := node.Listen(m.listen); err != nil {
		node.Close()
		c.t.Fatalf("testcluster: node %d: %v", i, err)
	}
	m.listen = node.Addr().String()
	rec := newRecorder(c.opts.KeepEvents)
	c.mu.Lock()
	m.node, m.rec, m.alive = node, rec, true
	if c.opts.RawHandlers && i%2 == 1 {
		m.offs = []func(){node.OnRaw("*", rec.recordRaw)}
	} else {
		m.offs = []func(){node.On("*", rec.record)}
	}
	c.mu.Unlock()
}

func (c *Cluster) connect(i, j int) {
	c.t.Helper()
	if _, err := c.nodes[i].node.Connect(c.nodes[j].listen); err != nil {
		c.t.Fatalf("testcluster: connect %d→%d: %v", i, j, err)
	}
}

func (c *Cluster) join(i int) {
	c.t.Helper()
	for j, m := range c.nodes {
		if j == i || !m.alive {
			continue
		}
		if _, err := c.nodes[i].node.Join(m.node.GossipAddr()); err == nil {
			return
		}
	}
	c.t.Fatalf("testcluster: node %d could not join anyone", i)
}

// N returns the number of nodes (dead ones included).
func (c *Cluster) N() int { return len(c.nodes) }

// Node returns node i's current incarnation.
func (c *Cluster) Node(i int) *mesh.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].node
}

// ID returns node i's NodeID.
func (c *Cluster) ID(i int) string { return c.nodes[i].id }

// Host returns node i's host name on the in-memory network.
func (c *Cluster) Host(i int) string { return c.nodes[i].host }

// Addr returns node i's relay address.
func (c *Cluster) Addr(i int) string { return c.nodes[i].listen }

// Recorder returns what node i's current incarnation has received.
func (c *Cluster) Recorder(i int) *Recorder {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].rec
}

// Net returns the in-memory network (nil over TCP).
func (c *Cluster) Net() *memnet.Network { return c.net }

// Alive reports whether node i runs (not killed).
func (c *Cluster) Alive(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].alive
}

// Emit emits from node i and counts the event as expected everywhere else.
func (c *Cluster) Emit(i int, name string, args ...any) {
	c.t.Helper()
	if err := c.Node(i).Emit(name, args...); err != nil {
		c.t.Fatalf("testcluster: node %d emit %q: %v", i, name, err)
	}
	c.mu.Lock()
	c.emitted[c.nodes[i].id]++
	c.mu.Unlock()
}

// Emitted returns how many events node i has emitted through Emit, over all
// its incarnations.
func (c *Cluster) Emitted(i int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.emitted[c.nodes[i].id]
}

func (c *Cluster) needMemory(op string) {
	c.t.Helper()
	if c.net == nil {
		c.t.Fatalf("testcluster: %s needs the in-memory network", op)
	}
}

// Partition splits the in-memory network: nodes in different groups cannot
// reach each other; their links are cut at once. Nodes in no group form one
// group of their own.
func (c *Cluster) Partition(groups ...[]int) {
	c.needMemory("Partition")
	hg := make([][]string, len(groups))
	for g, idx := range groups {
		for _, i := range idx {
			hg[g] = append(hg[g], c.nodes[i].host)
		}
	}
	c.net.Partition(hg...)
	c.fmu.Lock()
	clear(c.group)
	for g, idx := range groups {
		for _, i := range idx {
			c.group[c.nodes[i].id] = g + 1
		}
	}
	c.fmu.Unlock()
	c.updateGossipFilter()
}

// updateGossipFilter makes gossip follow the relay network's partitions and
// isolations.
func (c *Cluster) updateGossipFilter() {
	if c.gossip == nil {
		return
	}
	c.gossip.SetFilter(func(from, to string) bool {
		c.fmu.Lock()
		defer c.fmu.Unlock()
		return !c.isolated[from] && !c.isolated[to] && c.group[from] == c.group[to]
	})
}

// Heal removes partitions and refusals.
func (c *Cluster) Heal() {
	c.needMemory("Heal")
	c.net.Heal()
	c.fmu.Lock()
	clear(c.group)
	c.fmu.Unlock()
}

// Cut closes the current connections between nodes i and j (they redial).
func (c *Cluster) Cut(i, j int) int {
	c.needMemory("Cut")
	return c.net.Cut(c.nodes[i].host, c.nodes[j].host)
}

// SetLatency sets the one-way delay between nodes i and j.
func (c *Cluster) SetLatency(i, j int, d time.Duration) {
	c.needMemory("SetLatency")
	c.net.SetLatency(c.nodes[i].host, c.nodes[j].host, d)
}

// Kill stops node i as a crash would: on the in-memory network its
// connections and its gossip are cut before it closes, so nobody hears a
// goodbye. Stop is the graceful way.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	m := c.takeDown(i, "kill")
	if c.net != nil {
		c.net.Isolate(m.host)
	}
	c.fmu.Lock()
	c.isolated[m.id] = true
	c.fmu.Unlock()
	c.updateGossipFilter()
	c.closeNode(m)
}

// IsolateGossip cuts node i's gossip, both ways, while its relay links stay
// up (Join with the in-memory network): membership declares it dead
// everywhere, and it everyone else, as a node starved of CPU past its probe
// timeouts would be. Undone by Restart of the node, not by Heal.
func (c *Cluster) IsolateGossip(i int) {
	c.t.Helper()
	if c.gossip == nil {
		c.t.Fatal("testcluster: IsolateGossip needs Join on the in-memory network")
	}
	c.fmu.Lock()
	c.isolated[c.nodes[i].id] = true
	c.fmu.Unlock()
	c.updateGossipFilter()
}

// Stop closes node i gracefully: it leaves the cluster first.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	c.closeNode(c.takeDown(i, "stop"))
}

// takeDown marks node i not running; op names the caller in the failure.
func (c *Cluster) takeDown(i int, op string) *member {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.nodes[i]
	if !m.alive {
		c.t.Fatalf("testcluster: %s %d: not running", op, i)
	}
	m.alive = false
	return m
}

// closeNode detaches the recorder's handlers and closes the node.
func (c *Cluster) closeNode(m *member) {
	for _, off := range m.offs {
		off()
	}
	m.node.Close()
}

// Restart starts node i again with the same NodeID and relay address, and
// redials the links it had dialled (others redial it by themselves).
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if c.Alive(i) {
		c.t.Fatalf("testcluster: restart %d: still running", i)
	}
	if c.net != nil {
		c.net.Unisolate(c.nodes[i].host)
	}
	c.fmu.Lock()
	delete(c.isolated, c.nodes[i].id)
	c.fmu.Unlock()
	c.start(i)
	if c.opts.Join {
		c.join(i)
		return
	}
	for _, e := range c.edges {
		if e[0] == i {
			c.connect(i, e[1])
		}
	}
}

// Close closes every node, in parallel. It runs at t.Cleanup; calling it
// earlier is fine.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, m := range c.nodes {
		c.mu.Lock()
		alive := m.alive
		m.alive = false
		c.mu.Unlock()
		if alive {
			wg.Go(func() { m.node.Close() })
		}
	}
	wg.Wait()
}

// testWriter sends logs to the test's log, and nowhere once it has ended.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
