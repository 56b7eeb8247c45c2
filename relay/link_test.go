package relay_test

import (
	"errors"
	"slices"
	"strings"
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
		ah, bh := newRecorder(), newRecorder()
		srv := startServer(t, n.Host("b"), "b:7947", cfgFor("b", nil), bh)
		a := mustDial(t, cfgFor("a", n.Host("a")), srv.addr(), ah)
		waitFor(t, time.Minute, "connected", func() bool { return a.State() == relay.Connected })
		reason := errors.New("test: drop")
		a.Drop(reason)
		waitFor(t, time.Minute, "reconnect", func() bool { return ah.count(relay.EventReconnect) == 1 })
		if d := ah.eventsOf(relay.EventDisconnect); len(d) != 1 || !errors.Is(d[0].Err, reason) {
			t.Fatalf("disconnects %+v", d)
		}
		waitFor(t, time.Minute, "connected again", func() bool { return a.State() == relay.Connected })
		a.Close()
		if a.State() != relay.Closed {
			t.Fatal("not closed after Close")
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
