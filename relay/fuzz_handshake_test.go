package relay_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// FuzzHandshake feeds arbitrary bytes as the remote's first frames to both
// halves of the handshake, over the in-memory network. Neither may panic or
// hang; the acceptor accepts only a HELLO that passes every check, and a
// dialing link becomes Connected only then.
func FuzzHandshake(f *testing.F) {
	hello := relay.Hello{Version: relay.Version, Channel: relay.DefaultChannel, NodeID: "b", Boot: 7, Window: 100, MaxFrame: 1 << 20}
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: hello}))
	wrong := hello
	wrong.Channel = "other"
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: wrong}))
	wrong = hello
	wrong.Boot, wrong.Window = 0, 0
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: wrong}))
	// Version 4: the dialer's ACK follows its HELLO (it completes the
	// handshake for the acceptor); a version 3 HELLO is refused.
	f.Add(relay.AppendFrame(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: hello}), relay.Frame{Type: relay.FrameAck}))
	f.Add(relay.AppendFrame(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: hello}), relay.Frame{Type: relay.FrameAck, Seq: 9}))
	wrong = hello
	wrong.Version = 3
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: wrong}))
	wrong = hello
	wrong.AckBoot, wrong.Ack = 1, 5 // acks the dialer's boot: its stream is remembered
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: wrong}))
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameReject, Reason: "go away"}))
	f.Add(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameData, Seq: 1, Payload: []byte("x")}))
	f.Add([]byte{0, 0, 0, 1, 0xc1})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		synctest.Test(t, func(t *testing.T) {
			n := memnet.New(1)
			cfg := relay.Config{NodeID: "a", Boot: 1, Timeout: 2 * time.Second, Transport: n.Host("a")}
			fuzzAccept(t, n, cfg, data)
			fuzzDial(t, n, cfg, data)
		})
	})
}

// fuzzAccept: the remote dials us and writes data.
func fuzzAccept(t *testing.T, n *memnet.Network, cfg relay.Config, data []byte) {
	ln, err := n.Host("a").Listen("a:1")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	remote, err := n.Host("b").Dial(context.Background(), "a:1")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = remote.Write(data)
		_ = remote.Close()
	}()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	h, err := relay.Accept(cfg, conn)
	if err != nil {
		return // refused or unreadable: Accept closed conn
	}
	defer conn.Close()
	f, derr := relay.ReadFrame(bytes.NewReader(data), relay.DefaultMaxFrameSize)
	if derr != nil || f.Type != relay.FrameHello || f.Hello != h {
		t.Fatalf("accepted %+v from bytes that do not start with that HELLO (%v)", h, derr)
	}
	if h.Version != relay.Version || h.Channel != relay.DefaultChannel || h.NodeID == "" || h.Boot == 0 || h.Window < 1 {
		t.Fatalf("accepted a HELLO that should be refused: %+v", h)
	}
}

// fuzzDial: we dial a remote that answers our HELLO with data.
func fuzzDial(t *testing.T, n *memnet.Network, cfg relay.Config, data []byte) {
	ln, err := n.Host("b").Listen("b:1")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = relay.ReadFrame(c, relay.DefaultMaxFrameSize) // our HELLO
		_, _ = c.Write(data)
		time.Sleep(time.Second)
		_ = c.Close()
	}()
	rec := newRecorder()
	l, err := relay.Dial(cfg, "b:1", rec)
	if err != nil {
		t.Fatal(err)
	}
	<-served
	ln.Close() // no second chance: redials are refused
	synctest.Wait()
	connected := l.State() == relay.Connected || rec.count(relay.EventHandshake) > 0
	if err := l.Close(); err != nil && !errors.Is(err, relay.ErrClosed) {
		t.Fatalf("close: %v", err)
	}
	if !connected {
		return
	}
	f, derr := relay.ReadFrame(bytes.NewReader(data), relay.DefaultMaxFrameSize)
	if derr != nil || f.Type != relay.FrameHello || f.Hello.Channel != relay.DefaultChannel || f.Hello.Version != relay.Version {
		t.Fatalf("link connected after a bad answer %x (%v)", data, derr)
	}
}
