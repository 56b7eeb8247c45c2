package mesh

import (
	"bytes"

	"github.com/verbosemesh/verbose/mesh/internal/plumtree"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// inbound is an arriving event: its envelope, the peer it came from, its
// encoding as it came (env.Args aliases it), and the room for a path of up
// to pathRoom ids (the origin, its forwarders, this node). raw is the link's
// read buffer, valid while the link's Receive runs; an event held behind a
// gap outlives it and owns a copy (own).
type inbound struct {
	env  wire.Envelope
	from plumtree.PeerID
	raw  []byte
	path [pathRoom]string
}

// pathRoom is the longest path an inbound holds without an allocation of
// its own: a partial view's tree is several hops deep (1,000 nodes with
// views of 7: about 4 to 6), and with room for 3 ids the parse of every
// event past two hops allocated its path (meshbench, 100 nodes, view 7:
// 5% of the CPU, beside as much again for its garbage).
const pathRoom = 8

// own copies raw, which env.Args ends, out of the link's buffer.
func (in *inbound) own() {
	raw := bytes.Clone(in.raw)
	in.env.Args = raw[len(raw)-len(in.env.Args):]
	in.raw = raw
}

// arrivals reuses inbounds: one is taken per fresh event and free again
// once the event is released (forwarded, stored, staged for the handlers:
// each keeps a copy of what it needs), so that a steady stream of events
// allocates none. Guarded by the router's lock.
type arrivals struct {
	chunk []inbound  // the unused rest of the last allocation
	spare []*inbound // released inbounds to parse into again
}

const (
	inboundChunk = 32 // inbounds allocated at once when none is spare
	maxSpare     = 64 // spare inbounds kept (after a burst of held events)
)

// next returns the inbound the next arrival is parsed into. It stays the
// next one (and is overwritten) until take, so a duplicate or a bad
// payload costs nothing.
func (a *arrivals) next() *inbound {
	if k := len(a.spare); k > 0 {
		return a.spare[k-1]
	}
	if len(a.chunk) == 0 {
		a.chunk = make([]inbound, inboundChunk)
	}
	return &a.chunk[0]
}

// take takes the inbound next returned.
func (a *arrivals) take() {
	if k := len(a.spare); k > 0 {
		a.spare[k-1] = nil
		a.spare = a.spare[:k-1]
		return
	}
	a.chunk = a.chunk[1:]
}

// reuse makes in spare: nothing refers to it any more.
func (a *arrivals) reuse(in *inbound) {
	if len(a.spare) < maxSpare {
		a.spare = append(a.spare, in)
	}
}
