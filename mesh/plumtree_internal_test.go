package mesh

import (
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/dedup"
	"github.com/verbosemesh/verbose/relay"
)

type nopHandler struct{}

func (nopHandler) Receive(*relay.Link, [][]byte, time.Time) {}
func (nopHandler) Control(*relay.Link, []byte)              {}
func (nopHandler) Event(*relay.Link, relay.Event)           {}
func (nopHandler) Identify(*relay.Link, relay.Hello) error  { return nil }

// testTree is a tree of node "me" (boot 100) with a store of storeMax
// events, and an unattached link whose buffer shows what the tree sent.
func testTree(t *testing.T, storeMax int) (*tree, *relay.Link) {
	t.Helper()
	n := &Node{id: "me", boot: 100, log: hclog.NewNullLogger(), cfg: Config{BufferTimeout: time.Minute, BufferMax: 100},
		order: dedup.New[*inbound](dedup.Config{})}
	l, err := relay.NewInbound(relay.Config{NodeID: "me", Channel: "c", Boot: 1, Logger: hclog.NewNullLogger()}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return newTree(n, false, storeMax), l
}

func ownEvent(seq uint64) (*envelope, []byte) {
	env := &envelope{Kind: kindEvent, Origin: "me", Boot: 100, Seq: seq, Name: "x", Path: []string{"me"}, Args: []byte{0x90}}
	b := encodeEnvelope(env)
	return env, b
}

// A GRAFT is answered from the store, which is bounded by count and by age;
// what it lacks is counted as misses, and the grafting link is eager again.
func TestGraftAnsweredFromBoundedStore(t *testing.T) {
	tr, l := testTree(t, 4)
	now := time.Unix(1000, 0)
	for seq := uint64(100); seq < 106; seq++ {
		env, b := ownEvent(seq)
		tr.emit(env, b, nil, now)
	}
	tr.origin("me", now).lazy[l] = time.Time{}

	tr.graft(&graftMsg{Kind: kindGraft, Origin: "me", Boot: 100, From: 100}, l, now)
	if got := l.Buffered(); got != 4 {
		t.Fatalf("resent %d events, want the 4 stored", got)
	}
	if m := tr.stats.graftMisses.Load(); m != 2 {
		t.Fatalf("%d misses, want 2 (seqs 100, 101 evicted by count)", m)
	}
	if tr.origins["me"].isLazy(l) {
		t.Fatal("the grafting link is still lazy")
	}

	// From a seq past the watermark: nothing to send, nothing missed.
	tr.graft(&graftMsg{Kind: kindGraft, Origin: "me", Boot: 100, From: 106}, l, now)
	if l.Buffered() != 4 || tr.stats.graftMisses.Load() != 2 {
		t.Fatalf("a graft from the watermark sent %d, missed %d", l.Buffered()-4, tr.stats.graftMisses.Load()-2)
	}

	// Past the age bound (here BufferTimeout, longer than storeMaxAge) every
	// entry is a miss.
	later := now.Add(max(storeMaxAge, tr.store.maxAge) + time.Second)
	tr.graft(&graftMsg{Kind: kindGraft, Origin: "me", Boot: 100, From: 104}, l, later)
	if l.Buffered() != 4 || tr.stats.graftMisses.Load() != 4 {
		t.Fatalf("after the age bound: sent %d, misses %d; want 0 sent, 4 misses", l.Buffered()-4, tr.stats.graftMisses.Load())
	}
}

// A duplicate prunes its link once, then at most every pruneRetry; never
// the link that brought the origin's last fresh event, never in flood mode.
func TestDuplicatePrunes(t *testing.T) {
	tr, l := testTree(t, 4)
	now := time.Unix(1000, 0)
	tr.duplicate("a", l, now)
	if !tr.origins["a"].isLazy(l) || tr.stats.prunes.Load() != 1 || l.Buffered() != 1 {
		t.Fatalf("first duplicate: lazy %v, prunes %d, sent %d", tr.origins["a"].isLazy(l), tr.stats.prunes.Load(), l.Buffered())
	}
	tr.duplicate("a", l, now.Add(pruneRetry/2))
	if tr.stats.prunes.Load() != 1 {
		t.Fatal("pruned again within pruneRetry")
	}
	tr.duplicate("a", l, now.Add(pruneRetry))
	if tr.stats.prunes.Load() != 2 {
		t.Fatal("not pruned again after pruneRetry while duplicates keep coming")
	}
	tr.fresh("b", l, now)
	tr.duplicate("b", l, now)
	if _, pruned := tr.origins["b"].lazy[l]; pruned || tr.stats.prunes.Load() != 2 {
		t.Fatal("the provider's link was pruned")
	}
	tr.flood = true
	tr.duplicate("c", l, now)
	if tr.origins["c"] != nil && tr.origins["c"].isLazy(l) {
		t.Fatal("flood mode pruned")
	}
}

// A notice beyond the watermark is grafted after the grace, not before; a
// notice of what was released already is ignored.
func TestNoticeGraftedAfterGrace(t *testing.T) {
	tr, l := testTree(t, 4)
	now := time.Unix(1000, 0)
	if !tr.ihave(&ihaveMsg{Kind: kindIHave, Entries: []notice{{Origin: "a", Boot: 50, Upto: 52}}}, l, now) {
		t.Fatal("a notice of unseen events is not missing")
	}
	if tr.ihave(&ihaveMsg{Kind: kindIHave, Entries: []notice{{Origin: "me", Boot: 100, Upto: 200}}}, l, now) {
		t.Fatal("a notice of our own events counts as missing")
	}
	tr.grafts(now.Add(graftGrace - time.Millisecond))
	if tr.stats.grafts.Load() != 0 {
		t.Fatal("grafted before the grace")
	}
	// l is not connected: the only announcer cannot be grafted, the entry goes.
	tr.grafts(now.Add(graftGrace))
	if tr.stats.grafts.Load() != 0 || len(tr.missing) != 0 {
		t.Fatalf("grafts %d, missing %d; want 0, 0 with no connected announcer", tr.stats.grafts.Load(), len(tr.missing))
	}
}

func TestTreePayloadsDecode(t *testing.T) {
	good := []any{
		&ihaveMsg{Kind: kindIHave, Entries: []notice{{Origin: "a", Boot: 1, Upto: 5}}},
		&graftMsg{Kind: kindGraft, Origin: "a", Boot: 1, From: 3},
		&pruneMsg{Kind: kindPrune, Origin: "a"},
	}
	for _, m := range good {
		b, err := encodeValue(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := decodeTreePayload(b); err != nil {
			t.Errorf("%T: %v", m, err)
		}
	}
	bad := []any{
		&ihaveMsg{Kind: kindIHave, Entries: []notice{{Origin: "", Boot: 1, Upto: 5}}},
		&ihaveMsg{Kind: kindIHave, Entries: []notice{{Origin: "a", Boot: 5, Upto: 4}}},
		&graftMsg{Kind: kindGraft, Origin: "a", Boot: 0, From: 3},
		&graftMsg{Kind: kindGraft, Origin: "a", Boot: 4, From: 3},
		&pruneMsg{Kind: kindPrune, Origin: ""},
	}
	for _, m := range bad {
		b, _ := encodeValue(m)
		if err := decodeTreePayload(b); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	for _, b := range [][]byte{nil, {0x80}, {0x90}, {0x91, 0xcc}, {0xdc, 0x00}} {
		if _, err := payloadKind(b); err == nil {
			t.Errorf("payloadKind(% x) accepted", b)
		}
	}
}

// decodeTreePayload decodes any tree payload by its kind.
func decodeTreePayload(b []byte) error {
	kind, err := payloadKind(b)
	if err != nil {
		return err
	}
	switch kind {
	case kindIHave:
		_, err = decodeIHave(b)
	case kindGraft:
		_, err = decodeGraft(b)
	case kindPrune:
		_, err = decodePrune(b)
	default:
		_, err = decodeEnvelope(b)
	}
	return err
}

func FuzzTreePayload(f *testing.F) {
	for _, m := range []any{
		&ihaveMsg{Kind: kindIHave, Entries: []notice{{Origin: "a", Boot: 1, Upto: 5}, {Origin: "b", Boot: 9, Upto: 9}}},
		&graftMsg{Kind: kindGraft, Origin: "a", Boot: 1, From: 3},
		&pruneMsg{Kind: kindPrune, Origin: "a"},
		&envelope{Kind: kindEvent, Origin: "a", Boot: 1, Seq: 1, Name: "x", Path: []string{"a"}, Args: []byte{0x90}},
	} {
		b, _ := encodeValue(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeTreePayload(b) // never panics; errors are the link's to drop
	})
}

// A relayed event that this node did not forward is stored as it arrived,
// and the first GRAFT for it sends it with this node appended to its path
// (once: the re-encoding is kept).
func TestGraftOfUnforwardedEventAddsThisNodeToPath(t *testing.T) {
	tr, l := testTree(t, 8)
	order := dedup.New[*inbound](dedup.Config{})
	tr.next = order.Next
	now := time.Unix(1000, 0)
	env := &envelope{Kind: kindEvent, Origin: "a", Boot: 7, Seq: 7, Name: "x", Path: []string{"a"}, Args: []byte{0x91, 0x05}}
	raw := encodeEnvelope(env)
	in, err := parseEnvelope(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &inbound{env: *in, raw: raw}
	if _, fresh := order.Offer("a", 7, 7, a, now, nil); !fresh {
		t.Fatal("not fresh")
	}
	tr.release(a, nil, now) // no links: stored, not forwarded
	if e := tr.store.get(eventKey{"a", 7, 7}, now); e == nil || e.pathed {
		t.Fatalf("stored entry %+v, want the arrival's bytes, not pathed", e)
	}

	tr.graft(&graftMsg{Kind: kindGraft, Origin: "a", Boot: 7, From: 7}, l, now)
	if l.Buffered() != 1 {
		t.Fatalf("graft sent %d events, want 1", l.Buffered())
	}
	e := tr.store.get(eventKey{"a", 7, 7}, now)
	got, err := parseEnvelope(e.payload, nil)
	if err != nil || !e.pathed {
		t.Fatalf("resent payload: %v (pathed %v)", err, e.pathed)
	}
	if want := []string{"a", "me"}; !slices.Equal(got.Path, want) || got.Seq != 7 || string(got.Args) != string(env.Args) {
		t.Fatalf("resent path %v seq %d args %x, want path %v, seq 7, args %x", got.Path, got.Seq, got.Args, want, env.Args)
	}
}
