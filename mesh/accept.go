package mesh

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/verbosemesh/verbose/relay"
)

// acceptLoop takes the listener's connections; each handshakes on its own
// goroutine (handleConn).
func (n *Node) acceptLoop(ln net.Listener) {
	defer n.wg.Done()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if n.isClosed() || errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (out of descriptors): back off a little.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			n.log.Warn("accept failed", "error", err, "retry_in", delay)
			select {
			case <-time.After(delay):
				continue
			case <-n.stop:
				return
			}
		}
		delay = 0
		n.mu.Lock()
		if n.isClosed() {
			n.mu.Unlock()
			conn.Close()
			return
		}
		n.pending[conn] = struct{}{}
		n.wg.Add(1)
		n.mu.Unlock()
		go n.handleConn(conn)
	}
}

// handleConn runs the acceptor's half of the handshake and hands the
// connection to the link of that remote node, resuming its buffer.
func (n *Node) handleConn(conn net.Conn) {
	defer n.wg.Done()
	hello, err := relay.Accept(n.rcfg, conn)
	n.mu.Lock()
	delete(n.pending, conn)
	n.mu.Unlock()
	addr := conn.RemoteAddr().String()
	if err != nil {
		if n.isClosed() {
			return
		}
		n.log.Warn("refused a connection", "addr", addr, "error", err)
		n.pdisp.peerEvent(PeerEvent{Kind: Rejected, Addr: addr, Err: err})
		return
	}
	if hello.NodeID == n.id {
		relay.Refuse(conn, "connected to self")
		return
	}
	if m, ok := n.member(hello.NodeID); ok {
		if m.Channel == n.cfg.Channel && !n.sameView(m) {
			// A member that differs on keeping a partial view (its old
			// link redialling a restarted node, say): reported once by
			// checkMember, never linked.
			n.log.Debug("refused a member that differs on keeping a partial view", "peer", hello.NodeID, "addr", addr)
			relay.Refuse(conn, ErrViewMismatch.Error())
			return
		}
		if n.ov != nil && !n.ov.wants(hello.NodeID) {
			// Its view and ours disagree for a moment (the link waits for
			// a reply still on its way) or for good: its side takes the
			// refusal as a lost link and repairs.
			n.log.Debug("refused a member that is not a neighbour", "peer", hello.NodeID, "addr", addr)
			relay.Refuse(conn, "not a neighbour in the partial view")
			return
		}
	}
	authenticated := relay.Authenticated(conn)
	n.mu.Lock()
	if n.isClosed() {
		n.mu.Unlock()
		conn.Close()
		return
	}
	if l, ok := n.left[hello.NodeID]; ok {
		if l.boot != 0 && l.boot == hello.Boot {
			// The member that left, redialling before it closes its links.
			n.mu.Unlock()
			n.log.Debug("refused a member that left", "peer", hello.NodeID, "addr", addr)
			relay.Refuse(conn, "left the cluster")
			return
		}
		delete(n.left, hello.NodeID) // restarted: a new incarnation
	}
	p := n.inbound[hello.NodeID]
	var refusal error
	switch {
	case p != nil && p.provisional:
		refusal = fmt.Errorf("mesh: a handshake of %q is already in progress", hello.NodeID)
	case p != nil && !authenticated && !n.open && p.link.State() == relay.Connected:
		// Under TLS, only a connection that proves the NodeID replaces
		// its live link (an open node proves nothing, for anyone).
		refusal = authError(hello.NodeID)
	case p == nil && n.unconfirmed >= maxUnconfirmed:
		refusal = fmt.Errorf("%w: %d handshakes in progress", ErrMaxPeers, n.unconfirmed)
	case p == nil && n.slotsUsedLocked() >= n.cfg.MaxPeers && n.evictableLocked(nil) == nil:
		refusal = fmt.Errorf("%w: MaxPeers is %d", ErrMaxPeers, n.cfg.MaxPeers)
	}
	if refusal != nil {
		n.mu.Unlock()
		n.log.Warn("refused a connection", "peer", hello.NodeID, "addr", addr, "error", refusal)
		relay.Refuse(conn, refusal.Error())
		n.pdisp.peerEvent(PeerEvent{Kind: Rejected, PeerID: hello.NodeID, Addr: addr, Err: refusal})
		return
	}
	if p == nil {
		// Provisional until the dialer completes the handshake: routed,
		// but holding no slot (admission.go).
		link, err := relay.NewInbound(n.rcfg, n.h)
		if err != nil { // the config was validated in New
			n.mu.Unlock()
			conn.Close()
			return
		}
		p = &Peer{node: n, link: link, provisional: true, abandon: make(chan struct{})}
		n.peers[link] = p
		n.unconfirmed++
		n.router.addLink(link, p)
		n.inbound[hello.NodeID] = p
		n.wg.Add(1)
		go n.watchInbound(p)
	} else if n.open && p.link.State() == relay.Connected {
		n.log.Info("a newer connection replaces a live link (unauthenticated: this node is open)", "peer", hello.NodeID, "addr", addr)
	}
	n.mu.Unlock()
	p.link.Attach(conn, hello)
}

// watchInbound forgets an accepted link once it stops for good (its peer
// was gone for BufferTimeout, or the node closed), and closes it when it
// was abandoned before its dialer completed the handshake.
func (n *Node) watchInbound(p *Peer) {
	defer n.wg.Done()
	select {
	case <-p.link.Done():
		n.removeClosed(p)
	case <-p.abandon:
		n.closeAbandoned(p)
	case <-n.stop:
		// Close closes the links it still has; one abandoned before it
		// started is no longer among them.
		select {
		case <-p.abandon:
			n.closeAbandoned(p)
		default:
		}
	}
}
