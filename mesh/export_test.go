package mesh

import "github.com/verbosemesh/verbose/membership"

// TreeProvider returns the remote id of the link n last got a fresh event
// of origin over: its parent in origin's tree ("" if none). For tests that
// need to cut or slow an eager path.
func TreeProvider(n *Node, origin string) string {
	r := n.router
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.tree.Provider(origin)
	if p < 0 || r.peers[p].link == nil {
		return ""
	}
	return r.peers[p].link.RemoteID()
}

// ReleaseLeft releases id as if membership had reported it left.
func ReleaseLeft(n *Node, id string) { n.releaseLeft(id) }

// DeclareDead hands n a membership report that member id failed (gossip's
// failure detector, which errs under load), as memberlist would.
func DeclareDead(n *Node, id string) {
	for _, m := range n.mem.Members() {
		if m.Name == id {
			m.State = membership.StateDead
			n.memberEvent(membership.Event{Kind: membership.MemberLeave, Member: m})
			return
		}
	}
	panic("DeclareDead: no member " + id)
}
