package mesh_test

// The seed library's own node tests (verbose for Node.js), in Go, over the
// in-memory network inside synctest bubbles: time is virtual, so back-off
// and buffer timeouts pass instantly and deterministically.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// pair is a server and clients on one in-memory network, wired by hand as
// the seed's tests do.
type testNet struct {
	t   *testing.T
	net *memnet.Network
}

func newTestNet(t *testing.T) *testNet { return &testNet{t: t, net: memnet.New(1)} }

func (tn *testNet) node(host string, tweak ...func(*mesh.Config)) *mesh.Node {
	tn.t.Helper()
	cfg := mesh.Config{NodeID: host, Transport: tn.net.Host(host), Logger: testLogger(tn.t, host)}
	for _, f := range tweak {
		f(&cfg)
	}
	n, err := mesh.New(cfg)
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(func() { n.Close() })
	return n
}

func (tn *testNet) server(host string, tweak ...func(*mesh.Config)) *mesh.Node {
	tn.t.Helper()
	n := tn.node(host, tweak...)
	if err := n.Listen(host + ":7947"); err != nil {
		tn.t.Fatal(err)
	}
	return n
}

func testLogger(t testing.TB, name string) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: hclog.Warn, Output: tlogWriter{t}})
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }()
	w.t.Log(string(p))
	return len(p), nil
}

// inbox collects events for one node.
type inbox struct {
	mu     sync.Mutex
	events []mesh.Event
}

func listen(n *mesh.Node, name string) *inbox {
	in := &inbox{}
	n.On(name, func(e mesh.Event) {
		in.mu.Lock()
		in.events = append(in.events, e)
		in.mu.Unlock()
	})
	return in
}

func (in *inbox) all() []mesh.Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.events)
}

// firstArgs returns the first argument of every event, as strings.
func (in *inbox) firstArgs() []string {
	var out []string
	for _, e := range in.all() {
		out = append(out, fmt.Sprint(e.Args[0]))
	}
	return out
}

// peerEvents records the PeerEvents of one node.
type peerLog struct {
	mu  sync.Mutex
	evs []mesh.PeerEvent
}

func watchPeers(n *mesh.Node) *peerLog {
	pl := &peerLog{}
	n.OnPeer(func(e mesh.PeerEvent) {
		pl.mu.Lock()
		pl.evs = append(pl.evs, e)
		pl.mu.Unlock()
	})
	return pl
}

func (pl *peerLog) count(k mesh.PeerEventKind) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	c := 0
	for _, e := range pl.evs {
		if e.Kind == k {
			c++
		}
	}
	return c
}

// rejected counts the Rejected events about peer id whose Err is target.
func (pl *peerLog) rejected(id string, target error) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	c := 0
	for _, e := range pl.evs {
		if e.Kind == mesh.Rejected && e.PeerID == id && errors.Is(e.Err, target) {
			c++
		}
	}
	return c
}

func (pl *peerLog) dropped(k mesh.PeerEventKind) int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	c := 0
	for _, e := range pl.evs {
		if e.Kind == k {
			c += e.Dropped
		}
	}
	return c
}

func (pl *peerLog) find(k mesh.PeerEventKind) (mesh.PeerEvent, bool) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, e := range pl.evs {
		if e.Kind == k {
			return e, true
		}
	}
	return mesh.PeerEvent{}, false
}

// eventually waits (in virtual or real time) until cond holds, or fails.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func connected(n *mesh.Node, want int) func() bool {
	return func() bool {
		c := 0
		for _, p := range n.Peers() {
			if p.State() == mesh.Connected {
				c++
			}
		}
		return c >= want
	}
}

func TestServerEmits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		client := tn.node("client")
		got := listen(client, "event")
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "server's link", connected(server, 1))
		if err := server.Emit("event", "a", 1); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the event", func() bool { return len(got.all()) == 1 })
		e := got.all()[0]
		var a string
		var b int
		if err := e.Scan(&a, &b); err != nil || a != "a" || b != 1 {
			t.Fatalf("got %v (%q, %d, %v), want [a 1]", e.Args, a, b, err)
		}
		if e.Origin != "server" || e.Name != "event" {
			t.Fatalf("got origin %q name %q", e.Origin, e.Name)
		}
	})
}

func TestClientEmitsAfterInitialized(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		got := listen(server, "event")
		client := tn.node("client")
		errs := make(chan error, 1)
		client.OnPeer(func(e mesh.PeerEvent) {
			if e.Kind == mesh.Initialized {
				errs <- client.Emit("event", "hello")
			}
		})
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "the event", func() bool { return len(got.all()) == 1 })
		if a := got.firstArgs(); a[0] != "hello" {
			t.Fatalf("got %v", a)
		}
	})
}

func TestSeveralClientsToOneServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		var clients []*mesh.Node
		var boxes []*inbox
		for i := range 3 {
			c := tn.node(fmt.Sprintf("client%d", i))
			boxes = append(boxes, listen(c, "event"))
			if _, err := c.Connect("server:7947"); err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
		eventually(t, time.Minute, "3 links at the server", connected(server, 3))
		if err := server.Emit("event", "from-server"); err != nil {
			t.Fatal(err)
		}
		// A client's event reaches the other clients through the server.
		if err := clients[0].Emit("event", "from-client0"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "deliveries", func() bool {
			return len(boxes[0].all()) == 1 && len(boxes[1].all()) == 2 && len(boxes[2].all()) == 2
		})
		if a := boxes[0].firstArgs(); !slices.Equal(a, []string{"from-server"}) {
			t.Fatalf("client0 got %v", a)
		}
		for i := 1; i < 3; i++ {
			a := boxes[i].firstArgs()
			slices.Sort(a)
			if !slices.Equal(a, []string{"from-client0", "from-server"}) {
				t.Fatalf("client%d got %v", i, a)
			}
		}
	})
}

func TestServerResendsAfterClientReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		client := tn.node("client")
		got := listen(client, "event")
		cpeers := watchPeers(client)
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "link", connected(server, 1))
		if err := server.Emit("event", "abc"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "abc", func() bool { return len(got.all()) == 1 })

		// Cut the link and keep it down while the server emits.
		tn.net.Partition([]string{"server"}, []string{"client"})
		eventually(t, time.Minute, "disconnect", func() bool { return cpeers.count(mesh.Disconnect) > 0 })
		for _, s := range []string{"def", "ghi"} {
			if err := server.Emit("event", s); err != nil {
				t.Fatal(err)
			}
		}
		tn.net.Heal()
		eventually(t, 5*time.Minute, "resent events", func() bool { return len(got.all()) == 3 })
		if a := got.firstArgs(); !slices.Equal(a, []string{"abc", "def", "ghi"}) {
			t.Fatalf("got %v, want [abc def ghi]", a)
		}
		if cpeers.count(mesh.Reconnect) == 0 {
			t.Fatal("no reconnect event at the client")
		}
		// Nothing more arrives: no duplicate from the resend.
		time.Sleep(10 * time.Second)
		if n := len(got.all()); n != 3 {
			t.Fatalf("got %d events after settling, want 3", n)
		}
	})
}

func TestPeerForgottenAfterBufferTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		speers := watchPeers(server)
		client := tn.node("client")
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "link", connected(server, 1))
		// The client goes away for good.
		tn.net.Isolate("client")
		client.Close()
		eventually(t, 2*time.Minute, "disconnect", func() bool { return speers.count(mesh.Disconnect) > 0 })
		for i := range 5 {
			if err := server.Emit("event", i); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		eventually(t, time.Hour, "expiry", func() bool { return speers.count(mesh.Expired) > 0 })
		if waited := time.Since(start); waited < 14*time.Minute {
			t.Fatalf("peer expired after %v, before BufferTimeout (15m)", waited)
		}
		if d := speers.dropped(mesh.Expired); d != 5 {
			t.Fatalf("Expired reported %d dropped events, want 5", d)
		}
		eventually(t, time.Minute, "peer removed", func() bool { return len(server.Peers()) == 0 })
	})
}

func TestOneClientSeveralServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		var boxes []*inbox
		client := tn.node("client")
		for i := range 3 {
			s := tn.server(fmt.Sprintf("server%d", i))
			boxes = append(boxes, listen(s, "event"))
			if _, err := client.Connect(fmt.Sprintf("server%d:7947", i)); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "3 links", connected(client, 3))
		for _, s := range []string{"a", "b", "c"} {
			if err := client.Emit("event", s); err != nil {
				t.Fatal(err)
			}
		}
		for i, b := range boxes {
			eventually(t, time.Minute, "deliveries", func() bool { return len(b.all()) == 3 })
			if a := b.firstArgs(); !slices.Equal(a, []string{"a", "b", "c"}) {
				t.Fatalf("server%d got %v", i, a)
			}
		}
	})
}

func TestEmitterDoesNotGetItsOwnEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		// A triangle: every event comes back round the cycle to its emitter.
		a, b, c := tn.server("a"), tn.server("b"), tn.server("c")
		for _, e := range [][2]*mesh.Node{{a, b}, {b, c}, {c, a}} {
			if _, err := e[0].Connect(e[1].Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range []*mesh.Node{a, b, c} {
			eventually(t, time.Minute, "links", connected(n, 2))
		}
		own, gotB, gotC := listen(a, "*"), listen(b, "*"), listen(c, "*")
		if err := a.Emit("event", "x"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "delivery", func() bool { return len(gotB.all()) == 1 && len(gotC.all()) == 1 })
		time.Sleep(10 * time.Second)
		if n := len(own.all()); n != 0 {
			t.Fatalf("the emitter got %d of its own events", n)
		}
		if len(gotB.all()) != 1 || len(gotC.all()) != 1 {
			t.Fatalf("b got %d, c got %d; want exactly 1 each", len(gotB.all()), len(gotC.all()))
		}
	})
}

func TestCloseIsIdempotentAndFinal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		a := tn.server("a")
		b := tn.server("b")
		if _, err := a.Connect("b:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "link", connected(b, 1))
		for range 2 {
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Emit("x"); !errors.Is(err, mesh.ErrClosed) {
			t.Fatalf("Emit after Close: %v, want ErrClosed", err)
		}
		if _, err := a.Connect("b:7947"); !errors.Is(err, mesh.ErrClosed) {
			t.Fatalf("Connect after Close: %v, want ErrClosed", err)
		}
		if err := a.Listen("a:1"); !errors.Is(err, mesh.ErrClosed) {
			t.Fatalf("Listen after Close: %v, want ErrClosed", err)
		}
	})
}
