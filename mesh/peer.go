package mesh

import (
	"fmt"
	"time"

	"github.com/verbosemesh/verbose/relay"
)

// PeerEventKind is the kind of a PeerEvent: the seed's stream events plus
// what a user needs to see loss.
type PeerEventKind int

const (
	Listening   PeerEventKind = iota + 1 // the relay listener is up (Addr)
	Connect                              // a transport connection is up
	PeerID                               // the remote id was learned in the handshake
	Initialized                          // handshake done, resend queued
	Acknowledge                          // the peer acknowledged up to Seq
	Disconnect                           // the connection was lost (Err says why)
	Reconnect                            // a redial succeeded
	Backoff                              // the next redial is in Delay (Attempt n)
	Rejected                             // a handshake was refused (Err says why)
	Overflow                             // Dropped events were discarded (BufferMax, or a slow handler when Peer is nil)
	Expired                              // a buffer was given up (Dropped): a peer gone for BufferTimeout was forgotten; a member that left was released (Err ErrPeerLeft); this node closed with it unacknowledged (Err ErrClosed)
	Slow                                 // a consumer took nothing for Timeout: not waited for until it takes again (Peer nil: this node's handlers)
	Recovered                            // a consumer declared Slow takes events again
)

var peerEventNames = [...]string{"", "listening", "connect", "peerid", "initialized", "acknowledge",
	"disconnect", "reconnect", "backoff", "rejected", "overflow", "expired", "slow", "recovered"}

func (k PeerEventKind) String() string {
	if k > 0 && int(k) < len(peerEventNames) {
		return peerEventNames[k]
	}
	return fmt.Sprintf("PeerEventKind(%d)", int(k))
}

// PeerEvent reports a change in a relay link's life.
type PeerEvent struct {
	Kind    PeerEventKind
	Peer    *Peer // nil for node-wide events (Listening, a rejected unknown connection, handler overflow)
	PeerID  string
	Addr    string
	Err     error
	Delay   time.Duration
	Attempt int
	Seq     uint64
	Dropped int
}

func (e PeerEvent) String() string {
	s := e.Kind.String()
	if e.PeerID != "" {
		s += " peer=" + e.PeerID
	}
	if e.Addr != "" {
		s += " addr=" + e.Addr
	}
	if e.Err != nil {
		s += " err=" + e.Err.Error()
	}
	return s
}

// PeerState is the state of a relay link.
type PeerState int

const (
	Connecting   PeerState = iota // dialing or handshaking
	Connected                     // handshake done
	Disconnected                  // connection lost; buffering, redialing if outbound
	Closed                        // closed for good
)

func (s PeerState) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Closed:
		return "closed"
	}
	return fmt.Sprintf("PeerState(%d)", int(s))
}

// Peer is one relay link to a remote node.
type Peer struct {
	node *Node
	link *relay.Link

	// Admission (admission.go), guarded by node.mu: an accepted link is
	// provisional, holding no slot, until its dialer completes the
	// handshake; abandon is closed when it is forgotten before that.
	provisional bool
	abandon     chan struct{}
	abandonHeld int
}

// ID returns the remote NodeID, "" before the first handshake.
func (p *Peer) ID() string { return p.link.RemoteID() }

// Addr returns the address dialled, or the remote address of an inbound link.
func (p *Peer) Addr() string { return p.link.Addr() }

// State returns the link's state.
func (p *Peer) State() PeerState {
	switch p.link.State() {
	case relay.Connecting:
		return Connecting
	case relay.Connected:
		return Connected
	case relay.Disconnected:
		return Disconnected
	default:
		return Closed
	}
}

// Buffered returns how many events the peer has not acknowledged yet.
func (p *Peer) Buffered() int { return p.link.Buffered() }

// Outbound reports whether this node dials the link (Connect or a
// discovered member), as opposed to having accepted it.
func (p *Peer) Outbound() bool { return p.link.Outbound() }

// Close drops this link and stops reconnecting: the seed's peer.end().
func (p *Peer) Close() error {
	p.node.removeClosed(p)
	return p.link.Close()
}

func (p *Peer) String() string {
	id := p.ID()
	if id == "" {
		id = "?"
	}
	return fmt.Sprintf("%s@%s(%s)", id, p.Addr(), p.State())
}
