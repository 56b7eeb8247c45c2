package testcluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// waitFor polls cond until it holds or the cluster's WaitTimeout passes,
// waking on every delivery and at least every 5ms. On timeout it fails the
// test with what() describing the state.
func (c *Cluster) waitFor(t testing.TB, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(c.opts.WaitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("testcluster: timed out after %v: %s", c.opts.WaitTimeout, what())
		case <-tick.C:
		}
	}
}

// neighbours returns the NodeIDs node i should have a connected link to.
func (c *Cluster) neighbours(i int) []string {
	var ids []string
	if c.opts.Join {
		for j, m := range c.nodes {
			if j != i && c.Alive(j) {
				ids = append(ids, m.id)
			}
		}
		return ids
	}
	for _, e := range c.edges {
		switch {
		case e[0] == i && c.Alive(e[1]):
			ids = append(ids, c.nodes[e[1]].id)
		case e[1] == i && c.Alive(e[0]):
			ids = append(ids, c.nodes[e[0]].id)
		}
	}
	return ids
}

func connectedIDs(n *mesh.Node) []string {
	var ids []string
	for _, p := range n.Peers() {
		if p.State() == mesh.Connected {
			ids = append(ids, p.ID())
		}
	}
	return ids
}

// WaitConnected waits until every running node has a connected link to
// each of its running neighbours.
func (c *Cluster) WaitConnected(t testing.TB) {
	t.Helper()
	if c.opts.Join && c.partialView() {
		c.waitFor(t, func() string { return "the links do not join every node: " + c.Overlay().Unreached() },
			func() bool { return c.Overlay().Connected() })
		return
	}
	missing := func() []string {
		var out []string
		for i := range c.nodes {
			if !c.Alive(i) {
				continue
			}
			have := connectedIDs(c.Node(i))
			for _, id := range c.neighbours(i) {
				if !slices.Contains(have, id) {
					out = append(out, fmt.Sprintf("%s→%s", c.nodes[i].id, id))
				}
			}
		}
		return out
	}
	c.waitFor(t, func() string { return "links not connected: " + strings.Join(missing(), " ") },
		func() bool { return len(missing()) == 0 })
}

// partialView reports whether the nodes keep a partial view (Options.ActiveView,
// or a Configure that sets mesh.Config.ActiveView or MaxPeers).
func (c *Cluster) partialView() bool {
	if c.opts.ActiveView > 0 {
		return true
	}
	for i := range c.nodes {
		if c.Alive(i) {
			return c.Node(i).ActiveView() != nil
		}
	}
	return false
}

// WaitDelivered waits until at least nodes running nodes have each received
// perNode events named name ("*": any name).
func (c *Cluster) WaitDelivered(t testing.TB, name string, perNode, nodes int) {
	t.Helper()
	counts := func() []int {
		var out []int
		for i := range c.nodes {
			if c.Alive(i) {
				out = append(out, c.Recorder(i).Count(name))
			}
		}
		return out
	}
	c.waitFor(t, func() string {
		return fmt.Sprintf("want %d nodes with %d %q events; counts per running node: %v", nodes, perNode, name, counts())
	}, func() bool {
		ok := 0
		for _, n := range counts() {
			if n >= perNode {
				ok++
			}
		}
		return ok >= nodes
	})
	c.CheckViolations(t)
}

// WaitFromOrigin waits until node i has received want events from node
// origin's id.
func (c *Cluster) WaitFromOrigin(t testing.TB, i, origin, want int) {
	t.Helper()
	id := c.nodes[origin].id
	c.waitFor(t, func() string {
		return fmt.Sprintf("node %d has %d events from %s, want %d", i, c.Recorder(i).FromOrigin(id), id, want)
	}, func() bool { return c.Recorder(i).FromOrigin(id) >= want })
	c.CheckViolations(t)
}

// WaitAll waits until every running node has received, from every other
// node, exactly as many events as that node emitted through Cluster.Emit
// (counting from the receiver's current incarnation's start, so use it when
// no node was restarted, or after restarts re-emit), then checks that
// nothing arrived twice or out of order.
func (c *Cluster) WaitAll(t testing.TB) {
	t.Helper()
	lacking := func() []string {
		var out []string
		for i := range c.nodes {
			if !c.Alive(i) {
				continue
			}
			rec := c.Recorder(i)
			for j := range c.nodes {
				if i == j {
					continue
				}
				want, got := c.Emitted(j), rec.FromOrigin(c.nodes[j].id)
				if got != want {
					out = append(out, fmt.Sprintf("node %d has %d/%d from node %d", i, got, want, j))
				}
			}
		}
		return out
	}
	c.waitFor(t, func() string { return strings.Join(lacking(), "; ") }, func() bool { return len(lacking()) == 0 })
	c.CheckViolations(t)
}

// CheckViolations fails the test if any node received an event twice or an
// origin's events out of order.
func (c *Cluster) CheckViolations(t testing.TB) {
	t.Helper()
	for i := range c.nodes {
		if v := c.Recorder(i).Violations(); len(v) > 0 {
			if len(v) > 10 {
				v = append(v[:10], fmt.Sprintf("… and %d more", len(v)-10))
			}
			t.Fatalf("testcluster: node %d: %s", i, strings.Join(v, "; "))
		}
	}
}
