package mesh

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// lendArgs is the args array of event seq: [seq, 300 bytes of byte(seq)],
// so that a chunk holds ~50 events and a reused region shows.
func lendArgs(seq uint64) []byte {
	b := msgp.AppendArrayHeader(nil, 2)
	b = msgp.AppendUint(b, seq)
	return msgp.AppendBin(b, bytes.Repeat([]byte{byte(seq)}, 300))
}

// lendRig is a dispatcher driven as the router drives it: stage, commit.
type lendRig struct {
	t      *testing.T
	tab    *handlerTable
	events *dispatcher
	seq    uint64
}

func newLendRig(t *testing.T, max int) *lendRig {
	tab := newHandlerTable()
	peers := newPeerDispatcher(tab)
	losses := newLossReporter(hclog.NewNullLogger(), peers)
	events := newDispatcher(max, tab, hclog.NewNullLogger(), losses)
	t.Cleanup(func() {
		events.close()
		losses.close()
		peers.close()
	})
	return &lendRig{t: t, tab: tab, events: events}
}

// send stages n events named name in one batch and commits them.
func (r *lendRig) send(name string, n int) {
	for range n {
		r.seq++
		env := wire.Envelope{Origin: "o", Boot: 1, Seq: r.seq, Name: name, Args: lendArgs(r.seq)}
		r.events.stage(&env)
		clear(env.Args) // the router reuses the link's buffer at once
	}
	r.events.commit()
}

// newGate is a gate that a handler waits on until open is called, or the
// test ends: a failing test must not leave the dispatcher waiting, or its
// close would wait for ever.
func newGate(t *testing.T) (gate chan struct{}, open func()) {
	gate = make(chan struct{})
	var once sync.Once
	open = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	return gate, open
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// An OnRaw handler reads exactly its event's bytes, also when the queue
// held events across many chunks while the handler was busy; the chunks
// are reused once their events are handled, so a steady flow allocates
// none; and a Clone taken in the handler keeps its bytes after the chunk
// was reused.
func TestLentArgsReusedOnlyAfterTheirHandlers(t *testing.T) {
	r := newLendRig(t, 1<<20)
	gate, open := newGate(t)
	var handled, bad atomic.Int64
	var mu sync.Mutex
	var kept []Event
	r.tab.onRaw("*", func(e Event) {
		if e.Seq == 1 {
			<-gate // hold the queue while the router stages ~100 chunks' worth
		}
		if !bytes.Equal(e.RawArgs(), lendArgs(e.Seq)) {
			bad.Add(1)
		}
		if e.Seq%500 == 0 {
			mu.Lock()
			kept = append(kept, e.Clone())
			mu.Unlock()
		}
		handled.Add(1)
	})

	for range 50 {
		r.send("x", 100)
	}
	open()
	waitFor(t, "5000 events handled", func() bool { return handled.Load() == 5000 })
	made := r.events.lend.Made()
	if made < 50 {
		t.Fatalf("%d chunks made for 5000 queued events of ~310 bytes: the events shared regions", made)
	}

	// A steady flow: each batch is handled before the next is staged.
	for i := range 400 {
		r.send("x", 10)
		want := int64(5000 + 10*(i+1))
		waitFor(t, "a batch handled", func() bool { return handled.Load() == want })
	}
	if n := r.events.lend.Made() - made; n > 2 {
		t.Errorf("a steady flow of 4000 events made %d new chunks; want them reused", n)
	}
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d handlers saw bytes other than their event's", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(kept) != 18 {
		t.Fatalf("kept %d clones, want 18", len(kept))
	}
	for _, e := range kept {
		var seq uint64
		var pad []byte
		if err := e.Scan(&seq, &pad); err != nil || seq != e.Seq || !bytes.Equal(pad, bytes.Repeat([]byte{byte(seq)}, 300)) {
			t.Fatalf("a clone of event %d scans to %d (%v): its bytes were reused", e.Seq, seq, err)
		}
	}
}

// An event that an On handler receives is not lent: its Event stays the
// handler's to keep (RawArgs and Scan after the call), also when the On
// handler was added while the event was queued as an OnRaw handler's only.
func TestOnHandlersKeepTheirEvents(t *testing.T) {
	r := newLendRig(t, 1<<20)
	gate, open := newGate(t)
	var handled atomic.Int64
	var mu sync.Mutex
	var kept []Event
	keep := func(e Event) {
		mu.Lock()
		kept = append(kept, e)
		mu.Unlock()
	}
	r.tab.onRaw("*", func(e Event) {
		if e.Name == "z" {
			<-gate
		}
		handled.Add(1)
	})
	r.tab.on("b", keep)

	r.send("z", 1)   // holds the dispatcher
	r.send("a", 200) // lent: the raw handler only
	r.send("b", 200) // owned: an On handler too
	// Events 2-201 were staged lent; an On handler for them now takes its
	// own copy.
	r.tab.on("a", keep)
	open()
	waitFor(t, "401 events handled", func() bool { return handled.Load() == 401 })
	r.send("a", 3000) // owned now
	for i := range 300 {
		r.send("c", 10) // lent, reusing the chunks
		want := int64(3401 + 10*(i+1))
		waitFor(t, "a batch handled", func() bool { return handled.Load() == want })
	}

	mu.Lock()
	defer mu.Unlock()
	if len(kept) != 3400 {
		t.Fatalf("On handlers got %d events, want 3400", len(kept))
	}
	for _, e := range kept {
		if !bytes.Equal(e.RawArgs(), lendArgs(e.Seq)) {
			t.Fatalf("an On handler's event %d (%s) was overwritten after the call", e.Seq, e.Name)
		}
		if len(e.Args) != 2 {
			t.Fatalf("an On handler's event %d has Args %v", e.Seq, e.Args)
		}
	}
}

// A full queue drops the events beyond its room, counted and reported, and
// still queues the batch for the lent chunks it leaves: they come back once
// the events before them have run, and are lent again.
func TestCommitDropsBeyondRoomKeepsChunks(t *testing.T) {
	r := newLendRig(t, 100)
	gate, open := newGate(t)
	var handled atomic.Int64
	r.tab.onRaw("*", func(e Event) {
		if e.Seq == 1 {
			<-gate
		}
		handled.Add(1)
	})
	r.send("x", 1) // taken by the dispatcher, which waits on the gate
	waitFor(t, "the dispatcher holding event 1", func() bool {
		r.events.mu.Lock()
		defer r.events.mu.Unlock()
		return len(r.events.q) == 0
	})
	r.send("x", 1000) // ~20 chunks
	if got := r.events.handlerDropped.Load(); got != 900 {
		t.Fatalf("dropped %d, want 900 (100 queued)", got)
	}
	r.events.mu.Lock()
	events, chunks := 0, 0
	for _, b := range r.events.q {
		events += len(b.items)
		chunks += len(b.chunks)
	}
	counted := r.events.events
	r.events.mu.Unlock()
	if events != 100 || counted != 100 || chunks < 15 {
		t.Fatalf("queued %d events (counted %d) and %d chunks to give back; want 100, 100, ~20", events, counted, chunks)
	}
	open()
	waitFor(t, "101 events handled", func() bool { return handled.Load() == 101 })
	made := r.events.lend.Made()
	for i := range 100 {
		r.send("x", 10)
		want := int64(101 + 10*(i+1))
		waitFor(t, "a batch handled", func() bool { return handled.Load() == want })
	}
	if n := r.events.lend.Made() - made; n > 0 {
		t.Fatalf("%d new chunks after the drop: the dropped batch's chunks never came back", n)
	}
}

// A queue item is one cache line: the router writes the items and the
// dispatcher reads them on the other core.
func TestDispatchItemIsOneCacheLine(t *testing.T) {
	if n := unsafe.Sizeof(item{}); n != 64 {
		t.Fatalf("item is %d bytes, want 64", n)
	}
}
