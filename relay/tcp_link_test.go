package relay_test

import (
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/relay"
)

// Real sockets: the same guarantees over TCP loopback, with a dropped
// connection in the middle of the stream.
func TestLinkOverTCP(t *testing.T) {
	ah, bh := newRecorder(), newRecorder()
	srv := startServer(t, relay.TCP(), "127.0.0.1:0", cfgFor("b", nil), bh)
	cfg := cfgFor("a", relay.TCP())
	cfg.BufferMax = 5000 // the whole stream fits: nothing may be lost
	a := mustDial(t, cfg, srv.addr(), ah)
	want := payloads("a", 1, 2000)
	sendAll(a, want[:1000])
	waitFor(t, 10*time.Second, "connected", func() bool { return a.State() == relay.Connected })
	a.Drop(errors.New("test: drop mid-stream"))
	sendAll(a, want[1000:])
	back := payloads("b", 1, 500)
	sendAll(waitLink(t, srv, "a"), back)
	waitFor(t, 10*time.Second, "2000 payloads at b", func() bool { return len(bh.received("a")) >= len(want) })
	waitFor(t, 10*time.Second, "500 payloads at a", func() bool { return len(ah.received("b")) >= len(back) })
	waitFor(t, 10*time.Second, "all acknowledged", func() bool { return a.Buffered() == 0 })
	if got := bh.received("a"); !slices.Equal(got, want) {
		t.Fatalf("b got %d payloads, not exactly once in order", len(got))
	}
	if got := ah.received("b"); !slices.Equal(got, back) {
		t.Fatalf("a got %d payloads, not exactly once in order", len(got))
	}
	if ah.count(relay.EventReconnect) != 1 {
		t.Fatalf("%d reconnects after one drop", ah.count(relay.EventReconnect))
	}
}

func TestLinkOverTCPChannelMismatch(t *testing.T) {
	scfg := cfgFor("b", nil)
	scfg.Channel = "y"
	srv := startServer(t, relay.TCP(), "127.0.0.1:0", scfg, newRecorder())
	acfg := cfgFor("a", relay.TCP())
	acfg.Channel = "x"
	ah := newRecorder()
	mustDial(t, acfg, srv.addr(), ah)
	waitFor(t, 10*time.Second, "rejection", func() bool { return ah.count(relay.EventRejected) > 0 })
	if err := ah.eventsOf(relay.EventRejected)[0].Err; !errors.Is(err, relay.ErrRejected) {
		t.Fatalf("got %v", err)
	}
}

// counter is a Handler that only counts deliveries.
type counter struct{ n atomic.Int64 }

func (c *counter) Receive(_ *relay.Link, ps [][]byte)      { c.n.Add(int64(len(ps))) }
func (c *counter) Event(*relay.Link, relay.Event)          {}
func (c *counter) Identify(*relay.Link, relay.Hello) error { return nil }

// BenchmarkLinkThroughputTCP pushes b.N 200-byte payloads over one link on
// TCP loopback, with WaitSpace as the back-pressure an emitter would use.
func BenchmarkLinkThroughputTCP(b *testing.B) {
	recv := &counter{}
	srvCfg := cfgFor("b", nil)
	srvCfg.BufferMax = 10000
	srv := startServer(b, relay.TCP(), "127.0.0.1:0", srvCfg, recv)
	cfg := cfgFor("a", relay.TCP())
	cfg.BufferMax = 10000
	a := mustDial(b, cfg, srv.addr(), &counter{})
	waitFor(b, 10*time.Second, "connected", func() bool { return a.State() == relay.Connected })
	payload := make([]byte, 200)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := a.WaitSpace(b.Context()); err != nil {
			b.Fatal(err)
		}
		a.Send(payload)
	}
	waitFor(b, time.Minute, "all delivered", func() bool { return recv.n.Load() >= int64(b.N) })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
