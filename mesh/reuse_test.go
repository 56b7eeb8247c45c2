package mesh_test

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// The router reuses its parsed envelopes as soon as an event is released;
// the handlers' queue keeps its own copy. A reuse while something still
// reads the envelope would show here as an event whose name, origin or seq
// does not match the args it was emitted with (and as a race under -race).
func TestEventsIntactUnderEnvelopeReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		a := tn.server("a")
		b := tn.node("b")
		if _, err := b.Connect("a:7947"); err != nil {
			t.Fatal(err)
		}
		const n = 5000
		var (
			mu      sync.Mutex
			got     int
			bad     []string
			lastSeq uint64
		)
		off := b.On("*", func(e mesh.Event) {
			mu.Lock()
			defer mu.Unlock()
			got++
			i, _ := e.Args[0].(int64)
			if want := fmt.Sprintf("ev%d", i%7); e.Name != want || e.Origin != "a" || e.Seq <= lastSeq || e.Args[1] != want {
				bad = append(bad, fmt.Sprintf("event %d: name %q origin %q seq %d (last %d) args %v", i, e.Name, e.Origin, e.Seq, lastSeq, e.Args))
			}
			lastSeq = e.Seq
		})
		defer off()
		eventually(t, time.Minute, "a linked to b", connected(a, 1))
		for i := range n {
			name := fmt.Sprintf("ev%d", i%7)
			if err := a.Emit(name, i, name); err != nil {
				t.Fatal(err)
			}
			if i%500 == 0 {
				time.Sleep(time.Millisecond) // let the handlers run now and then
			}
		}
		eventually(t, time.Minute, "every event delivered", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return got == n
		})
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("%d events corrupted, first: %s", len(bad), bad[0])
		}
	})
}
