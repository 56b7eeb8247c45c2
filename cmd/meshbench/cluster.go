package main

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/meshopt"
	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// cluster is N nodes of one phase, in one process.
type cluster struct {
	nodes []*mesh.Node
	want  []int         // links each node has when the topology is up
	log   hclog.Logger  // the nodes' root logger, silenced at close
	raw   bool          // trackers are OnRaw handlers (--handler=raw)
	slow  time.Duration // the last node's handler spends this per event (--slow-handler)
	// partial: a partial view (--active-view): each node's links are its
	// active view's, whose size is not known ahead.
	partial bool
}

// clusterSpec says how to build a cluster.
type clusterSpec struct {
	n        int
	topology string // mesh, join, line, ring
	network  string // tcp, mem
	connect  bool   // link the nodes now (false: Listen only, gossip ready, for converge)
}

// newCluster starts the nodes and, with spec.connect, links them and waits
// for every link to be up.
func newCluster(o options, spec clusterSpec, log hclog.Logger) (*cluster, error) {
	c := &cluster{log: log, raw: o.Handler == "raw", slow: o.SlowHandler, partial: o.ActiveView > 0}
	var mnet *memnet.Network
	var gossip *membership.MockNetwork
	if spec.network == "mem" {
		mnet = memnet.New(1)
		gossip = membership.NewMockNetwork()
	}
	join := spec.topology == "join" || !spec.connect
	for i := range spec.n {
		cfg := o.meshConfig(log.Named(fmt.Sprintf("n%02d", i)))
		cfg.NodeID = fmt.Sprintf("bench-%02d", i)
		listen := "127.0.0.1:0"
		if mnet != nil {
			host := fmt.Sprintf("n%02d", i)
			cfg.Transport = mnet.Host(host)
			listen = host + ":7947"
		}
		if join {
			if gossip != nil {
				meshopt.Set(&cfg, meshopt.Options{GossipTransport: gossip.Transport(cfg.NodeID)})
			} else {
				cfg.GossipAddr = "127.0.0.1:0"
			}
		}
		node, err := mesh.New(cfg)
		if err != nil {
			c.close()
			return nil, fmt.Errorf("meshbench: node %d: %w", i, err)
		}
		c.nodes = append(c.nodes, node)
		if err := node.Listen(listen); err != nil {
			c.close()
			return nil, fmt.Errorf("meshbench: node %d: %w", i, err)
		}
	}
	c.want = wantLinks(spec.topology, spec.n)
	if !spec.connect {
		return c, nil
	}
	var err error
	if spec.topology == "join" {
		err = c.join()
	} else {
		err = c.connect(edges(spec.topology, spec.n))
	}
	if err == nil {
		err = c.waitLinks(30 * time.Second)
	}
	if err == nil && c.partial {
		c.settle(3*time.Second, time.Minute)
	}
	if err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// edges lists the Connect calls of a topology: i dials j.
func edges(topology string, n int) [][2]int {
	var out [][2]int
	switch topology {
	case "mesh", "join":
		for i := range n {
			for j := i + 1; j < n; j++ {
				out = append(out, [2]int{i, j})
			}
		}
	case "line", "ring":
		for i := 0; i+1 < n; i++ {
			out = append(out, [2]int{i, i + 1})
		}
		if topology == "ring" && n > 2 {
			out = append(out, [2]int{n - 1, 0})
		}
	}
	return out
}

// wantLinks is each node's link count once the topology is up.
func wantLinks(topology string, n int) []int {
	want := make([]int, n)
	for _, e := range edges(topology, n) {
		want[e[0]]++
		want[e[1]]++
	}
	return want
}

func (c *cluster) connect(es [][2]int) error {
	for _, e := range es {
		if _, err := c.nodes[e[0]].Connect(c.nodes[e[1]].Addr().String()); err != nil {
			return fmt.Errorf("meshbench: connect %d→%d: %w", e[0], e[1], err)
		}
	}
	return nil
}

// join has every node join through node 0; membership then links them all.
func (c *cluster) join() error {
	seed := c.nodes[0].GossipAddr()
	for i, n := range c.nodes[1:] {
		if _, err := n.Join(seed); err != nil {
			return fmt.Errorf("meshbench: node %d join %s: %w", i+1, seed, err)
		}
	}
	return nil
}

// linksUp reports whether every node has its topology's links connected
// (with a partial view: a view, and a connected link to each neighbour).
func (c *cluster) linksUp() bool {
	if c.partial {
		for _, n := range c.nodes {
			view := n.ActiveView()
			if len(view) == 0 {
				return false
			}
			for _, id := range view {
				if !slices.ContainsFunc(n.Peers(), func(p *mesh.Peer) bool { return p.ID() == id && p.State() == mesh.Connected }) {
					return false
				}
			}
		}
		return true
	}
	for i, n := range c.nodes {
		up := 0
		for _, p := range n.Peers() {
			if p.State() == mesh.Connected {
				up++
			}
		}
		if up < c.want[i] {
			return false
		}
	}
	return true
}

var errTimeout = errors.New("meshbench: timed out")

// settle waits, with a partial view, until the views and links have not
// changed for quiet (the views fill from membership after the first
// links), at most limit: a phase measures the overlay, not its growth.
func (c *cluster) settle(quiet, limit time.Duration) {
	shape := func() (n int) {
		for _, node := range c.nodes {
			n = n*31 + len(node.ActiveView())*1000 + len(node.Peers())
		}
		return n
	}
	last, since := shape(), time.Now()
	for start := time.Now(); time.Since(since) < quiet && time.Since(start) < limit; {
		time.Sleep(100 * time.Millisecond)
		if s := shape(); s != last || !c.linksUp() {
			last, since = s, time.Now()
		}
	}
}

// waitLinks polls until every link is up or the deadline passes.
func (c *cluster) waitLinks(limit time.Duration) error {
	if !waitFor(limit, time.Millisecond, c.linksUp) {
		return fmt.Errorf("%w: links not up after %v", errTimeout, limit)
	}
	return nil
}

// waitFor polls cond every step until it holds (true) or limit passes.
func waitFor(limit, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(step)
	}
	return true
}

func (c *cluster) close() {
	// Nodes closing at once make memberlist log errors about each other's
	// closed sockets: expected, not worth a reader's attention.
	if c.log != nil {
		c.log.SetLevel(hclog.Off)
	}
	// Closing in parallel keeps a 20-node phase from paying 20 leaves in a row.
	done := make(chan struct{}, len(c.nodes))
	for _, n := range c.nodes {
		go func() {
			n.Close()
			done <- struct{}{}
		}()
	}
	for range c.nodes {
		<-done
	}
	c.nodes = nil
}
