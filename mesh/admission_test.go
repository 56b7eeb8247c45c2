package mesh_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

func tcpNode(t testing.TB, id string, tweak func(*mesh.Config)) *mesh.Node {
	t.Helper()
	cfg := mesh.Config{NodeID: id, Logger: testLogger(t, id)}
	if tweak != nil {
		tweak(&cfg)
	}
	n, err := mesh.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if err := n.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return n
}

// strangers runs count handshakes against addr with ids prefix0..., width
// at a time, and fails t if any was refused.
func strangers(t testing.TB, addr, prefix string, count, width int, confirm bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	ids := make(chan int)
	for range width {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				if err := dialStranger(ctx, addr, prefix+itoa(i), confirm); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range count {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("stranger: %v", err)
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func countState(n *mesh.Node, s mesh.PeerState) int {
	c := 0
	for _, p := range n.Peers() {
		if p.State() == s {
			c++
		}
	}
	return c
}

// Clients that send a HELLO and vanish without completing the handshake
// hold nothing: twice MaxPeers of them leave no peer behind, and a real
// peer then links and gets events.
func TestHandshakeAndVanishHoldsNoSlot(t *testing.T) {
	a := tcpNode(t, "a", func(c *mesh.Config) { c.MaxPeers = 20 })
	strangers(t, a.Addr().String(), "stranger-", 40, 4, false)
	eventually(t, 10*time.Second, "the strangers forgotten", func() bool { return len(a.Peers()) == 0 })

	b := tcpNode(t, "b", nil)
	got := listen(b, "x")
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the real peer linked", func() bool { return connected(a, 1)() && connected(b, 1)() })
	if err := a.Emit("x", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the event at b", func() bool { return len(got.all()) == 1 })
}

// Clients that complete the handshake and vanish without a goodbye keep
// their slots (a client that comes back within BufferTimeout gets what it
// missed), but never lock out a peer that is here: at MaxPeers the one
// disconnected longest is released (Expired, ErrEvicted) for it.
func TestDisconnectedStrangersMakeRoom(t *testing.T) {
	a := tcpNode(t, "a", func(c *mesh.Config) { c.MaxPeers = 20 })
	apeers := watchPeers(a)
	strangers(t, a.Addr().String(), "stranger-", 20, 1, true)
	eventually(t, 10*time.Second, "20 disconnected peers", func() bool {
		return len(a.Peers()) == 20 && countState(a, mesh.Disconnected) == 20
	})
	if err := a.Emit("x", 0); err != nil { // buffered for each of them
		t.Fatal(err)
	}

	b := tcpNode(t, "b", nil)
	got := listen(b, "x")
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the real peer linked", func() bool { return connected(a, 1)() && connected(b, 1)() })
	if err := a.Emit("x", 1); err != nil {
		t.Fatal(err)
	}
	// b gets the event emitted before it linked too, grafted from a's store
	// on the notice of a's own events that a new link gets.
	eventually(t, 10*time.Second, "the events at b", func() bool { return len(got.all()) == 2 })
	if args := got.firstArgs(); !slices.Equal(args, []string{"0", "1"}) {
		t.Fatalf("b got %v, want [0 1]", args)
	}
	if n := len(a.Peers()); n != 20 {
		t.Fatalf("%d peers, want MaxPeers (20)", n)
	}
	ev, ok := apeers.find(mesh.Expired)
	// Dropped counts the link's buffer: the event, and tree messages.
	if !ok || !errors.Is(ev.Err, mesh.ErrEvicted) || !strings.HasPrefix(ev.PeerID, "stranger-") || ev.Dropped < 1 {
		t.Fatalf("eviction report %+v dropped %d (found %v), want a stranger with its buffered event", ev, ev.Dropped, ok)
	}
	if n := apeers.count(mesh.Expired); n != 1 {
		t.Fatalf("%d peers released for one slot", n)
	}
}

// lineCounter counts log lines.
type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

// emitRate emits count events from a and returns events per second, from
// the first Emit until b has them all.
func emitRate(t *testing.T, a *mesh.Node, got *inbox, count int) float64 {
	t.Helper()
	before := len(got.all())
	start := time.Now()
	for i := range count {
		if err := a.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 30*time.Second, "every event at b", func() bool { return len(got.all()) == before+count })
	return float64(count) / time.Since(start).Seconds()
}

// A thousand clients that send a HELLO and vanish without a goodbye,
// against a node with the default MaxPeers, leave nothing behind: its emit
// rate stays within 5× of its rate without them. (What this guards against
// cost 35×; at 2× the check failed when other packages' tests shared the
// two cores, which is a measurement of the machine, not of the node.)
func TestThousandStrangersKeepEmitRate(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	a := tcpNode(t, "a", nil)
	b := tcpNode(t, "b", nil)
	got := listen(b, "x")
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b linked", func() bool { return connected(a, 1)() && connected(b, 1)() })
	// The same churn of connections and goroutines against another node
	// first: under the race detector, that history alone slows a process.
	strangers(t, b.Addr().String(), "control-", 1000, 16, false)
	eventually(t, 20*time.Second, "the control strangers forgotten", func() bool { return len(b.Peers()) == 1 })
	const count = 2000
	emitRate(t, a, got, count) // warm up
	base := max(emitRate(t, a, got, count), emitRate(t, a, got, count))

	strangers(t, a.Addr().String(), "hello-only-", 1000, 16, false)
	eventually(t, 20*time.Second, "the HELLO-only strangers forgotten", func() bool { return len(a.Peers()) == 1 })
	with := max(emitRate(t, a, got, count), emitRate(t, a, got, count))
	t.Logf("emit rate %.0f/s alone, %.0f/s after 1,000 HELLO-only strangers", base, with)
	if with < base/5 {
		t.Fatalf("emit rate %.0f/s after 1,000 HELLO-only strangers, below a fifth of %.0f/s without", with, base)
	}
}

// Clients that complete the handshake and vanish keep their slots and
// buffers (they may come back). Buffering for them is an append per event
// and link: drops are reported once a second per link, never a log line or
// a PeerEvent per event. (The append is still one per absent peer and
// event: the rate with them is logged, not bounded.)
func TestAbsentPeersReportedNotPerEvent(t *testing.T) {
	lines := &lineCounter{}
	const bufferMax, absent = 100, 200
	a := tcpNode(t, "a", func(c *mesh.Config) {
		c.BufferMax = bufferMax
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "a", Level: hclog.Debug, Output: lines})
	})
	apeers := watchPeers(a)
	b := tcpNode(t, "b", nil)
	got := listen(b, "x")
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "b linked", func() bool { return connected(a, 1)() && connected(b, 1)() })
	base := emitRate(t, a, got, 3*bufferMax)

	strangers(t, a.Addr().String(), "absent-", absent, 8, true)
	eventually(t, 20*time.Second, "the strangers disconnected", func() bool {
		return countState(a, mesh.Disconnected) == absent && connected(a, 1)()
	})
	time.Sleep(1100 * time.Millisecond) // let the reports of the handshakes pass
	linesBefore, eventsBefore := lines.n.Load(), apeers.total()
	start := time.Now()
	with := emitRate(t, a, got, 3*bufferMax) // each absent buffer overflows by 2×BufferMax
	// Each buffer drops 2×BufferMax events, and the tree's notices it held.
	eventually(t, 5*time.Second, "the drops reported", func() bool { return apeers.dropped(mesh.Overflow) >= absent*2*bufferMax })
	linesDuring, eventsDuring := lines.n.Load()-linesBefore, apeers.total()-eventsBefore
	secs := int64(time.Since(start).Seconds()) + 2
	t.Logf("emit rate %.0f/s alone, %.0f/s with %d absent peers; %d log lines and %d PeerEvents for %d events",
		base, with, absent, linesDuring, eventsDuring, 3*bufferMax)
	// A few reports per absent peer and second, not one per event.
	if linesDuring > 3*absent*secs || int64(eventsDuring) > absent*secs {
		t.Errorf("%d log lines and %d PeerEvents while emitting %d events to %d absent peers", linesDuring, eventsDuring, 3*bufferMax, absent)
	}
}

func (pl *peerLog) total() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.evs)
}

// A dialer that closes its link and connects again, in the same boot,
// numbers its frames from 1 on the new link: the acceptor's link, which
// remembers the old one's, starts afresh (the dialer's HELLO does not ack
// the acceptor's boot), instead of taking the new frames for duplicates.
func TestRedialWithNewLinkDelivers(t *testing.T) {
	a := tcpNode(t, "a", nil)
	b := tcpNode(t, "b", nil)
	got := listen(a, "x")
	p, err := b.Connect(a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the link", func() bool { return connected(a, 1)() && connected(b, 1)() })
	for i := range 5 {
		if err := b.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "5 events at a", func() bool { return len(got.all()) == 5 })
	eventually(t, 10*time.Second, "b's buffer acknowledged", func() bool { return p.Buffered() == 0 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the new link", func() bool { return connected(b, 1)() && connected(a, 1)() })
	for i := 5; i < 10; i++ {
		if err := b.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "10 events at a", func() bool { return len(got.all()) == 10 })
}
