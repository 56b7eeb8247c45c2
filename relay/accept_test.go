package relay

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// scriptConn is a net.Conn that reads a fixed script and records writes.
type scriptConn struct {
	r      *bytes.Reader
	w      bytes.Buffer
	closed bool
}

func (c *scriptConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *scriptConn) Close() error                     { c.closed = true; return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzAccept feeds arbitrary bytes to the acceptor half of the handshake:
// it never panics, accepts only a valid HELLO of our channel, and answers
// every refusal of a frame with a REJECT that says why.
func FuzzAccept(f *testing.F) {
	good := Hello{Version: Version, Channel: "default", NodeID: "b", Boot: 9, Window: 100, MaxFrame: 1 << 20}
	f.Add(AppendFrame(nil, Frame{Type: FrameHello, Hello: good}))
	bad := good
	bad.Channel = "other"
	f.Add(AppendFrame(nil, Frame{Type: FrameHello, Hello: bad}))
	f.Add(AppendFrame(nil, Frame{Type: FrameData, Seq: 1, Payload: []byte("x")}))
	f.Add([]byte{0, 0, 0, 1, 0xc1})
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0})
	cfg := Config{NodeID: "a", MaxFrameSize: 4096}
	f.Fuzz(func(t *testing.T, wire []byte) {
		c := &scriptConn{r: bytes.NewReader(wire)}
		h, err := Accept(cfg, c)
		if err == nil {
			if cerr := checkHello(cfg.withDefaults(), h); cerr != nil {
				t.Fatalf("accepted an invalid hello %+v: %v", h, cerr)
			}
			if c.closed || c.w.Len() != 0 {
				t.Fatal("an accepted conn must be left open and unanswered for Attach")
			}
			return
		}
		if !c.closed {
			t.Fatal("a refused conn must be closed")
		}
		if !errors.Is(err, ErrRejected) {
			return // the stream ended or failed before a whole frame: nothing to answer
		}
		rej, rerr := ReadFrame(&c.w, 1<<20)
		if rerr != nil || rej.Type != FrameReject || rej.Reason == "" {
			t.Fatalf("refusal %v answered with %+v (%v)", err, rej, rerr)
		}
	})
}

func TestAcceptRejectsChannelMismatch(t *testing.T) {
	hello := Hello{Version: Version, Channel: "x", NodeID: "b", Boot: 9, Window: 100, MaxFrame: 1 << 20}
	c := &scriptConn{r: bytes.NewReader(AppendFrame(nil, Frame{Type: FrameHello, Hello: hello}))}
	_, err := Accept(Config{NodeID: "a", Channel: "y"}, c)
	if !errors.Is(err, ErrRejected) {
		t.Fatalf("got %v", err)
	}
	rej, rerr := ReadFrame(&c.w, 1<<20)
	if rerr != nil || rej.Reason != `relay: channel mismatch: remote "x", local "y"` {
		t.Fatalf("REJECT %+v (%v)", rej, rerr)
	}
}
