package mesh_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

// A node restarted with the same NodeID and address: events emitted while
// it was down reach it and, through it, the node behind it — once, in
// order; its new events (a new boot) are not taken for duplicates.
func TestRestartSameNodeID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testcluster.NewWith(t, 3, testcluster.Options{Topology: testcluster.Line, KeepEvents: true})
		for i := range 5 {
			c.Emit(0, "before", i)
			c.Emit(1, "before", i)
		}
		c.WaitAll(t)

		c.Kill(1)
		for i := range 10 {
			c.Emit(0, "while-down", i)
		}
		c.Restart(1)
		c.WaitConnected(t)
		for i := range 5 {
			c.Emit(1, "after", i)
		}
		// Node 2 gets node 0's events from while node 1 was down, through
		// node 1, once and in order.
		c.WaitFromOrigin(t, 2, 0, 15)
		var got []int64
		for _, e := range c.Recorder(2).Events() {
			if e.Origin == c.ID(0) && e.Name == "while-down" {
				var v int64
				if err := e.Scan(&v); err != nil {
					t.Fatal(err)
				}
				got = append(got, v)
			}
		}
		if !slices.Equal(got, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Fatalf("node 2 got while-down events %v", got)
		}
		// The restarted node's new events arrive at both neighbours' sides.
		c.WaitFromOrigin(t, 0, 1, 10)
		c.WaitFromOrigin(t, 2, 1, 10)
		// And the restarted node itself got what it missed.
		c.WaitFromOrigin(t, 1, 0, 10)
		c.CheckViolations(t)
	})
}

// BufferMax 10, the peer away, events emitted without blocking: Overflow
// reports what the link's buffer dropped. Back, the peer gets the newest 10
// by the link's resend and is told how far the origin's events go (its own
// origin is announced on every link that comes up), so it grafts the rest
// from the origin's store, which keeps 4 × BufferMax: 25 events all come,
// in order; of 60, the newest 40 come and the 20 before them are reported
// skipped at the receiver.
func TestOverflowWhilePeerAway(t *testing.T) {
	for _, tc := range []struct{ emitted, skipped int }{{25, 0}, {60, 20}} {
		t.Run(fmt.Sprint(tc.emitted), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tn := newTestNet(t)
				server := tn.server("server", func(c *mesh.Config) { c.BufferMax = 10 })
				speers := watchPeers(server)
				client := tn.node("client")
				got := listen(client, "event")
				if _, err := client.Connect("server:7947"); err != nil {
					t.Fatal(err)
				}
				eventually(t, time.Minute, "link", connected(server, 1))
				tn.net.Partition([]string{"server"}, []string{"client"})
				eventually(t, 2*time.Minute, "disconnect", func() bool { return speers.count(mesh.Disconnect) > 0 })
				start := time.Now()
				for i := range tc.emitted {
					if err := server.Emit("event", i); err != nil {
						t.Fatal(err)
					}
				}
				if time.Since(start) != 0 {
					t.Fatalf("Emit blocked for %v with the peer away", time.Since(start))
				}
				dropped := tc.emitted - 10
				eventually(t, time.Minute, "overflow reports", func() bool { return speers.dropped(mesh.Overflow) == dropped })
				tn.net.Heal()
				want := make([]string, 0, tc.emitted)
				for i := tc.skipped; i < tc.emitted; i++ {
					want = append(want, fmt.Sprint(i))
				}
				eventually(t, 5*time.Minute, "the events the origin still stores", func() bool { return len(got.all()) >= len(want) })
				time.Sleep(time.Minute) // nothing more, and the gap's wait is over
				if a := got.firstArgs(); !slices.Equal(a, want) {
					t.Fatalf("got %v, want %v", a, want)
				}
				if s := server.Stats(); s.Overflowed != uint64(dropped) {
					t.Fatalf("server: Stats().Overflowed = %d, want %d", s.Overflowed, dropped)
				}
				if s := client.Stats(); s.Skipped != uint64(tc.skipped) {
					t.Fatalf("client: Stats().Skipped = %d, want %d", s.Skipped, tc.skipped)
				}
			})
		})
	}
}

func TestWrongChannelRejected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server", func(c *mesh.Config) { c.Channel = "blue" })
		client := tn.node("client", func(c *mesh.Config) { c.Channel = "green" })
		cpeers, speers := watchPeers(client), watchPeers(server)
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "rejection at both ends", func() bool {
			return cpeers.count(mesh.Rejected) > 0 && speers.count(mesh.Rejected) > 0
		})
		for _, pl := range []*peerLog{cpeers, speers} {
			ev, _ := pl.find(mesh.Rejected)
			if ev.Err == nil || !strings.Contains(ev.Err.Error(), "blue") || !strings.Contains(ev.Err.Error(), "green") {
				t.Fatalf("Rejected error %v does not name both channels", ev.Err)
			}
		}
		// No retry storm: the dialer backs off.
		time.Sleep(time.Minute)
		if n := cpeers.count(mesh.Rejected); n > 12 {
			t.Fatalf("%d rejections in a minute: no back-off", n)
		}
		if connected(server, 1)() {
			t.Fatal("a peer of another channel got linked")
		}
	})
}

// Garbage, an absurd length prefix and a silent connection on the relay
// port are each refused with a Rejected event, and the node keeps serving
// real peers.
func TestBadInputOnRelayPort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server", func(c *mesh.Config) { c.Timeout = 10 * time.Second })
		speers := watchPeers(server)
		evil := tn.net.Host("evil")
		inputs := map[string][]byte{
			"garbage":       []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			"absurd length": {0xff, 0xff, 0xff, 0xf0, 1, 2, 3},
			"truncated":     {0, 0, 0, 50, 0x93, 1},
			"silent":        nil,
		}
		for name, in := range inputs {
			conn, err := evil.Dial(t.Context(), "server:7947")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			defer conn.Close()
			if in != nil {
				if _, err := conn.Write(in); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
		eventually(t, time.Minute, "4 rejections", func() bool { return speers.count(mesh.Rejected) == len(inputs) })

		client := tn.node("client")
		got := listen(client, "event")
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "a real peer", connected(server, 1))
		if err := server.Emit("event", "still serving"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "delivery", func() bool { return len(got.all()) == 1 })
	})
}

// With SlowConsumer: Drop a stuck handler never holds back relaying: the
// node behind it gets every event, and the drops at the slow node are
// counted and reported.
func TestDropIsolatesAStuckHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		c := testcluster.NewWith(t, 3, testcluster.Options{
			Topology: testcluster.Line,
			Configure: func(i int, cfg *mesh.Config) {
				if i == 1 {
					cfg.HandlerQueue = 10
					cfg.SlowConsumer = mesh.Drop
				}
			},
		})
		slow := c.Node(1)
		off := slow.On("event", func(mesh.Event) { <-release })
		reports := watchPeers(slow)
		for i := range 200 {
			c.Emit(0, "event", i)
		}
		c.WaitFromOrigin(t, 2, 0, 200)
		eventually(t, time.Minute, "slow-consumer report", func() bool { return reports.count(mesh.Overflow) > 0 })
		ev, _ := reports.find(mesh.Overflow)
		if !errors.Is(ev.Err, mesh.ErrSlowConsumer) || ev.Peer != nil || ev.Dropped == 0 {
			t.Fatalf("slow-consumer report: %+v", ev)
		}
		if s := slow.Stats(); s.HandlerDropped == 0 {
			t.Fatal("HandlerDropped not counted")
		}
		if s := c.Node(0).Stats(); s.EmitWaits != 0 {
			t.Fatalf("the emitter waited for a Drop node's handlers: %+v", s)
		}
		off()
	})
}
