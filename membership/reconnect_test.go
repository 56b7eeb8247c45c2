package membership

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// A split that lasts past failure detection and past memberlist's
// GossipToTheDeadTime heals once the network does: each side tries the
// members it saw fail and the two merge. (memberlist alone never gossips
// with them again: the sides stayed apart for ever.)
func TestSplitOutlastingFailureDetectionHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMockNetwork()
		const n = 4
		nodes, _ := startMockCluster(t, net, n)

		side := func(name string) int {
			if name == nodeName(0) || name == nodeName(1) {
				return 0
			}
			return 1
		}
		net.SetFilter(func(from, to string) bool { return side(from) == side(to) })
		waitFake(t, 20*time.Second, "each side to hold the other dead", func() bool {
			return stateOf(nodes[0], nodeName(2)) == StateDead && stateOf(nodes[3], nodeName(1)) == StateDead
		})
		// Long enough for memberlist to stop gossiping with the dead (and
		// to forget them): 2s under ProbeFast.
		time.Sleep(30 * time.Second)
		for i, m := range nodes {
			if got := aliveCount(m); got != n/2 {
				t.Fatalf("during the split, %s lists %d alive, want %d", nodeName(i), got, n/2)
			}
		}

		net.SetFilter(nil)
		healed := time.Now()
		for i, m := range nodes {
			waitFake(t, 5*fastReconnectInterval, nodeName(i)+" to list all alive again", func() bool { return aliveCount(m) == n })
		}
		t.Logf("merged %v (fake) after the network healed", time.Since(healed))

		for _, m := range nodes {
			if err := m.Shutdown(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
	})
}

// Failed members are tried until reconnectTimeout, the least tried first
// and among equals the latest to fail; one seen alive again, one that
// left and one whose address an alive member now has are not.
func TestPickFailed(t *testing.T) {
	d := newDelegate(&Config{NodeID: "self", Channel: "c"}, nil)
	now := time.Unix(10000, 0)
	d.failedLocked("old", "10.0.0.1:1", StateDead, now.Add(-2*time.Hour))
	d.failedLocked("back", "10.0.0.2:1", StateDead, now)
	d.failedLocked("back", "10.0.0.2:1", StateAlive, now)
	d.failedLocked("gone", "10.0.0.3:1", StateDead, now)
	d.failedLocked("gone", "10.0.0.3:1", StateLeft, now)
	d.failedLocked("moved", "10.0.0.4:1", StateDead, now)
	d.view["newcomer"] = &entry{member: Member{Name: "newcomer", Addr: "10.0.0.4:1", State: StateAlive}}
	d.failedLocked("stale", "10.0.0.5:1", StateDead, now.Add(-50*time.Minute))
	d.failedLocked("stale2", "10.0.0.6:1", StateDead, now.Add(-40*time.Minute))
	d.failedLocked("split", "10.0.0.7:1", StateDead, now.Add(-time.Minute))

	names := func(ts []failedTry) (out []string) {
		for _, f := range ts {
			out = append(out, f.name)
		}
		return out
	}
	// Fresh failures first, then by tries: every one in turn.
	for i, want := range [][]string{{"split", "stale2"}, {"stale"}, {"split", "stale2"}, {"stale"}} {
		k := 2
		if i%2 == 1 {
			k = 1
		}
		if got := names(d.pickFailed(now, time.Hour, k)); !slices.Equal(got, want) {
			t.Fatalf("pick %d: %v, want %v", i, got, want)
		}
	}
	if len(d.failed) != 3 {
		t.Fatalf("%d failed members remembered, want 3: %v", len(d.failed), d.failed)
	}
	// A member failing now goes before those tried already.
	d.failedLocked("fresh", "10.0.0.8:1", StateDead, now)
	if got := names(d.pickFailed(now, time.Hour, 1)); !slices.Equal(got, []string{"fresh"}) {
		t.Fatalf("after a fresh failure: %v, want [fresh]", got)
	}
	if got := d.pickFailed(now.Add(2*time.Hour), time.Hour, 3); len(got) != 0 {
		t.Fatalf("members failed for longer than the timeout were still tried: %v", got)
	}
}

// Over real TCP: a member that crashed and came back at its address
// without joining anyone is found again by the node that saw it fail.
func TestFailedMemberBackAtItsAddressIsRejoined(t *testing.T) {
	a, _ := newNode(t, "node-a", nil)
	b, _ := newNode(t, "node-b", nil)
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a sees b alive", func() bool { return stateOf(a, "node-b") == StateAlive })
	addr := b.Addr()
	if err := b.Shutdown(); err != nil { // a crash: no leave
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a sees b dead", func() bool { return stateOf(a, "node-b") == StateDead })

	back := time.Now()
	b2, _ := newNode(t, "node-b", func(c *Config) { c.BindAddr = addr })
	waitFor(t, 5*fastReconnectInterval, "a lists b alive again", func() bool { return stateOf(a, "node-b") == StateAlive })
	waitFor(t, 5*time.Second, "b lists a alive", func() bool { return stateOf(b2, "node-a") == StateAlive })
	t.Logf("rejoined %v after it came back", time.Since(back).Round(10*time.Millisecond))
}
