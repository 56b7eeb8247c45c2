package relay_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

func cfgFor(id string, tr relay.Transport) relay.Config {
	return relay.Config{NodeID: id, Transport: tr, Timeout: 10 * time.Second, AckInterval: 100 * time.Millisecond}
}

func TestLinkExactlyOnceInOrderAcrossCuts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		ah, bh := newRecorder(), newRecorder()
		srv := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), bh)
		a := mustDial(t, cfgFor("a", n.Host("a")), srv.addr(), ah)
		want := payloads("a", 1, 300)
		for i, p := range want {
			a.Send([]byte(p))
			if i%10 == 0 {
				time.Sleep(3 * time.Millisecond) // let some of it flow
			}
			if i%60 == 30 {
				waitFor(t, time.Minute, "connected", func() bool { return a.State() == relay.Connected })
				if n.Cut("a", "b") != 1 { // frames in flight and acks are lost
					t.Fatal("nothing to cut")
				}
			}
		}
		waitFor(t, time.Minute, "300 payloads at b", func() bool { return len(bh.received("a")) >= len(want) })
		waitFor(t, time.Minute, "a's buffer acknowledged", func() bool { return a.Buffered() == 0 })
		synctest.Wait()
		if got := bh.received("a"); !slices.Equal(got, want) {
			t.Fatalf("b got %d payloads, not exactly once in order: %v", len(got), got)
		}
		if ah.count(relay.EventReconnect) != 5 || ah.count(relay.EventDisconnect) != 5 {
			t.Fatalf("5 cuts, but %d disconnects and %d reconnects", ah.count(relay.EventDisconnect), ah.count(relay.EventReconnect))
		}
		if ah.count(relay.EventOverflow)+ah.count(relay.EventExpired) != 0 {
			t.Fatal("unexpected loss events")
		}
		// The inbound side sends back over the same link.
		back := payloads("b", 1, 50)
		sendAll(srv.link("a"), back)
		waitFor(t, time.Minute, "50 payloads at a", func() bool { return len(ah.received("b")) >= len(back) })
		if got := ah.received("b"); !slices.Equal(got, back) {
			t.Fatalf("a got %v", got)
		}
		if a.State() != relay.Connected || a.RemoteID() != "b" || srv.link("a").RemoteID() != "a" {
			t.Fatalf("state %v, ids %q %q", a.State(), a.RemoteID(), srv.link("a").RemoteID())
		}
	})
}

func TestLinkBufferExpiresWhileRedialing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(2)
		h := newRecorder()
		a := mustDial(t, relay.Config{NodeID: "a", Transport: n.Host("a")}, "b:7947", h) // nobody listens
		sendAll(a, payloads("a", 1, 5))
		time.Sleep(15*time.Minute - time.Second)
		synctest.Wait()
		if h.count(relay.EventExpired) != 0 || a.Buffered() != 5 {
			t.Fatalf("expired before BufferTimeout")
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		exp := h.eventsOf(relay.EventExpired)
		if len(exp) != 1 || exp[0].Dropped != 5 || a.Buffered() != 0 {
			t.Fatalf("after 15m: expired %+v, buffered %d", exp, a.Buffered())
		}
		// Back-off: 100ms doubling to 30s, ±20%, attempts counted.
		bo := h.eventsOf(relay.EventBackoff)
		if len(bo) < 30 || len(bo) > 40 {
			t.Fatalf("%d redials in 15 minutes", len(bo))
		}
		for i, ev := range bo {
			base := min(100*time.Millisecond<<min(i, 20), 30*time.Second)
			if ev.Attempt != i+1 || ev.Delay < base*8/10 || ev.Delay > base*12/10 {
				t.Fatalf("backoff %d: attempt %d delay %s, want attempt %d delay %s±20%%", i, ev.Attempt, ev.Delay, i+1, base)
			}
		}
		if a.State() != relay.Connecting || !a.Outbound() {
			t.Fatalf("state %v", a.State())
		}
	})
}

func TestInboundLinkExpiresAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(3)
		ah, bh := newRecorder(), newRecorder()
		srv := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), bh)
		a := mustDial(t, cfgFor("a", n.Host("a")), srv.addr(), ah)
		a.Send([]byte("x"))
		waitFor(t, time.Minute, "delivery", func() bool { return len(bh.received("a")) == 1 })
		in := srv.link("a")
		a.Close()
		waitFor(t, time.Minute, "inbound disconnect", func() bool { return in.State() == relay.Disconnected })
		in.Send([]byte("never delivered"))
		time.Sleep(15 * time.Minute)
		synctest.Wait()
		select {
		case <-in.Done():
		default:
			t.Fatal("inbound link still running after BufferTimeout")
		}
		exp := bh.eventsOf(relay.EventExpired)
		if len(exp) != 1 || exp[0].Dropped != 1 || in.State() != relay.Closed {
			t.Fatalf("expired %+v, state %v", exp, in.State())
		}
	})
}

func TestChannelMismatchIsRejectedAndBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(4)
		ah := newRecorder()
		scfg := cfgFor("b", nil)
		scfg.Channel = "y"
		srv := startServer(t, n.Host("b"), "b:7947", scfg, newRecorder())
		acfg := cfgFor("a", n.Host("a"))
		acfg.Channel = "x"
		a := mustDial(t, acfg, srv.addr(), ah)
		time.Sleep(time.Minute)
		synctest.Wait()
		rej := ah.eventsOf(relay.EventRejected)
		if len(rej) == 0 || len(rej) > 10 {
			t.Fatalf("%d rejections in a minute: want a few, backed off", len(rej))
		}
		const reason = `relay: channel mismatch: remote "x", local "y"`
		if !isRejected(rej[0].Err) || !strings.Contains(rej[0].Err.Error(), reason) {
			t.Fatalf("dialer's reason: %v", rej[0].Err)
		}
		errs := srv.acceptErrors()
		if len(errs) != len(rej) || !isRejected(errs[0]) || !strings.Contains(errs[0].Error(), reason) {
			t.Fatalf("acceptor's errors: %v", errs)
		}
		if a.State() != relay.Connecting || ah.count(relay.EventHandshake) != 0 {
			t.Fatalf("state %v", a.State())
		}
	})
}

func TestIdentifyRefusesLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(5)
		ah, bh := newRecorder(), newRecorder()
		ah.identify = func(h relay.Hello) error { return errors.New("mesh: unexpected peer " + h.NodeID) }
		srv := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), bh)
		mustDial(t, cfgFor("a", n.Host("a")), srv.addr(), ah)
		waitFor(t, time.Minute, "rejection", func() bool { return ah.count(relay.EventRejected) > 0 })
		synctest.Wait()
		if err := ah.eventsOf(relay.EventRejected)[0].Err; !isRejected(err) || !strings.Contains(err.Error(), "mesh: unexpected peer b") {
			t.Fatalf("dialer: %v", err)
		}
		// The acceptor had attached already; the REJECT ends its connection.
		waitFor(t, time.Minute, "acceptor disconnect", func() bool { return bh.count(relay.EventDisconnect) > 0 })
		if err := bh.eventsOf(relay.EventDisconnect)[0].Err; !isRejected(err) {
			t.Fatalf("acceptor: %v", err)
		}
	})
}

func TestLinkRemoteRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(6)
		ah, bh := newRecorder(), newRecorder()
		srv := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), bh)
		a := mustDial(t, cfgFor("a", n.Host("a")), srv.addr(), ah)
		sendAll(a, payloads("a", 1, 10))
		sendAll(waitLink(t, srv, "a"), payloads("b", 1, 3))
		waitFor(t, time.Minute, "acks", func() bool { return a.Buffered() == 0 && len(ah.received("b")) == 3 })
		oldBoot := a.RemoteBoot()

		srv.close() // b dies
		waitFor(t, time.Minute, "a disconnected", func() bool { return a.State() == relay.Disconnected })
		sendAll(a, payloads("a", 11, 20))
		bh2 := newRecorder()
		srv2 := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), bh2) // a new boot
		waitFor(t, time.Minute, "resend to the new b", func() bool { return len(bh2.received("a")) >= 10 })
		if got := bh2.received("a"); !slices.Equal(got, payloads("a", 11, 20)) {
			t.Fatalf("new incarnation got %v", got)
		}
		if a.RemoteBoot() == oldBoot {
			t.Fatal("remote boot unchanged after restart")
		}
		// b's new boot starts at seq 1 again; a must not take it for a duplicate.
		sendAll(waitLink(t, srv2, "a"), payloads("c", 1, 2))
		waitFor(t, time.Minute, "new b's payloads", func() bool { return len(ah.received("b")) == 5 })
		if got := ah.received("b"); !slices.Equal(got[3:], payloads("c", 1, 2)) {
			t.Fatalf("a got %v", got)
		}
	})
}

func waitLink(t *testing.T, s *server, id string) *relay.Link {
	t.Helper()
	waitFor(t, time.Minute, "inbound link "+id, func() bool { return s.link(id) != nil })
	return s.link(id)
}

func TestLinkDropRedials(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(7)
		ah := newRecorder()
		srv := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), newRecorder())
		a := mustDial(t, cfgFor("a", n.Host("a")), srv.addr(), ah)
		waitFor(t, time.Minute, "connected", func() bool { return a.State() == relay.Connected })
		reason := errors.New("test: drop")
		a.Drop(reason)
		waitFor(t, time.Minute, "reconnect", func() bool { return ah.count(relay.EventReconnect) == 1 })
		if d := ah.eventsOf(relay.EventDisconnect); len(d) != 1 || !errors.Is(d[0].Err, reason) {
			t.Fatalf("disconnects %+v", d)
		}
		if !a.SendControl([]byte("ctl")) {
			t.Fatal("SendControl on a connected link")
		}
	})
}

// rawPeer is a hand-driven acceptor: it answers one link's handshake and
// then does only what the test says. Frames it reads are recorded.
type rawPeer struct {
	conn   net.Conn
	mu     sync.Mutex
	frames []relay.Frame
	done   chan struct{}
}

func startRawPeer(t *testing.T, n *memnet.Network, boot uint64) (*relay.Link, *recorder, *rawPeer) {
	t.Helper()
	ln, err := n.Host("b").Listen("b:7947")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cfgFor("a", n.Host("a"))
	cfg.BufferMax = 4
	cfg.Timeout = 3 * time.Second
	cfg.AckInterval = time.Second
	h := newRecorder()
	a := mustDial(t, cfg, ln.Addr().String(), h)
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Accept(relay.Config{NodeID: "b"}, conn); err != nil {
		t.Fatal(err)
	}
	hello := relay.Hello{Version: 1, Channel: "default", NodeID: "b", Boot: boot, Window: 1000, MaxFrame: 1 << 20}
	p := &rawPeer{conn: conn, done: make(chan struct{})}
	p.write(t, relay.Frame{Type: relay.FrameHello, Hello: hello})
	go func() {
		defer close(p.done)
		for {
			f, err := relay.ReadFrame(conn, 1<<20)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.frames = append(p.frames, f)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
	})
	waitFor(t, time.Second, "handshake", func() bool { return a.State() == relay.Connected })
	return a, h, p
}

func (p *rawPeer) write(t *testing.T, f relay.Frame) {
	t.Helper()
	if _, err := p.conn.Write(relay.AppendFrame(nil, f)); err != nil {
		t.Fatal(err)
	}
}

func (p *rawPeer) count(typ relay.FrameType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.frames {
		if f.Type == typ {
			n++
		}
	}
	return n
}

func TestLinkHeartbeatAndInactivityTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, h, p := startRawPeer(t, memnet.New(8), 77) // Timeout 3s: heartbeat every 1s
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		if got := p.count(relay.FrameAck); got != 2 {
			t.Fatalf("%d heartbeats in 2.5s, want 2", got)
		}
		if h.count(relay.EventDisconnect) != 0 {
			t.Fatal("disconnected before Timeout")
		}
		time.Sleep(start.Add(3*time.Second + time.Millisecond).Sub(time.Now()))
		synctest.Wait()
		d := h.eventsOf(relay.EventDisconnect)
		if len(d) != 1 || !errors.Is(d[0].Err, relay.ErrTimeout) {
			t.Fatalf("after 3s of silence: %+v", d)
		}
	})
}

func TestLinkDropsPeerSendingGarbage(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"unknown frame type", []byte{0, 0, 0, 2, 0x91, 0x09}, relay.ErrBadFrame},
		{"hello after handshake", relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello}), relay.ErrBadFrame},
		{"frame over the limit", binary.BigEndian.AppendUint32(nil, 1<<20+1), relay.ErrFrameTooLarge},
		{"ack of unsent data", relay.AppendFrame(nil, relay.Frame{Type: relay.FrameAck, Seq: 9}), relay.ErrBadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, h, p := startRawPeer(t, memnet.New(9), 77)
				if _, err := p.conn.Write(tt.wire); err != nil {
					t.Fatal(err)
				}
				waitFor(t, time.Second, "disconnect", func() bool { return h.count(relay.EventDisconnect) > 0 })
				if err := h.eventsOf(relay.EventDisconnect)[0].Err; !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
			})
		})
	}
}

func TestWaitSpace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, h, p := startRawPeer(t, memnet.New(10), 77) // BufferMax 4, never acks by itself
		sendAll(a, payloads("a", 1, 4))
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := a.WaitSpace(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("full buffer: %v", err)
		}
		result := make(chan error, 1)
		go func() { result <- a.WaitSpace(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-result:
			t.Fatalf("returned %v while full", err)
		default:
		}
		p.write(t, relay.Frame{Type: relay.FrameAck, Seq: 2})
		if err := <-result; err != nil {
			t.Fatal(err)
		}
		if a.Buffered() != 2 {
			t.Fatalf("buffered %d after ack 2", a.Buffered())
		}
		if ack := h.eventsOf(relay.EventAcknowledge); len(ack) != 1 || ack[0].Seq != 2 || ack[0].PeerID != "b" {
			t.Fatalf("acknowledge events %+v", ack)
		}
		// Overflow on a full buffer is reported with its count.
		sendAll(a, payloads("a", 5, 9))
		var dropped int
		for _, ev := range h.eventsOf(relay.EventOverflow) {
			dropped += ev.Dropped
		}
		if dropped != 3 || a.Buffered() != 4 {
			t.Fatalf("dropped %d, buffered %d", dropped, a.Buffered())
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  relay.Config
		want string
	}{
		{relay.Config{NodeID: "a"}, ""},
		{relay.Config{}, "relay: NodeID must not be empty"},
		{relay.Config{NodeID: "a", BufferMax: -1}, "relay: BufferMax must be >= 1, got -1"},
		{relay.Config{NodeID: "a", Timeout: -time.Second}, "relay: Timeout must be > 0, got -1s"},
		{relay.Config{NodeID: "a", MaxFrameSize: 10}, "relay: MaxFrameSize must be in [256, 1073741824], got 10"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && err.Error() != tt.want) {
			t.Errorf("%+v: got %v, want %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := relay.Dial(relay.Config{NodeID: "a"}, "x:1", newRecorder()); err == nil {
		t.Error("Dial without a Transport must fail")
	}
}
