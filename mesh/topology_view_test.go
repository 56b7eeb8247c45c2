package mesh_test

import (
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// On a line a - b - c, EagerPeers shows each origin's tree: a sends its
// own events in full to b, b relays a's to c (c grafted them), and c sends
// a's to nobody. A system event reaches the handler of its exact name and
// no "*" handler.
func TestEagerPeersAndSystemEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		b := tn.server("b")
		a, c := tn.node("a"), tn.node("c")
		for _, n := range []*mesh.Node{a, c} {
			if _, err := n.Connect("b:7947"); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "b's two links", connected(b, 2))
		if got := a.EagerPeers()["a"]; !reflect.DeepEqual(got, []string{"b"}) {
			t.Fatalf("a's own origin before any event: eager to %v, want [b]", got)
		}

		var mu sync.Mutex
		var all, sys []string
		c.On("*", func(e mesh.Event) { mu.Lock(); all = append(all, e.Name); mu.Unlock() })
		c.On("$sys", func(e mesh.Event) { mu.Lock(); sys = append(sys, e.Name); mu.Unlock() })
		for _, name := range []string{"$sys", "x", "x"} {
			if err := a.Emit(name); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "c's two x events", func() bool { mu.Lock(); defer mu.Unlock(); return len(all) == 2 })
		mu.Lock()
		if !reflect.DeepEqual(all, []string{"x", "x"}) || !reflect.DeepEqual(sys, []string{"$sys"}) {
			t.Fatalf(`"*" saw %v (want [x x]), "$sys" saw %v (want [$sys])`, all, sys)
		}
		mu.Unlock()

		eventually(t, time.Minute, "b relays a's events to c in full", func() bool {
			return reflect.DeepEqual(b.EagerPeers()["a"], []string{"c"})
		})
		if got := a.EagerPeers()["a"]; !reflect.DeepEqual(got, []string{"b"}) {
			t.Fatalf("a's own origin: eager to %v, want [b]", got)
		}
		if got := c.EagerPeers()["a"]; len(got) != 0 {
			t.Fatalf("c, a leaf of a's tree, sends a's events to %v, want nobody", got)
		}
		if !mesh.IsSystemEvent("$topology") || mesh.IsSystemEvent("topology") {
			t.Fatal("IsSystemEvent")
		}
	})
}
