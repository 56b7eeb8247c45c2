// Package plumtree is a node's per-origin epidemic broadcast tree
// (PROTOCOL.md, section 9) as a state machine with no goroutine, no clock
// and no IO, in the manner of relay's link machine and etcd's raft.
//
// # What it decides
//
// For each origin, each peer is eager (the origin's events go to it in
// full) or lazy (it gets IHAVE notices only). This node's own events start
// eager on every peer; another origin's start lazy and turn eager on a peer
// that GRAFTs them. A duplicate over an eager peer PRUNEs it; a noticed
// event still missing once the watermark has stopped (for a grace on a
// broken path, longer on one whose links are up) is GRAFTed from a peer
// that announced it. A full mesh so converges to each origin's star; a ring or a random
// graph to a spanning tree per origin. Config.Flood keeps every peer eager.
//
// # Inputs and outputs
//
// The caller (mesh's router) numbers its links with PeerIDs (AddPeer) and
// reports their lives (PeerUp, PeerDown, RemovePeer). It feeds the events
// it emits (Emit) and releases in order (Release), the verdicts of its
// orderer (Fresh, Duplicate), the tree messages it receives (IHave, Graft,
// Prune) and, every RoundInterval while Due said so, Round. Time comes in
// as an argument; the released watermark of each (origin, boot) comes from
// the Watermarks the caller gives New.
//
// Emit and Release return the peers the event goes to in full, in a slice
// valid until the next call: the caller encodes the event once and sends
// it on each. Everything else is appended to an outbox that Ready drains:
// messages to encode and send (Sends) and ranges of stored events to send
// again (Resends, the answer to a GRAFT, which the caller takes from its
// recent-event stores, bounded by the room its link has). The caller
// carries out each Ready before its next input, under the same lock, so
// that per-link ordering is what the machine decided.
//
// # Bounds
//
// State is per origin the machine has seen (forgotten after IdleTimeout
// without an event) times the peers that are marked, plus per missing
// (origin, boot) at most maxWaits notices. Not safe for concurrent use.
package plumtree
