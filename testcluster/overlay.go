package testcluster

import (
	"fmt"
	"slices"
	"strings"
)

// OverlayGraph is the cluster's relay links as a graph of the running
// nodes: which node has a connected link to which.
type OverlayGraph struct {
	ids   []string            // running nodes' ids
	links map[string][]string // id → ids it has a connected link to
}

// Overlay returns the running nodes' connected links now.
func (c *Cluster) Overlay() OverlayGraph {
	g := OverlayGraph{links: map[string][]string{}}
	for i := range c.nodes {
		if c.Alive(i) {
			g.ids = append(g.ids, c.nodes[i].id)
		}
	}
	for i := range c.nodes {
		if c.Alive(i) {
			g.links[c.nodes[i].id] = connectedIDs(c.Node(i))
		}
	}
	return g
}

// Links returns the ids node id has a connected link to.
func (g OverlayGraph) Links(id string) []string { return g.links[id] }

// reached returns the running nodes reachable from the first over links
// that both ends see connected.
func (g OverlayGraph) reached() map[string]bool {
	seen := map[string]bool{}
	if len(g.ids) == 0 {
		return seen
	}
	stack := []string{g.ids[0]}
	seen[g.ids[0]] = true
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, to := range g.links[id] {
			if _, running := g.links[to]; running && !seen[to] && slices.Contains(g.links[to], id) {
				seen[to] = true
				stack = append(stack, to)
			}
		}
	}
	return seen
}

// Connected reports whether every running node reaches every other over
// links connected at both ends.
func (g OverlayGraph) Connected() bool { return len(g.reached()) == len(g.ids) }

// Unreached names the running nodes the first one does not reach.
func (g OverlayGraph) Unreached() string {
	seen := g.reached()
	var out []string
	for _, id := range g.ids {
		if !seen[id] {
			out = append(out, id)
		}
	}
	return fmt.Sprintf("%d of %d: %s", len(out), len(g.ids), strings.Join(first(out, 10), " "))
}

// Degrees returns the least and the most connected links of a running node.
func (g OverlayGraph) Degrees() (least, most int) {
	least = -1
	for _, id := range g.ids {
		d := len(g.links[id])
		if least < 0 || d < least {
			least = d
		}
		most = max(most, d)
	}
	return max(least, 0), most
}
