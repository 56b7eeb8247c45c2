package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/relay"
)

// stranger connects to a relay port, sends a HELLO claiming id, reads the
// answer and, when confirm is set, completes the handshake with an ACK as
// a real dialer does; then it goes away without a goodbye.
func stranger(ctx context.Context, addr, id string, confirm bool) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	hello := relay.Hello{Version: relay.Version, Channel: mesh.DefaultChannel, NodeID: id, Boot: 7, Window: 1000, MaxFrame: 1 << 20}
	if _, err := conn.Write(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: hello})); err != nil {
		return err
	}
	if _, err := relay.ReadFrame(conn, 1<<20); err != nil {
		return err
	}
	if confirm {
		_, err = conn.Write(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameAck}))
	}
	return err
}

// emitRate posts count events to a's /v1/emit, one after the other, and
// returns the rate.
func emitRate(t *testing.T, a *agent, count int) float64 {
	t.Helper()
	start := time.Now()
	for range count {
		emitJSON(t, a, `{"event":"x","args":[1]}`)
	}
	return float64(count) / time.Since(start).Seconds()
}

// strangers runs 1000 handshakes against addr, 16 at a time.
func strangers(t *testing.T, addr, prefix string, confirm bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	ids := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range ids {
				if err := stranger(ctx, addr, fmt.Sprint(prefix, i), confirm); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range 1000 {
		ids <- i
	}
	close(ids)
	wg.Wait()
}

// A thousand clients that send a HELLO and vanish without a goodbye (the
// attack as it was: each then held a slot, a 1000-event buffer and
// BufferTimeout of bookkeeping), against an agent with the default
// --max-peers: they leave nothing behind, and the agent's emit rate stays
// within 2× of its rate without them.
func TestThousandStrangersAgainstAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	a, b := linkedPair(t)
	// The same churn against the other agent first: under the race
	// detector, that history alone slows the process.
	strangers(t, b.node.Addr().String(), "control-", false)
	const count = 200
	emitRate(t, a, count) // warm up
	base := max(emitRate(t, a, count), emitRate(t, a, count))

	strangers(t, a.node.Addr().String(), "hello-only-", false)
	waitFor(t, 20*time.Second, "the strangers forgotten", func() bool { return len(a.node.Peers()) == 1 })
	helloOnly := max(emitRate(t, a, count), emitRate(t, a, count))

	t.Logf("/v1/emit rate %.0f/s alone, %.0f/s after 1,000 HELLO-only strangers", base, helloOnly)
	if helloOnly < base/2 {
		t.Fatalf("emit rate %.0f/s after the strangers, below half of %.0f/s without", helloOnly, base)
	}
}

// A keyless agent started with --connect to a keyed cluster's relay port
// never links: the cluster's events do not reach it, and its own do not
// reach the cluster.
func TestKeylessConnectToKeyedCluster(t *testing.T) {
	key := "QUJDREVGR0hJSktMTU5PUA==" // 16 bytes
	b := startTestAgent(t, "--node-id", "enc-b", "--encrypt", key)
	a := startTestAgent(t, "--node-id", "enc-a", "--encrypt", key, "--join", b.node.GossipAddr())
	waitFor(t, 15*time.Second, "the keyed pair linked", func() bool {
		var h healthJSON
		getJSON(t, a.url("/v1/health"), &h)
		return h.Members == 2 && h.Connected == 1
	})
	apeers := make(chan mesh.PeerEvent, 64)
	off := b.node.OnPeer(func(e mesh.PeerEvent) {
		if e.Kind == mesh.Rejected {
			select {
			case apeers <- e:
			default:
			}
		}
	})
	defer off()
	keyless := startTestAgent(t, "--node-id", "keyless", "--gossip", "", "--connect", b.node.Addr().String())
	gotA := make(chan mesh.Event, 16)
	a.node.On("x", func(e mesh.Event) { gotA <- e })
	gotK := make(chan mesh.Event, 16)
	keyless.node.On("x", func(e mesh.Event) { gotK <- e })
	select {
	case e := <-apeers:
		t.Logf("b refused the keyless node: %v", e.Err)
	case <-time.After(10 * time.Second):
		t.Fatal("b reported no refusal of the keyless node")
	}
	for range 5 {
		emitJSON(t, keyless, `{"event":"x","args":["from keyless"]}`)
		emitJSON(t, b, `{"event":"x","args":["from the cluster"]}`)
	}
	// The cluster's own events arrive; by then the keyless one's would have.
	for range 5 {
		select {
		case e := <-gotA:
			if e.Origin != "enc-b" {
				t.Fatalf("the keyed cluster got an event of %q", e.Origin)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a did not get b's events")
		}
	}
	select {
	case e := <-gotK:
		t.Fatalf("the keyless node got the cluster's event %v", e)
	case e := <-gotA:
		t.Fatalf("the keyed cluster got %v", e)
	case <-time.After(200 * time.Millisecond):
	}
	var peers []peerJSON
	getJSON(t, keyless.url("/v1/peers"), &peers)
	if len(peers) != 1 || peers[0].State == "connected" {
		t.Fatalf("keyless peers %+v, want one link, not connected", peers)
	}
}

// Strangers that handshake and vanish without a goodbye, against an agent
// with --max-peers 20: 20 that only send a HELLO hold nothing, 20 that
// complete the handshake hold the 20 slots while away; a real peer then
// gets in (the stranger away longest is released for it).
func TestStrangersCannotLockOutAPeer(t *testing.T) {
	b := startTestAgent(t, "--node-id", "node-b", "--max-peers", "20")
	addr := b.node.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 40 {
		if err := stranger(ctx, addr, fmt.Sprint("stranger-", i), i >= 20); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "20 strangers away", func() bool {
		var ps []peerJSON
		getJSON(t, b.url("/v1/peers"), &ps)
		return len(ps) == 20
	})
	a := startTestAgent(t, "--node-id", "node-a", "--connect", addr)
	waitFor(t, 10*time.Second, "the real peer linked", func() bool {
		var ps []peerJSON
		getJSON(t, b.url("/v1/peers"), &ps)
		for _, p := range ps {
			if p.ID == "node-a" && p.State == "connected" {
				return len(ps) == 20
			}
		}
		return false
	})
	got := make(chan mesh.Event, 1)
	a.node.On("x", func(e mesh.Event) {
		select {
		case got <- e:
		default:
		}
	})
	emitJSON(t, b, `{"event":"x","args":[1]}`)
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the real peer got no event")
	}
}
