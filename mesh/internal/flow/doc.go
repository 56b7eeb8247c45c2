// Package flow is a node's back-pressure: credit per (link, origin), in the
// manner of HTTP/2's and QUIC's per-stream flow control, as a state machine
// with no goroutine, no clock and no IO.
//
// # Credit
//
// An origin's events carry contiguous seqs within a boot, and every node
// handles each origin's events in seq order. A receiver says how far a
// sender may go in that order: GRANT(origin, boot, upto) on a link lets the
// sender send the origin's events with seq <= upto over it. The receiver
// grants upto = c + Window - 1, where c is its consumed watermark for the
// (origin, boot): every event below c has been forwarded to the links the
// tree sends it to and handed to this node's handlers. It grants again each
// time c has moved a quarter of the Window (Mflow's batched feedback: a
// grant per quarter window, not per event), and at once to a link that
// starts bringing the origin's events. Before its first grant for a
// (link, origin, boot), a sender may send the receiver's Window (from its
// handshake) from the first seq it sends there; a GRAFT grants the same
// from the seq it asks for. Grants are cumulative, carry their own
// position, and ride the reliable link, so a lost, repeated or reordered
// grant is harmless.
//
// A send on a connected link needs both the (link, origin)'s credit and
// room in the link's retransmit buffer (the caller's Rooms); an event that
// has not both waits, in its origin's FIFO, with every later event of that
// origin for that link. A link that is down takes events in full, without
// credit: its retransmit buffer keeps them, within BufferMax, for when it is
// back. This node's handlers are one more target (Local), whose room is the
// handler queue's.
//
// # Why it cannot deadlock
//
// A node waits for a (link, origin) only on its downstream in that origin's
// broadcast tree, and for its handlers. The receiver's credit for origin X
// depends on nothing but its own consumption of X: its handlers (which wait
// on nothing) and its own downstream links for X. X's tree is acyclic, so
// the waits for X form a tree rooted at X with handlers at the leaves, and
// every wait ends when the leaves consume. No wait for X involves another
// origin's credit, and the link reader never waits at all (what a sender
// sends, the receiver granted, so it can hold it; acknowledgements follow
// reading, not consumption), so the one TCP stream a link has cannot carry
// a cycle from one origin's tree into another's. Link room is freed by the
// remote reader alone, which waits on nothing.
//
// # Slow consumers
//
// A target that takes nothing for Timeout while events wait on it (no grant
// that moves its credit, no room freed; for Local, no event taken by the
// handlers, for Timeout/2, so that a node stops waiting for its own stuck
// handlers before its senders would give up on it) is declared slow: from then on it gets events without credit,
// into its retransmit buffer (bounded by BufferMax, drops reported) or, for
// Local, into the handler queue (bounded by HandlerQueue, drops reported),
// and nobody waits for it, until it takes something again. So a stuck
// consumer stalls its senders once, for at most Timeout. With Config.Drop,
// Local never waits (the handler queue drops past its bound) and an origin
// holds at most Window events for its links, dropping the oldest beyond:
// this node never slows anyone else.
//
// # Inputs and outputs
//
// Release (an event the orderer released, or this node's own), Arrived
// (an event came over a link, fresh or not), Granted (a GRANT came), the
// peers' lives (AddPeer, PeerUp, PeerDown, RemovePeer), Resume (room may
// have freed) and Tick (time passed). Release answers at once what goes
// now (Decision); what waits is kept with the item the caller hands over
// (Keep) and comes out later in Ready: items to send, items to deliver,
// grants to send, and notices of peers declared slow or recovered. Not safe
// for concurrent use.
//
// # Bounds
//
// Per origin, at most Window released events wait here (a sender sends no
// more than granted; mesh's Emit waits while any of its own events waits),
// plus what a reconnecting link resends, at most its BufferMax.
package flow
