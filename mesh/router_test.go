package mesh

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh/internal/store"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
)

// nopHandler is a relay.Handler for links that only buffer what they are
// sent: their Buffered shows what the router sent them.
type nopHandler struct{}

func (nopHandler) Receive(*relay.Link, [][]byte)           {}
func (nopHandler) Event(*relay.Link, relay.Event)          {}
func (nopHandler) Identify(*relay.Link, relay.Hello) error { return nil }

// A link hands the router payloads that are regions of its read buffer,
// overwritten by the next read once Receive returns. Whatever outlives the
// call must be a copy: an event held behind a gap, the handlers' queue, the
// graft store. Here every payload is scribbled over as soon as Receive
// returns, the way the next read would; the handlers and a GRAFT must still
// see every event as it was sent.
func TestPayloadsOutliveTheLinksBuffer(t *testing.T) {
	n, err := New(Config{NodeID: "me", Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var (
		mu  sync.Mutex
		got []string
	)
	n.On("*", func(e Event) {
		var s string
		if err := e.Scan(nil, &s); err != nil {
			t.Errorf("scan seq %d: %v", e.Seq, err)
		}
		mu.Lock()
		got = append(got, fmt.Sprintf("%d:%v:%s", e.Seq, e.Args[0], s))
		mu.Unlock()
	})
	l, err := relay.NewInbound(relay.Config{NodeID: "me", Channel: "c", Boot: 1, Logger: hclog.NewNullLogger()}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	const boot = 1000
	payload := func(seq uint64) []byte {
		args, release, err := wire.EncodeArgs([]any{int64(seq), fmt.Sprintf("event %d", seq)})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		return wire.EncodeEnvelope(&wire.Envelope{Origin: "far", Boot: boot, Seq: seq, Name: "x", Path: []string{"far"}, Args: args})
	}
	receive := func(seqs ...uint64) {
		var batch [][]byte
		for _, seq := range seqs {
			batch = append(batch, payload(seq))
		}
		linkHandler{n}.Receive(l, batch)
		for _, p := range batch {
			for i := range p {
				p[i] = 0xc1 // the next read's bytes
			}
		}
	}
	receive(boot+2, boot+3) // held behind the gap at boot, boot+1
	receive(boot + 1)       // still held
	receive(boot, boot+4)   // the gap fills: everything is released, in order

	var want []string
	for seq := uint64(boot); seq <= boot+4; seq++ {
		want = append(want, fmt.Sprintf("%d:%d:event %d", seq, seq, seq))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(got) >= len(want)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handlers got %d of %d events", len(got), len(want))
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handlers got %v\nwant %v", got, want)
	}

	// The store kept its own copies: a GRAFT is answered with intact events.
	r := n.router
	r.mu.Lock()
	for seq := uint64(boot); seq <= boot+4; seq++ {
		e := r.recent.Get(store.Key{Origin: "far", Boot: boot, Seq: seq}, r.read())
		if e == nil {
			t.Fatalf("seq %d not in the store", seq)
		}
		var env wire.Envelope
		err := (*wire.Parser)(nil).Parse(&env, nil, e.Payload)
		if err != nil || env.Seq != seq || string(env.Args) != string(payload(seq)[len(payload(seq))-len(env.Args):]) {
			t.Fatalf("stored seq %d: %v, %+v", seq, err, env)
		}
	}
	r.mu.Unlock()
}

// storedTen returns a node (BufferMax 2) that emitted 10 events with no
// link, so its own-event store keeps the last 8 for GRAFTs, and a link
// added to its router, not connected: what a GRAFT answer sends on it
// stays in its buffer, which takes 2. Both close with the test.
func storedTen(t *testing.T) (*Node, *relay.Link) {
	t.Helper()
	n, err := New(Config{NodeID: "me", BufferMax: 2, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	for i := range 10 {
		if err := n.Emit("x", i); err != nil {
			t.Fatal(err)
		}
	}
	l, err := relay.NewInbound(relay.Config{NodeID: "me", Channel: "c", Boot: 1, Logger: hclog.NewNullLogger()}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	n.router.addLink(l, nil)
	return n, l
}

// A GRAFT of this node's own events is answered from the own-event store,
// bounded by its count (4 × BufferMax) and by the room the grafting link's
// buffer has; what the store lost is counted as misses.
func TestGraftAnsweredWithinStoreAndRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, l := storedTen(t)
		r := n.router
		graft := func(from uint64) {
			r.mu.Lock()
			r.tree.Graft(r.byLink[l], wire.NewGraft("me", n.boot, from, true), r.read())
			r.carryOutLocked(r.read())
			r.mu.Unlock()
		}
		graft(n.boot)
		st := n.Stats()
		if l.Buffered() != 2 || st.GraftResent != 2 || st.GraftMisses != 2 {
			t.Fatalf("resent %d (counted %d), misses %d; want 2 (the room), 2 (evicted by count)", l.Buffered(), st.GraftResent, st.GraftMisses)
		}
		graft(n.boot + 4) // no room left: nothing sent, nothing missed
		if st := n.Stats(); l.Buffered() != 2 || st.GraftMisses != 2 {
			t.Fatalf("with a full buffer: buffered %d, misses %d", l.Buffered(), st.GraftMisses)
		}
		graft(n.boot + 10) // from the watermark: nothing to send
		if st := n.Stats(); st.GraftResent != 2 || st.GraftMisses != 2 {
			t.Fatalf("a graft from the watermark: %+v", st)
		}
	})
}

// A relayed event that this node did not forward is stored as it arrived,
// and the first GRAFT for it sends it with this node appended to its path
// (once: the re-encoding is kept).
func TestGraftOfUnforwardedEventAddsThisNodeToPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, err := New(Config{NodeID: "me", Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		from, err := relay.NewInbound(relay.Config{NodeID: "me", Channel: "c", Boot: 1, Logger: hclog.NewNullLogger()}, nopHandler{})
		if err != nil {
			t.Fatal(err)
		}
		defer from.Close()
		env := &wire.Envelope{Origin: "a", Boot: 7, Seq: 7, Name: "x", Path: []string{"a"}, Args: []byte{0x91, 0x05}}
		linkHandler{n}.Receive(from, [][]byte{wire.EncodeEnvelope(env)}) // a leaf: nothing forwarded
		r := n.router
		r.mu.Lock()
		defer r.mu.Unlock()
		k := store.Key{Origin: "a", Boot: 7, Seq: 7}
		// The link's first event of (a, 7) gets it a GRANT, and nothing else.
		if e := r.recent.Get(k, r.read()); e == nil || e.Pathed || from.Buffered() != 1 {
			t.Fatalf("stored entry %+v, sent %d; want the arrival's bytes, unpathed, only a GRANT sent", e, from.Buffered())
		}
		r.tree.Graft(r.byLink[from], wire.NewGraft("a", 7, 7, true), r.read())
		r.carryOutLocked(r.read())
		if from.Buffered() != 2 {
			t.Fatalf("graft sent %d events, want 1", from.Buffered()-1)
		}
		e := r.recent.Get(k, r.read())
		var got wire.Envelope
		if err := (*wire.Parser)(nil).Parse(&got, nil, e.Payload); err != nil || !e.Pathed {
			t.Fatalf("resent payload: %v (pathed %v)", err, e.Pathed)
		}
		if want := []string{"a", "me"}; !slices.Equal(got.Path, want) || got.Seq != 7 || string(got.Args) != string(env.Args) {
			t.Fatalf("resent path %v seq %d args %x, want path %v, seq 7, args %x", got.Path, got.Seq, got.Args, want, env.Args)
		}
	})
}

// A GRAFT from a node whose eager path still brings the origin is answered
// whole or not at all: its range's head gone from the store, it is refused
// (nothing sent, the link stays lazy, counted); a stalled grafter takes
// the tail the store still has; a range the store holds whole is answered.
func TestGraftAnsweredWholeUnlessStalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, l := storedTen(t)
		r := n.router
		r.mu.Lock()
		r.tree.Prune(r.byLink[l], "me", r.read()) // the grafter had pruned this node's events
		r.mu.Unlock()
		graft := func(from uint64, stalled bool) Stats {
			t.Helper()
			if err := r.receiveTree(l, wire.KindGraft, wire.NewGraft("me", n.boot, from, stalled).Encode()); err != nil {
				t.Fatal(err)
			}
			return n.Stats()
		}
		if st := graft(n.boot, false); l.Buffered() != 0 || st.GraftsRefused != 1 || st.GraftMisses != 0 {
			t.Fatalf("head evicted, not stalled: sent %d, refused %d, misses %d; want 0, 1, 0", l.Buffered(), st.GraftsRefused, st.GraftMisses)
		}
		r.mu.Lock()
		eager, lazy := r.tree.Counts()
		r.mu.Unlock()
		if eager != 0 || lazy != 1 {
			t.Fatalf("after a refused graft: %d eager, %d lazy (origin, link) pairs; want the link lazy still", eager, lazy)
		}
		if st := graft(n.boot+2, false); l.Buffered() != 2 || st.GraftsRefused != 1 || st.GraftMisses != 0 {
			t.Fatalf("head stored: sent %d (the link's room is 2), refused %d, misses %d", l.Buffered(), st.GraftsRefused, st.GraftMisses)
		}
		if st := graft(n.boot, true); st.GraftsRefused != 1 || st.GraftMisses != 2 {
			t.Fatalf("stalled: refused %d, misses %d; want the tail taken, the 2 evicted counted", st.GraftsRefused, st.GraftMisses)
		}
	})
}

// Events announced over the provider's own link (up) that no GRAFT brings
// are declared lost after GiveUp twice without progress: counted as
// skipped and reported, one Overflow PeerEvent (ErrGap) for the batch,
// never waited for in silence.
func TestAnnouncedNeverBroughtIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, err := New(Config{NodeID: "me", Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		var mu sync.Mutex
		var reports []PeerEvent
		n.OnPeer(func(e PeerEvent) {
			if e.Kind == Overflow {
				mu.Lock()
				reports = append(reports, e)
				mu.Unlock()
			}
		})
		l, err := relay.NewInbound(relay.Config{NodeID: "me", Channel: "c", Boot: 1, Logger: hclog.NewNullLogger()}, nopHandler{})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		n.router.linkUp(l) // the provider's link is up: nothing will be resent on a reconnect
		env := &wire.Envelope{Origin: "a", Boot: 7, Seq: 7, Name: "x", Path: []string{"a"}, Args: []byte{0x90}}
		linkHandler{n}.Receive(l, [][]byte{wire.EncodeEnvelope(env)})
		ih := wire.NewIHave([]wire.Notice{{Origin: "a", Boot: 7, Upto: 20}})
		if err := n.router.receiveTree(l, wire.KindIHave, ih.Encode()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(4 * DefaultReorderTimeout) // grafts go unanswered
		synctest.Wait()
		st := n.Stats()
		if st.Grafts == 0 || st.Skipped != 13 {
			t.Fatalf("grafts %d, skipped %d; want grafts, then 8..20 (13) declared lost", st.Grafts, st.Skipped)
		}
		time.Sleep(2 * lossInterval)
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(reports) != 1 || reports[0].Dropped != 13 || !errors.Is(reports[0].Err, ErrGap) || reports[0].PeerID != "a" {
			t.Fatalf("reports %+v, want one Overflow of 13 for origin a, ErrGap", reports)
		}
	})
}

// A GRAFT's answer is taken out of the stores when the GRAFT is answered:
// what flow control has not sent yet (the link had no room) still goes
// once room frees, though the stores, shared by every origin, moved on
// meanwhile. Taken one event at a time as flow sent it, such an answer
// lost its tail and the grafter declared it lost (four origins blasting
// over a partial view: up to 14,494 of 480,000 deliveries).
func TestGraftAnswerOutlivesTheStores(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, l := storedTen(t) // the own store holds events 2 to 9
		r := n.router
		if err := r.receiveTree(l, wire.KindGraft, wire.NewGraft("me", n.boot, n.boot+2, false).Encode()); err != nil {
			t.Fatal(err)
		}
		if st := n.Stats(); st.GraftResent != 2 {
			t.Fatalf("resent %d, want 2 (the link's room)", st.GraftResent)
		}
		time.Sleep(max(storeMaxAge, n.cfg.BufferTimeout) + time.Second) // the stores serve nothing older
		r.mu.Lock()
		defer r.mu.Unlock()
		if p := r.resendable(store.Key{Origin: "me", Boot: n.boot, Seq: n.boot + 4}, r.read()); p != nil {
			t.Fatal("the own store still serves event 4: the test evicts nothing")
		}
		r.bufferMax = 100 // the link has room again
		now := r.read()
		r.flow.Resume(now)
		r.carryFlowLocked(now)
		// The answer's rest, 4 to 9, went; from the stores it would all have
		// been misses.
		if sent, missed := n.stats.graftResent.Load(), n.stats.graftMisses.Load(); sent != 8 || missed != 0 {
			t.Fatalf("after room freed: %d resent in all, %d missed; want 8 (2, then 4 to 9), none", sent, missed)
		}
	})
}
