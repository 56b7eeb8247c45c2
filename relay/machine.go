package relay

import (
	"errors"
	"fmt"
	"time"
)

// machine is the link protocol with no IO: the driver feeds it inputs (Send,
// Connected, Receive, Delivered, Disconnected, Tick) with the current time and
// carries out its outputs (AppendPending's bytes, the payload to deliver, the
// error that ends a connection, events from takeEvents). Not safe for
// concurrent use; the Link guards it with a mutex.
type machine struct {
	cfg      Config
	outbound bool

	// Outbound direction. pay holds the unacknowledged payloads of the
	// contiguous seqs lastSeq-buffered()+1 .. lastSeq.
	pay     [][]byte
	head    int
	lastSeq uint64 // last seq assigned; seqs start at 1 per boot
	sent    uint64 // highest seq written on the current connection
	acked   uint64 // highest seq the remote acknowledged

	// Inbound direction, relative to the remote boot peerBoot.
	peerBoot  uint64
	received  uint64 // highest seq accepted (duplicates are <= this)
	delivered uint64 // highest seq the handler has returned from: what we ack
	ackSent   uint64
	ackDue    bool
	ackEvery  uint64

	// Connection.
	up, everUp bool
	confirmed  bool // inbound: the dialer sent a frame on this connection (EventConfirmed)
	peer       Hello
	lastRx     time.Time // last frame received
	lastTx     time.Time // last bytes handed to the writer
	lastAck    time.Time // last ACK handed to the writer
	downSince  time.Time // start of the current disconnection (or of the link)
	expired    bool      // Expired already reported for this disconnection

	events []Event
}

func newMachine(cfg Config, outbound bool, now time.Time) *machine {
	return &machine{cfg: cfg, outbound: outbound, downSince: now, ackEvery: 1}
}

func (m *machine) buffered() int { return len(m.pay) - m.head }

// firstSeq is the seq of the oldest buffered payload.
func (m *machine) firstSeq() uint64 { return m.lastSeq - uint64(m.buffered()) + 1 }

func (m *machine) emit(ev Event) {
	if ev.PeerID == "" {
		ev.PeerID = m.peer.NodeID
	}
	m.events = append(m.events, ev)
}

func (m *machine) takeEvents() []Event {
	ev := m.events
	m.events = nil
	return ev
}

// hello is what we tell the remote at the start of a connection.
func (m *machine) hello() Hello {
	return Hello{
		Version: Version, Channel: m.cfg.Channel, NodeID: m.cfg.NodeID, Boot: m.cfg.Boot,
		Ack: m.delivered, AckBoot: m.peerBoot, Window: m.cfg.BufferMax, MaxFrame: m.cfg.MaxFrameSize,
	}
}

// checkHello validates a remote HELLO against our config. Its text is what a
// REJECT frame carries.
func checkHello(cfg Config, h Hello) error {
	switch {
	case h.Version != Version:
		return fmt.Errorf("relay: protocol version mismatch: remote %d, local %d", h.Version, Version)
	case h.Channel != cfg.Channel:
		return fmt.Errorf("relay: channel mismatch: remote %q, local %q", h.Channel, cfg.Channel)
	case h.NodeID == "":
		return errors.New("relay: bad hello: empty node id")
	case h.Boot == 0:
		return errors.New("relay: bad hello: zero boot id")
	case h.Window < 1:
		return fmt.Errorf("relay: bad hello: window %d", h.Window)
	case h.MaxFrame < minFrameSize:
		return fmt.Errorf("relay: bad hello: max frame %d", h.MaxFrame)
	}
	return nil
}

// frameLimit is the largest body both sides accept.
func (m *machine) frameLimit() int {
	if m.peer.MaxFrame > 0 {
		return min(m.cfg.MaxFrameSize, m.peer.MaxFrame)
	}
	return m.cfg.MaxFrameSize
}

// Send appends a payload to the retransmit buffer. A full buffer drops its
// oldest entry; a payload that can never fit a frame is dropped at once. Both
// are reported as Overflow, coalesced while the events are not drained.
func (m *machine) Send(p []byte) {
	if len(p)+dataOverhead > m.frameLimit() {
		m.emit(Event{Kind: EventOverflow, Dropped: 1,
			Err: fmt.Errorf("%w: payload of %d bytes, limit %d", ErrFrameTooLarge, len(p), m.frameLimit()-dataOverhead)})
		return
	}
	if m.buffered() >= m.limit() {
		m.popFront(1)
		if n := len(m.events); n > 0 && m.events[n-1].Kind == EventOverflow && m.events[n-1].Err == nil {
			m.events[n-1].Dropped++
		} else {
			m.emit(Event{Kind: EventOverflow, Dropped: 1})
		}
	}
	m.lastSeq++
	m.pay = append(m.pay, p)
}

// connectedSlack is how far past BufferMax a connected link's buffer may
// grow before it drops. BufferMax bounds what is kept for an absent peer
// (guarantee 3); a connected peer's unacknowledged frames are mostly in
// flight, and Emit's back-pressure keeps them near BufferMax, but a node
// relaying others' events cannot hold its upstream back: dropping there at
// BufferMax would lose events in a healthy cluster under a burst.
const connectedSlack = 4

// limit is the most payloads the buffer holds before Send drops the oldest.
func (m *machine) limit() int {
	if m.up {
		return connectedSlack * m.cfg.BufferMax
	}
	return m.cfg.BufferMax
}

func (m *machine) popFront(n int) {
	clear(m.pay[m.head : m.head+n]) // let the payloads be collected
	m.head += n
	if m.head == len(m.pay) {
		m.pay, m.head = m.pay[:0], 0
	} else if m.head >= 64 && m.head*2 >= len(m.pay) {
		k := copy(m.pay, m.pay[m.head:])
		clear(m.pay[k:])
		m.pay, m.head = m.pay[:k], 0
	}
}

// ackUpTo frees every buffered payload with seq <= seq.
func (m *machine) ackUpTo(seq uint64) {
	if seq > m.lastSeq {
		seq = m.lastSeq
	}
	if first := m.firstSeq(); m.buffered() > 0 && seq >= first {
		m.popFront(int(seq - first + 1))
	}
	m.sent = max(m.sent, seq)
	if seq > m.acked {
		m.acked = seq
		m.emit(Event{Kind: EventAcknowledge, Seq: seq})
	}
}

// Connected starts a connection after the HELLO exchange: it resets the
// receive state if the remote restarted, or has no memory of our stream
// (its ackBoot is not our boot: its link state is new, so is its
// numbering), and queues the resend. A dialer owes the acceptor a frame
// at once (an ACK), which completes the handshake for the acceptor.
func (m *machine) Connected(remote Hello, now time.Time) {
	if remote.Boot != m.peerBoot || remote.AckBoot != m.cfg.Boot {
		m.peerBoot, m.received, m.delivered, m.ackSent = remote.Boot, 0, 0, 0
	}
	m.peer = remote
	m.sent = 0 // resend everything buffered unless the remote says otherwise
	if remote.AckBoot == m.cfg.Boot {
		m.ackUpTo(remote.Ack)
	}
	m.ackEvery = uint64(max(1, remote.Window/4))
	m.up, m.ackDue, m.confirmed = true, m.outbound, m.outbound
	m.lastRx, m.lastTx, m.lastAck = now, now, now
	m.expired = false
	m.emit(Event{Kind: EventHandshake})
	if m.outbound && m.everUp {
		m.emit(Event{Kind: EventReconnect})
	}
	m.everUp = true
}

// Disconnected ends the current connection.
func (m *machine) Disconnected(err error, now time.Time) {
	if !m.up {
		return
	}
	m.up, m.ackDue = false, false
	m.downSince = now
	m.emit(Event{Kind: EventDisconnect, Err: err})
	if excess := m.buffered() - m.cfg.BufferMax; excess > 0 {
		// Beyond BufferMax only while connected: keep the newest for the
		// absent peer, as Send would have.
		m.popFront(excess)
		m.emit(Event{Kind: EventOverflow, Dropped: excess})
	}
}

// Receive handles one frame of an established connection. It returns the
// payload to hand to the handler (with its seq, for Delivered); a non-nil
// error means the connection must be dropped.
func (m *machine) Receive(f Frame, now time.Time) (deliver []byte, seq uint64, err error) {
	if !m.up {
		return nil, 0, ErrClosed
	}
	m.lastRx = now
	m.confirm()
	switch f.Type {
	case FrameData:
		return m.ReceiveData(f.Seq, f.Payload, now)
	case FrameAck:
		if f.Seq > m.lastSeq {
			return nil, 0, fmt.Errorf("%w: ack %d beyond last sent seq %d", ErrBadFrame, f.Seq, m.lastSeq)
		}
		m.ackUpTo(f.Seq)
		return nil, 0, nil
	case FrameReject:
		return nil, 0, fmt.Errorf("%w: %s", ErrRejected, f.Reason)
	}
	return nil, 0, fmt.Errorf("%w: unexpected %s after the handshake", ErrBadFrame, f.Type)
}

// ReceiveData is Receive of a DATA frame: the link's reader decodes those
// without a Frame.
func (m *machine) ReceiveData(seq uint64, payload []byte, now time.Time) (deliver []byte, _ uint64, err error) {
	if !m.up {
		return nil, 0, ErrClosed
	}
	m.lastRx = now
	m.confirm()
	if seq <= m.received {
		return nil, 0, nil // a resent duplicate
	}
	// A jump over missing seqs is accepted: the sender dropped them by
	// overflow or expiry and has reported it.
	m.received = seq
	return payload, seq, nil
}

// confirm notes the first frame of an inbound connection: the dialer has
// accepted our HELLO and is there (EventConfirmed). One bool test per frame.
func (m *machine) confirm() {
	if !m.confirmed {
		m.confirmed = true
		m.emit(Event{Kind: EventConfirmed})
	}
}

// Delivered records that the handler has returned for seq: it becomes
// acknowledgeable, and at every window/4 unacknowledged frames an ACK is due
// at once so that a busy sender never waits for the ack timer.
func (m *machine) Delivered(seq uint64) {
	m.delivered = max(m.delivered, seq)
	if m.up && m.delivered-m.ackSent >= m.ackEvery {
		m.ackDue = true
	}
}

// Pending reports whether AppendPending has anything to write.
func (m *machine) Pending() bool {
	return m.up && (m.ackDue || m.sent < m.lastSeq && m.buffered() > 0)
}

// AppendPending appends the frames due now to dst: an ACK if due, then DATA from the resend point on, stopping once dst exceeds limit
// bytes so that one batch stays bounded.
func (m *machine) AppendPending(dst []byte, now time.Time, limit int) []byte {
	if !m.up {
		return dst
	}
	start := len(dst)
	if m.ackDue {
		dst = AppendFrame(dst, Frame{Type: FrameAck, Seq: m.delivered})
		m.ackSent, m.ackDue, m.lastAck = m.delivered, false, now
	}
	if m.buffered() > 0 {
		first := m.firstSeq()
		for seq := max(m.sent+1, first); seq <= m.lastSeq && len(dst) < limit; seq++ {
			dst = appendData(dst, seq, m.pay[m.head+int(seq-first)])
			m.sent = seq
		}
	}
	if len(dst) > start {
		m.lastTx = now
	}
	return dst
}

// Tick advances time. Connected: it fails the connection with ErrTimeout
// after Timeout without a frame, and makes an ACK due for the ack timer or as
// a heartbeat. Disconnected for BufferTimeout: it forgets the buffer, reports
// Expired and returns expired=true (an inbound link then stops for good).
func (m *machine) Tick(now time.Time) (expired bool, err error) {
	if m.up {
		if idle := now.Sub(m.lastRx); idle >= m.cfg.Timeout {
			return false, fmt.Errorf("%w: no frame for %s", ErrTimeout, idle)
		}
		if m.delivered > m.ackSent && now.Sub(m.lastAck) >= m.cfg.AckInterval {
			m.ackDue = true
		}
		if now.Sub(m.lastTx) >= m.cfg.heartbeat() {
			m.ackDue = true
		}
		return false, nil
	}
	if now.Sub(m.downSince) < m.cfg.BufferTimeout {
		return false, nil
	}
	n := m.buffered()
	if n > 0 {
		m.popFront(n)
	}
	m.sent = m.lastSeq
	if !m.expired || n > 0 {
		m.emit(Event{Kind: EventExpired, Dropped: n})
	}
	m.expired = true
	m.downSince = now // a dialing link keeps buffering; expire that again later
	return true, nil
}

// NextDeadline is when Tick next has something to do.
func (m *machine) NextDeadline() time.Time {
	if !m.up {
		return m.downSince.Add(m.cfg.BufferTimeout)
	}
	d := m.lastRx.Add(m.cfg.Timeout)
	if hb := m.lastTx.Add(m.cfg.heartbeat()); hb.Before(d) {
		d = hb
	}
	if m.delivered > m.ackSent {
		if a := m.lastAck.Add(m.cfg.AckInterval); a.Before(d) {
			d = a
		}
	}
	return d
}
