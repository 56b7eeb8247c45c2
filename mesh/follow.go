package mesh

import "github.com/verbosemesh/verbose/membership"

// followMoved follows a member that came back on a new address (a restart
// on new ports or a new IP, under the same NodeID) before memberlist
// accepts it there: memberlist refuses the new address while the old
// record is alive or suspect (membership reports MemberMoved). Our member
// link to it, if we dial it and the link is down, redials the new relay
// address at once; its buffer is resent to the new incarnation as after
// any reconnect. A link that is connected is left alone: then the member
// is alive at its old address and the claimant is someone else. When the
// other side dials (a higher NodeID), the restarted member dials us
// itself, and its inbound link takes the new connection.
func (n *Node) followMoved(m membership.Member) {
	if m.RelayAddr == "" || n.id > m.Name {
		return
	}
	n.mu.Lock()
	p := n.members[m.Name]
	n.mu.Unlock()
	if p == nil || p.State() == Connected || p.Addr() == m.RelayAddr {
		return
	}
	n.log.Info("member came back on a new address: following it", "peer", m.Name, "from", p.Addr(), "to", m.RelayAddr)
	p.link.Redial(m.RelayAddr)
}
