package relay

import (
	"fmt"
	"time"
)

// Hello is the handshake frame each side sends once per connection.
type Hello struct {
	Version  int
	Channel  string
	NodeID   string
	Boot     uint64 // the sender's boot id
	Ack      uint64 // last link seq the sender received from the recipient
	AckBoot  uint64 // the recipient's boot that Ack refers to; 0 if none
	Window   int    // the sender's BufferMax; the recipient acks every Window/4 frames
	MaxFrame int    // largest frame the sender accepts
}

// State is a link's connection state.
type State int

// Link states.
const (
	Connecting   State = iota // before the first handshake
	Connected                 // handshake done, frames flowing
	Disconnected              // lost; a dialing link redials
	Closed                    // stopped for good
)

func (s State) String() string {
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
	return fmt.Sprintf("State(%d)", int(s))
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds.
const (
	EventConnect     EventKind = iota + 1 // the transport connected (before the handshake)
	EventHandshake                        // remote id learned, resend queued
	EventAcknowledge                      // the remote acked up to Seq
	EventDisconnect                       // a live connection was lost; Err says why
	EventReconnect                        // a dialing link that had been up is up again
	EventBackoff                          // next redial in Delay, attempt Attempt
	EventRejected                         // handshake refused; Err says why
	EventOverflow                         // Dropped payloads discarded: buffer full (or too large)
	EventExpired                          // disconnected for BufferTimeout: Dropped payloads forgotten
	EventConfirmed                        // inbound only: the dialer's first frame after the handshake arrived (it completed the handshake)
)

func (k EventKind) String() string {
	switch k {
	case EventConnect:
		return "connect"
	case EventHandshake:
		return "handshake"
	case EventAcknowledge:
		return "acknowledge"
	case EventDisconnect:
		return "disconnect"
	case EventReconnect:
		return "reconnect"
	case EventBackoff:
		return "backoff"
	case EventRejected:
		return "rejected"
	case EventOverflow:
		return "overflow"
	case EventExpired:
		return "expired"
	case EventConfirmed:
		return "confirmed"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one of a link's lifecycle reports.
type Event struct {
	Kind    EventKind
	PeerID  string        // remote NodeID when known
	Addr    string        // remote address
	Err     error         // Disconnect, Rejected, Overflow (ErrFrameTooLarge)
	Delay   time.Duration // Backoff
	Attempt int           // Backoff
	Seq     uint64        // Acknowledge: acked up to this link seq
	Dropped int           // Overflow, Expired
}

// Handler receives a link's outputs. Its methods are called only on the
// link's own goroutines, never from inside a call to one of the link's
// methods (Send included), so a caller may hold its own locks around those
// calls and take the same locks in the Handler. They must not block (short
// locks only).
//
// Receive is called on the link's reader goroutine, in link-seq order, with
// the payloads of consecutive DATA frames (a batch: what one read from the
// connection brought, at most maxBatch); the link acknowledges them only
// after Receive returns. The payloads are regions of the link's read
// buffer, valid only until Receive returns: a callee that keeps a payload
// copies it. Event may be called from any of the link's goroutines.
// Identify is called on the dialing side when the remote HELLO arrives,
// before the link counts as connected; a non-nil error refuses the link (a
// REJECT frame with err's text is sent, the link reports Rejected and backs
// off). No Handler method may call the link's Close.
type Handler interface {
	Receive(l *Link, payloads [][]byte)
	Event(l *Link, ev Event)
	Identify(l *Link, remote Hello) error
}
