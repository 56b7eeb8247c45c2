package membership

import (
	"strconv"
	"testing"
	"testing/synctest"
	"time"
)

// newMockNode starts a member on net inside the current synctest bubble.
func newMockNode(t *testing.T, net *MockNetwork, name string) (*Membership, *recorder) {
	t.Helper()
	rec := &recorder{}
	m, err := New(Config{
		NodeID:    name,
		Channel:   "test",
		Transport: net.Transport(name),
		Meta:      Meta{RelayAddr: "relay-" + name, Version: 1},
		Logger:    testLogger(),
		Events:    rec.add,
		ProbeFast: true,
	})
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return m, rec
}

// startMockCluster starts n members on net inside the current synctest
// bubble, joins them all through the first and waits until each lists
// every one alive.
func startMockCluster(t *testing.T, net *MockNetwork, n int) ([]*Membership, []*recorder) {
	t.Helper()
	nodes := make([]*Membership, n)
	recs := make([]*recorder, n)
	for i := range n {
		nodes[i], recs[i] = newMockNode(t, net, nodeName(i))
	}
	for i := 1; i < n; i++ {
		if _, err := nodes[i].Join(nodes[0].Addr()); err != nil {
			t.Fatalf("join %d: %v", i, err)
		}
	}
	for i, m := range nodes {
		waitFake(t, 5*time.Second, nodeName(i)+" to list all", func() bool { return aliveCount(m) == n })
	}
	return nodes, recs
}

// waitFake advances the bubble's fake clock in small steps until cond
// holds, failing after limit of fake time.
func waitFake(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); {
		if time.Since(start) > limit {
			t.Fatalf("after %v of fake time, still waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
	}
}

// memberlist runs inside a synctest bubble over MockNetwork: joins,
// failure detection and leave all happen in fake time, and every goroutine
// memberlist started is gone when the bubble ends (synctest checks that).
func TestMockNetworkInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMockNetwork()
		const n = 4
		nodes, recs := startMockCluster(t, net, n)

		// Partition node 3 away: the others declare it dead in fake time.
		cut := nodeName(3)
		net.SetFilter(func(from, to string) bool { return from != cut && to != cut })
		start := time.Now()
		waitFake(t, 10*time.Second, "node 3 dead on node 0", func() bool { return stateOf(nodes[0], cut) == StateDead })
		t.Logf("partitioned node declared dead after %v (fake)", time.Since(start))

		// Heal: memberlist's push/pull brings it back as alive.
		net.SetFilter(nil)
		waitFake(t, 30*time.Second, "node 3 alive again on node 0", func() bool { return stateOf(nodes[0], cut) == StateAlive })

		// Restart node 2 under the same name: it comes back at its address.
		if err := nodes[2].Shutdown(); err != nil {
			t.Fatal(err)
		}
		waitFake(t, 10*time.Second, "node 2 dead on node 0", func() bool { return stateOf(nodes[0], nodeName(2)) == StateDead })
		nodes[2], recs[2] = newMockNode(t, net, nodeName(2))
		if _, err := nodes[2].Join(nodes[0].Addr()); err != nil {
			t.Fatalf("rejoin: %v", err)
		}
		waitFake(t, 10*time.Second, "node 2 alive again on node 0", func() bool { return stateOf(nodes[0], nodeName(2)) == StateAlive })

		// Graceful leave.
		if err := nodes[1].Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		waitFake(t, 5*time.Second, "node 1 left on node 0", func() bool { return stateOf(nodes[0], nodeName(1)) == StateLeft })

		for _, m := range nodes {
			if err := m.Shutdown(); err != nil {
				t.Fatal(err)
			}
		}
		// memberlist's goroutines exit on their own after Shutdown; let
		// fake time run until they have (synctest.Test fails otherwise).
		time.Sleep(5 * time.Second)
		synctest.Wait()
	})
}

// A dial or packet to a stopped transport neither blocks nor panics.
func TestMockTransportStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMockNetwork()
		a := net.Transport("a")
		b := net.Transport("b")
		ip, port, err := b.FinalAdvertiseAddr("", 0)
		if err != nil {
			t.Fatal(err)
		}
		addr := ip.String() + ":" + strconv.Itoa(port)
		if err := b.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if _, err := a.WriteTo([]byte("x"), addr); err != nil {
			t.Fatalf("WriteTo a stopped node = %v, want a silent drop", err)
		}
		if _, err := a.DialTimeout(addr, time.Second); err == nil {
			t.Fatal("dial to a stopped node succeeded")
		}
		// The name keeps its address across a restart.
		b2 := net.Transport("b")
		ip2, port2, _ := b2.FinalAdvertiseAddr("", 0)
		if ip2.String()+":"+strconv.Itoa(port2) != addr {
			t.Fatalf("restarted transport at %s:%d, want %s", ip2, port2, addr)
		}
		go func() {
			c := <-b2.StreamCh()
			_ = c.Close()
		}()
		c, err := a.DialTimeout(addr, time.Second)
		if err != nil {
			t.Fatalf("dial restarted node: %v", err)
		}
		_ = c.Close()
		_ = a.Shutdown()
		_ = b2.Shutdown()
	})
}
