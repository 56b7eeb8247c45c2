package plumtree

import (
	"reflect"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

type noneReleased struct{}

func (noneReleased) Next(_ string, boot uint64) (uint64, bool) { return boot, true }
func (noneReleased) Holding(string, uint64) bool               { return false }

// EachEager lists the (origin, peer) pairs that get events in full: every
// peer for this node's own origin until it prunes, a relayed origin's
// peers only once they graft, never the origin's own node.
func TestEachEager(t *testing.T) {
	m := New(Config{Self: "a", SelfBoot: 1, Released: noneReleased{}})
	b, c := m.AddPeer(), m.AddPeer()
	m.PeerUp(b, "b", 7)
	m.PeerUp(c, "c", 9)
	eager := func() map[string][]PeerID {
		got := map[string][]PeerID{}
		m.EachEager(func(o string, p PeerID) { got[o] = append(got[o], p) })
		return got
	}
	if got, want := eager(), map[string][]PeerID{"a": {b, c}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("before any event: %v, want %v", got, want)
	}
	now := time.Unix(100, 0)
	m.Prune(c, "a", now)                                                     // c has a's events by another path
	m.Graft(c, &wire.Graft{Kind: wire.KindGraft, Origin: "b", Boot: 7}, now) // c wants b's events from this node
	m.Graft(b, &wire.Graft{Kind: wire.KindGraft, Origin: "b", Boot: 7}, now) // b is b's origin: never listed
	if got, want := eager(), map[string][]PeerID{"a": {b}, "b": {c}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a prune and grafts: %v, want %v", got, want)
	}
}
