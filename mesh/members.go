package mesh

import (
	"fmt"
	"net"
	"time"

	"github.com/verbosemesh/verbose/membership"
	"github.com/verbosemesh/verbose/relay"
)

// Member is one node of the cluster as memberlist sees it.
type Member struct {
	Name      string // the member's NodeID
	Addr      string // its gossip host:port
	RelayAddr string // where it accepts relay links ("" if it does not listen)
	State     string // "alive", "suspect", "dead" or "left"
}

func (n *Node) startMembership() error {
	mem, err := membership.New(membership.Config{
		NodeID:        n.id,
		Channel:       n.cfg.Channel,
		BindAddr:      n.cfg.GossipAddr,
		AdvertiseAddr: n.cfg.AdvertiseAddr,
		Key:           n.cfg.GossipKey,
		Meta:          membership.Meta{Channel: n.cfg.Channel, Version: relay.Version},
		Logger:        n.log,
		Events:        n.memberEvent,
		MetricSink:    n.cfg.MetricSink,
		GlobalMetrics: n.cfg.GlobalMetrics,
		Transport:     n.cfg.options().GossipTransport,
		ProbeFast:     n.cfg.options().FastGossip,
	})
	if err != nil {
		return fmt.Errorf("mesh: membership: %w", err)
	}
	n.mem = mem
	return nil
}

func (n *Node) stopMembership() error {
	var err error
	if lerr := n.mem.Leave(min(n.cfg.Timeout, 3*time.Second)); lerr != nil {
		n.log.Warn("leaving the cluster", "error", lerr)
	}
	if serr := n.mem.Shutdown(); serr != nil {
		err = fmt.Errorf("mesh: membership shutdown: %w", serr)
	}
	return err
}

// advertiseRelay tells the cluster where our relay listener is. A wildcard
// bind address is replaced by the gossip address's host.
func (n *Node) advertiseRelay(addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ghost, _, err := net.SplitHostPort(n.mem.Local().Addr); err == nil {
			host = ghost
		}
	}
	meta := membership.Meta{RelayAddr: net.JoinHostPort(host, port), Channel: n.cfg.Channel, Version: relay.Version}
	if err := n.mem.SetMeta(meta); err != nil {
		n.log.Warn("cannot advertise the relay address", "error", err)
	}
}

// Join joins the cluster through the given seeds' gossip addresses and
// returns how many answered. Members of this node's channel are then
// linked automatically: the member with the lower NodeID dials.
func (n *Node) Join(seeds ...string) (int, error) {
	if n.mem == nil {
		return 0, ErrNoMembership
	}
	if n.isClosed() {
		return 0, ErrClosed
	}
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: join: no seed given", ErrBadAddress)
	}
	for _, s := range seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return 0, fmt.Errorf("%w: join %q: %v", ErrBadAddress, s, err)
		}
	}
	return n.mem.Join(seeds...)
}

// Members returns memberlist's view of the cluster, this node included.
// Without GossipAddr it returns nil.
func (n *Node) Members() []Member {
	if n.mem == nil {
		return nil
	}
	ms := n.mem.Members()
	out := make([]Member, 0, len(ms))
	for _, m := range ms {
		out = append(out, Member{Name: m.Name, Addr: m.Addr, RelayAddr: m.RelayAddr, State: m.State})
	}
	return out
}

// GossipAddr returns the bound gossip host:port, "" without membership.
func (n *Node) GossipAddr() string {
	if n.mem == nil {
		return ""
	}
	return n.mem.Addr()
}

// memberEvent links members of our channel as they appear: one link per
// pair, dialled by the lower NodeID. A member that leaves or dies keeps its
// link (disconnected, redialling, buffering) until BufferTimeout expires it.
func (n *Node) memberEvent(ev membership.Event) {
	m := ev.Member
	if m.Name == n.id || m.Channel != n.cfg.Channel || m.Version != relay.Version {
		return
	}
	if ev.Kind == membership.MemberLeave || m.RelayAddr == "" || n.id > m.Name {
		return
	}
	n.mu.Lock()
	p := n.members[m.Name]
	n.mu.Unlock()
	if p != nil {
		if p.link.Addr() == m.RelayAddr {
			return
		}
		// The member moved: its old address is gone for good.
		n.log.Info("member moved", "member", m.Name, "from", p.link.Addr(), "to", m.RelayAddr)
		p.Close()
	}
	if _, err := n.dial(m.RelayAddr, m.Name); err != nil {
		n.log.Warn("cannot link a member", "member", m.Name, "addr", m.RelayAddr, "error", err)
	}
}
