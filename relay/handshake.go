package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"
)

// refuseTimeout bounds the write of a REJECT to a peer we are turning away.
const refuseTimeout = 2 * time.Second

// Accept runs the acceptor half of the handshake on a fresh connection: it
// reads the remote HELLO (deadline Timeout) and validates version and
// channel, and, when the connection carries the remote's TLS certificate,
// that the certificate names the NodeID the HELLO claims (ErrIdentity;
// Authenticated then tells whether the claim is proven). On a mismatch or a malformed first frame it writes REJECT with
// the reason, closes conn and returns an error wrapping ErrRejected. On
// success the caller passes conn and the Hello to a Link's Attach, or calls
// Refuse.
func Accept(cfg Config, conn net.Conn) (Hello, error) {
	cfg = cfg.withDefaults()
	_ = conn.SetDeadline(time.Now().Add(cfg.Timeout))
	// Unbuffered on purpose: nothing past the HELLO may be consumed here,
	// since the link that gets conn reads on from it.
	f, err := ReadFrame(conn, cfg.MaxFrameSize)
	if err != nil && !errors.Is(err, ErrBadFrame) && !errors.Is(err, ErrFrameTooLarge) {
		conn.Close()
		return Hello{}, fmt.Errorf("relay: accept from %s: %w", conn.RemoteAddr(), err)
	}
	if err == nil && f.Type != FrameHello {
		err = fmt.Errorf("%w: want HELLO, got %s", ErrBadFrame, f.Type)
	}
	if err == nil {
		err = checkHello(cfg, f.Hello)
	}
	if err == nil {
		err = checkIdentity(conn, f.Hello.NodeID)
	}
	if err != nil {
		Refuse(conn, err.Error())
		return Hello{}, fmt.Errorf("%w: from %s: %w", ErrRejected, conn.RemoteAddr(), err)
	}
	_ = conn.SetDeadline(time.Time{})
	return f.Hello, nil
}

// Refuse writes a REJECT frame carrying reason (bounded by a short deadline)
// and closes conn.
func Refuse(conn net.Conn, reason string) {
	_ = writeFrame(conn, Frame{Type: FrameReject, Reason: reason}, refuseTimeout)
	conn.Close()
}

func writeFrame(conn net.Conn, f Frame, timeout time.Duration) error {
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := conn.Write(AppendFrame(nil, f))
	return err
}

// dial connects and runs the dialer half of the handshake: our HELLO first,
// then the remote's, validated and passed to Identify. Failures are
// reported (Rejected) and logged; the caller backs off. pending is what
// was read beyond the remote HELLO: the start of the frame stream.
func (l *Link) dial() (conn net.Conn, pending []byte, remote Hello, ok bool) {
	l.mu.Lock()
	addr := l.addr
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.Timeout)
	conn, err := l.cfg.Transport.Dial(ctx, addr)
	cancel()
	if err != nil {
		l.log.Debug("dial failed", "error", err)
		return nil, nil, Hello{}, false
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		conn.Close()
		return nil, nil, Hello{}, false
	}
	l.conn, l.dropErr = conn, nil // so that Close and Drop can interrupt the handshake
	hello := l.m.hello()
	l.mu.Unlock()
	l.event(Event{Kind: EventConnect})

	_ = conn.SetDeadline(time.Now().Add(l.cfg.Timeout))
	br := bufio.NewReader(conn)
	remote, err = l.handshake(conn, br, hello)
	if err != nil {
		l.endHandshake(conn, fmt.Errorf("relay: handshake with %s: %w", addr, err))
		return nil, nil, Hello{}, false
	}
	_ = conn.SetDeadline(time.Time{})
	pending, _ = br.Peek(br.Buffered())
	return conn, pending, remote, true
}

func (l *Link) handshake(conn net.Conn, br *bufio.Reader, hello Hello) (Hello, error) {
	if _, err := conn.Write(AppendFrame(nil, Frame{Type: FrameHello, Hello: hello})); err != nil {
		return Hello{}, err
	}
	f, err := ReadFrame(br, l.cfg.MaxFrameSize)
	if err != nil {
		if errors.Is(err, ErrBadFrame) || errors.Is(err, ErrFrameTooLarge) {
			Refuse(conn, err.Error())
		}
		return Hello{}, err
	}
	switch f.Type {
	case FrameHello:
	case FrameReject:
		return Hello{}, fmt.Errorf("%w: %s", ErrRejected, f.Reason)
	default:
		err := fmt.Errorf("%w: want HELLO, got %s", ErrBadFrame, f.Type)
		Refuse(conn, err.Error())
		return Hello{}, err
	}
	if err := checkHello(l.cfg, f.Hello); err != nil {
		Refuse(conn, err.Error())
		return Hello{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if err := checkIdentity(conn, f.Hello.NodeID); err != nil {
		Refuse(conn, err.Error())
		return Hello{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if err := l.h.Identify(l, f.Hello); err != nil {
		Refuse(conn, err.Error())
		return Hello{}, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return f.Hello, nil
}

// endHandshake closes a connection that never became Connected and reports
// why, unless the link is closing anyway.
func (l *Link) endHandshake(conn net.Conn, err error) {
	conn.Close()
	l.mu.Lock()
	closed := l.closed || l.attach != nil // a replaced handshake is no refusal
	if l.conn == conn {
		l.conn, l.dropErr = nil, nil
	}
	l.mu.Unlock()
	if !closed {
		l.event(Event{Kind: EventRejected, Err: err})
	}
}
