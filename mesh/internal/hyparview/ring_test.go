package hyparview

import (
	"slices"
	"testing"
)

// A node keeps its ring successor: asked with high priority though the view
// is full, taken in on its accept, and the eviction that makes room spares
// the predecessor.
func TestRingKeepsSuccessor(t *testing.T) {
	m := ringed(t, 3, "s", "p", "a", "p", "b")
	askedSuccessor(t, m)
	out := receive(t, m, "s", Message{Kind: KindNeighborReply, Accept: true})
	if removed := only(out, "removed "); len(removed) != 1 || removed[0] == "removed p" {
		t.Fatalf("outputs %v: want one neighbour evicted, not the predecessor p", out)
	}
	if a := m.Active(); !slices.Contains(a, "s") || !slices.Contains(a, "p") || len(a) != 3 {
		t.Fatalf("active %v, want s and p among 3", a)
	}
	m.Tick(t0.Add(DefaultNeighborTimeout))
	if out := drain(t, m); len(only(out, "send s")) != 0 {
		t.Fatalf("successor asked again while a neighbour: %v", out)
	}
}

// A high-priority request into a full view evicts a neighbour that is not
// on the ring, and a ring neighbour only when nothing else is there.
func TestEvictSparesRing(t *testing.T) {
	m := ringed(t, 3, "s", "p", "s", "a", "p")
	drain(t, m)
	m.LinkUp("x")
	out := receive(t, m, "x", Message{Kind: KindNeighbor, High: true})
	if removed := only(out, "removed "); !slices.Equal(removed, []string{"removed a"}) {
		t.Fatalf("outputs %v: want a evicted, the only neighbour off the ring", out)
	}
	small := ringed(t, 2, "s", "p", "s", "p")
	drain(t, small)
	small.LinkUp("x")
	if removed := only(receive(t, small, "x", Message{Kind: KindNeighbor, High: true}), "removed "); len(removed) != 1 {
		t.Fatalf("a full view of ring neighbours evicted %v, want one", removed)
	}
}

// An unreachable successor is asked again, once per NeighborTimeout, and
// with room for a single neighbour there is no ring.
func TestRingRetriesAndNeedsRoom(t *testing.T) {
	m := ringed(t, 3, "s", "", "a", "b", "c")
	askedSuccessor(t, m)
	m.LinkDown("s") // the request failed at once: not asked again before NeighborTimeout
	drain(t, m)
	m.Tick(t0.Add(DefaultNeighborTimeout / 2))
	if out := drain(t, m); len(only(out, "connect s")) != 0 {
		t.Fatalf("successor asked again at once: %v", out)
	}
	m.Tick(t0.Add(DefaultNeighborTimeout))
	want(t, drain(t, m), "connect s")

	want(t, drain(t, ringed(t, 1, "s", "p", "a")))
}

// ringed returns node m with an active view of size, full with active, told
// its ring neighbours succ and pred.
func ringed(t *testing.T, size int, succ, pred string, active ...string) *Machine {
	t.Helper()
	m := newMachine(t, "m", Config{ActiveSize: size})
	withActive(t, m, active...)
	m.Ring(succ, pred)
	return m
}

// askedSuccessor checks that m asks its successor s with high priority,
// over a link it opens.
func askedSuccessor(t *testing.T, m *Machine) {
	t.Helper()
	want(t, drain(t, m), "connect s")
	m.LinkUp("s")
	want(t, drain(t, m), "send s NEIGHBOR(high)")
}
