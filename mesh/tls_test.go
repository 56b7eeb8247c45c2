package mesh_test

import (
	"strings"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/internal/testca"
	"github.com/verbosemesh/verbose/mesh"
)

// Two nodes over mutual TLS on loopback: events cross; a node with a
// certificate from another CA is refused and reported, never linked.
func TestMutualTLSLink(t *testing.T) {
	ca := testca.New(t)
	a := tlsNode(t, "a", ca.NodeConfig("a", "127.0.0.1"))
	b := tlsNode(t, "b", ca.NodeConfig("b", "127.0.0.1"))
	got := listen(b, "secret")
	if _, err := b.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the TLS link", connected(a, 1))
	if err := a.Emit("secret", "over tls"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "delivery over TLS", func() bool { return len(got.all()) == 1 })

	stranger := tlsNode(t, "z", testca.New(t).NodeConfig("z", "127.0.0.1"))
	apeers, zpeers := watchPeers(a), watchPeers(stranger)
	if _, err := stranger.Connect(a.Addr().String()); err != nil {
		t.Fatal(err)
	}
	// The acceptor refuses the handshake and says why; the dialer, whose
	// TLS handshake fails, backs off.
	eventually(t, 10*time.Second, "the stranger refused", func() bool {
		ev, ok := apeers.find(mesh.Rejected)
		return ok && strings.Contains(ev.Err.Error(), "certificate") && zpeers.count(mesh.Backoff) > 0
	})
	for _, p := range a.Peers() {
		if p.ID() == "z" {
			t.Fatal("a node with a certificate from another CA got linked")
		}
	}
}
