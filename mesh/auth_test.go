package mesh_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/testca"
	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay"
)

// rawHello is the HELLO a hand-driven client sends, claiming id.
func rawHello(id string) relay.Frame {
	return relay.Frame{Type: relay.FrameHello, Hello: relay.Hello{Version: relay.Version, Channel: mesh.DefaultChannel,
		NodeID: id, Boot: 7, Window: 1000, MaxFrame: 1 << 20}}
}

// rawHandshake writes a HELLO claiming id on conn and returns the frame
// the node answers with (its HELLO, or a REJECT).
func rawHandshake(conn net.Conn, id string) (relay.Frame, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(relay.AppendFrame(nil, rawHello(id))); err != nil {
		return relay.Frame{}, err
	}
	return relay.ReadFrame(conn, 1<<20)
}

func tlsNode(t *testing.T, id string, cfg *tls.Config) *mesh.Node {
	t.Helper()
	return tcpNode(t, id, func(c *mesh.Config) { c.Transport = mesh.TLS(cfg) })
}

func peerIDs(n *mesh.Node) []string {
	var ids []string
	for _, p := range n.Peers() {
		ids = append(ids, p.ID())
	}
	return ids
}

// rejectedFor reports whether pl has a Rejected PeerEvent for target: its
// Err wraps target, or (a refusal read from the remote's REJECT frame)
// names it.
func rejectedFor(pl *peerLog, target error) bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for _, e := range pl.evs {
		if e.Kind == mesh.Rejected && (errors.Is(e.Err, target) || strings.Contains(fmt.Sprint(e.Err), target.Error())) {
			return true
		}
	}
	return false
}

// Under mutual TLS a certificate must name the NodeID its HELLO claims:
// a node of the same CA whose certificate says "evil" cannot link as "b",
// and a dialer refuses a node whose certificate names another id.
func TestTLSCertificateMustNameNodeID(t *testing.T) {
	ca := testca.New(t)
	a := tlsNode(t, "a", ca.NodeConfig("a", "127.0.0.1"))
	apeers := watchPeers(a)

	impostor := tlsNode(t, "b", ca.NodeConfig("evil", "127.0.0.1"))
	ipeers := watchPeers(impostor)
	if _, err := impostor.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the impostor refused on both sides", func() bool {
		return rejectedFor(apeers, relay.ErrIdentity) && rejectedFor(ipeers, relay.ErrIdentity)
	})
	if ids := peerIDs(a); len(ids) != 0 {
		t.Fatalf("a linked %v to a certificate that names another node", ids)
	}

	// The dialer checks the node it reached: "c" dials a node whose
	// certificate names "evil" while its HELLO says "d".
	d := tlsNode(t, "d", ca.NodeConfig("evil", "127.0.0.1"))
	c := tlsNode(t, "c", ca.NodeConfig("c", "127.0.0.1"))
	cpeers := watchPeers(c)
	p, err := c.Connect(d.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the dialer refusing the acceptor", func() bool { return rejectedFor(cpeers, relay.ErrIdentity) })
	if p.State() == mesh.Connected {
		t.Fatal("c connected to a node whose certificate names another id")
	}
}

// A client with a valid certificate for CN=evil repeats the handshake
// claiming "node1" while node1's link is live: every attempt is refused,
// node1's link is never replaced, and it gets every event.
func TestTLSLinkTakeoverRefused(t *testing.T) {
	ca := testca.New(t)
	a := tlsNode(t, "a", ca.NodeConfig("a", "127.0.0.1"))
	node1 := tlsNode(t, "node1", ca.NodeConfig("node1", "127.0.0.1"))
	got := listen(node1, "x")
	apeers := watchPeers(a)
	if _, err := node1.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "node1's link", connected(a, 1))
	live := a.Peers()[0]

	evil := ca.NodeConfig("evil", "127.0.0.1")
	const total = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if err := a.Emit("x", i); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 5 {
		conn, err := tls.Dial("tcp", a.Addr().String(), evil)
		if err != nil {
			t.Fatal(err)
		}
		f, err := rawHandshake(conn, "node1")
		conn.Close()
		if err != nil || f.Type != relay.FrameReject || !strings.Contains(f.Reason, "identity") {
			t.Fatalf("takeover attempt answered %v %q, %v; want a REJECT naming the identity", f.Type, f.Reason, err)
		}
	}
	wg.Wait()
	eventually(t, 10*time.Second, "every event at node1", func() bool { return len(got.all()) == total })
	eventually(t, 5*time.Second, "a Rejected PeerEvent per attempt", func() bool { return apeers.count(mesh.Rejected) >= 5 })
	if ps := a.Peers(); len(ps) != 1 || ps[0] != live || live.State() != mesh.Connected {
		t.Fatalf("node1's link was disturbed: %v", ps)
	}
	if n := apeers.count(mesh.Disconnect); n != 0 {
		t.Fatalf("node1's link dropped %d times", n)
	}
}

// With TLS that does not ask for client certificates, an accepted
// connection proves no NodeID: it may not replace a live link.
func TestOneWayTLSCannotTakeOver(t *testing.T) {
	ca := testca.New(t)
	server := ca.NodeConfig("a", "127.0.0.1")
	server.ClientAuth = tls.NoClientCert
	a := tlsNode(t, "a", server)
	client := ca.NodeConfig("node1", "127.0.0.1")
	node1 := tlsNode(t, "node1", client)
	if _, err := node1.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "node1's link", connected(a, 1))
	// The link is connected before a has node1's confirmation (admission):
	// until then any second handshake of node1 is refused as in progress,
	// which says nothing about proof. Ask again until a has settled.
	var (
		f   relay.Frame
		err error
	)
	eventually(t, 10*time.Second, "an answer from the settled link", func() bool {
		conn, derr := tls.Dial("tcp", a.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"})
		if derr != nil {
			t.Fatal(derr)
		}
		defer conn.Close()
		f, err = rawHandshake(conn, "node1")
		return err != nil || !strings.Contains(f.Reason, "already in progress")
	})
	if err != nil || f.Type != relay.FrameReject || !strings.Contains(f.Reason, "does not prove") {
		t.Fatalf("takeover attempt answered %v %q, %v; want a REJECT", f.Type, f.Reason, err)
	}
	if ps := a.Peers(); len(ps) != 1 || ps[0].State() != mesh.Connected {
		t.Fatalf("node1's link was disturbed: %v", ps)
	}
}

func keyedNode(t *testing.T, id string, key []byte) *mesh.Node {
	t.Helper()
	return tcpNode(t, id, func(c *mesh.Config) { c.GossipKey = key })
}

// A cluster key without certificates authenticates and encrypts relay
// links: nodes with the key link and exchange events; a node without it,
// or with another key, dials the relay port and neither gets the
// cluster's events nor gets its own in; a plain client that speaks the
// handshake gets no HELLO and cannot take a live link over.
func TestClusterKeyAuthenticatesLinks(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	a := keyedNode(t, "a", key)
	b := keyedNode(t, "b", key)
	apeers := watchPeers(a)
	atB, atA := listen(b, "x"), listen(a, "x")
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the keyed link", func() bool { return connected(a, 1)() && connected(b, 1)() })

	keyless, err := mesh.New(mesh.Config{NodeID: "keyless", Logger: testLogger(t, "keyless")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keyless.Close() })
	wrong := keyedNode(t, "wrong", []byte("fedcba9876543210"))
	outsiders := []*mesh.Node{keyless, wrong}
	var heard []*inbox
	for _, o := range outsiders {
		heard = append(heard, listen(o, "x"))
		if _, err := o.Connect(a.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "both outsiders refused", func() bool { return apeers.count(mesh.Rejected) >= 2 })

	// A plain client claiming "b" while b is linked.
	conn, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if f, err := rawHandshake(conn, "b"); err == nil && f.Type == relay.FrameHello {
		t.Fatalf("a plain client got a HELLO from a keyed node: %+v", f.Hello)
	}
	conn.Close()

	for i := range 10 {
		for _, o := range outsiders {
			if err := o.Emit("x", fmt.Sprint(o.ID(), i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Emit("x", i); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, "events between key holders", func() bool { return len(atB.all()) == 10 && len(atA.all()) == 10 })
	for _, e := range atA.all() {
		if e.Origin != "b" {
			t.Fatalf("a got an event of %q", e.Origin)
		}
	}
	for i, o := range outsiders {
		if n := len(heard[i].all()); n != 0 {
			t.Fatalf("%s got %d events of the keyed cluster", o.ID(), n)
		}
		for _, p := range o.Peers() {
			if p.State() == mesh.Connected {
				t.Fatalf("%s linked to a keyed node", o.ID())
			}
		}
	}
	if ids := peerIDs(a); len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("a's peers %v, want [b]", ids)
	}
}

// dialStranger connects to addr, sends a HELLO claiming id, reads the
// node's HELLO and, when confirm is set, completes the handshake with an
// ACK (as a real dialer does) before going away without a goodbye.
func dialStranger(ctx context.Context, addr, id string, confirm bool) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	f, err := rawHandshake(conn, id)
	if err != nil {
		return err
	}
	if f.Type != relay.FrameHello {
		return fmt.Errorf("refused: %s", f.Reason)
	}
	if confirm {
		_, err = conn.Write(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameAck}))
	}
	return err
}

// A node says at start how its relay links are authenticated: one warning
// when it is open, none when a cluster key keys its links.
func TestStartLogSaysWhetherOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		open bool
	}{{"open", nil, true}, {"keyed", []byte("0123456789abcdef"), false}} {
		var mu sync.Mutex
		var out strings.Builder
		log := hclog.New(&hclog.LoggerOptions{Name: tc.name, Level: hclog.Info, Output: writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return out.Write(p)
		})})
		n, err := mesh.New(mesh.Config{NodeID: tc.name, GossipKey: tc.key, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		n.Close()
		mu.Lock()
		text := out.String()
		mu.Unlock()
		warned := strings.Count(text, "[WARN]") == 1 && strings.Contains(text, "relay links are not authenticated")
		if warned != tc.open {
			t.Errorf("%s node's log: %q", tc.name, text)
		}
		if !tc.open && !strings.Contains(text, "authenticated and encrypted with the cluster key") {
			t.Errorf("keyed node's log does not say so: %q", text)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
