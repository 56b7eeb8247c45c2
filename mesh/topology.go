package mesh

import (
	"slices"
	"strings"

	"github.com/verbosemesh/verbose/mesh/internal/plumtree"
)

// SystemPrefix starts the names of system events, such as the agent's
// "$topology" reports: "*" handlers (On and OnRaw) never see them; a
// handler registered under the exact name does. They travel, and are
// counted, like any other event.
const SystemPrefix = "$"

// IsSystemEvent reports whether name is a system event's (SystemPrefix).
func IsSystemEvent(name string) bool { return strings.HasPrefix(name, SystemPrefix) }

// EagerPeers returns this node's place in the broadcast trees: for each
// origin it knows (itself included), the NodeIDs of the peers it sends
// that origin's events to in full, sorted. Its other links carry only
// notices of that origin's events (lazy), or nothing when the peer is the
// origin. With Config.Flood every link is eager for every origin. A link
// before its handshake (no NodeID yet) is left out.
//
// It walks every (origin, link) pair under the router's lock: for views
// polled every second or so, not for the event path.
func (n *Node) EagerPeers() map[string][]string {
	r := n.router
	out := map[string][]string{}
	r.mu.Lock()
	r.tree.EachEager(func(origin string, p plumtree.PeerID) {
		if int(p) >= len(r.peers) || r.peers[p].link == nil {
			return
		}
		if id := r.peers[p].link.RemoteID(); id != "" {
			out[origin] = append(out[origin], id)
		}
	})
	r.mu.Unlock()
	for _, ids := range out {
		slices.Sort(ids)
	}
	return out
}
