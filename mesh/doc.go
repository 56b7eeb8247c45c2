// Package mesh is verbose's public API: a Node that emits events to every
// other node of the cluster and hands remote events to handlers, exactly
// once per node and in each emitter's order, over relay links that survive
// disconnects.
//
// # Flow of an event
//
// Emit stamps the event with this node's id, boot and the next sequence
// number, encodes it once (internal/wire) and hands it to the router, which
// asks the broadcast tree (internal/plumtree) which links get it in full and
// appends it to their retransmit buffers (package relay). On a receiving
// node the link hands the router a batch of payloads; the router parses
// each, offers its identity to the orderer (package dedup), whose verdict
// says fresh, duplicate, late or stale; what the orderer releases, in origin
// order, goes where the tree says, into the recent-event store that answers
// GRAFTs (internal/store), and to the dispatcher, which runs the handlers
// on a goroutine of its own. The link acknowledges the batch once the router
// has returned. Flow control (internal/flow) stands between the router's
// decision and each consumer: an event goes to a link only with that link's
// credit for its origin and room in its buffer, and to the handlers only
// with room in their queue; what cannot go waits, in origin order, and the
// node grants its upstream links more only as it consumes (GRANT payloads).
//
// # Structure
//
//   - node.go, emit.go, accept.go, members.go, peer.go: the Node and its
//     peer table; Emit's back-pressure.
//   - router.go, inbound.go, receive.go: the router, the one place where an
//     event's fate is decided, and the relay.Handler that feeds it.
//   - dispatch.go, handlers.go, peerevents.go: handlers and their queues.
//   - losses.go: every drop reported, aggregated per interval.
//   - flow.go: back-pressure (SlowConsumerPolicy), GRANTs, Emit's wait.
//   - internal/plumtree: the per-origin broadcast tree, a state machine with
//     no IO; internal/wire: the payloads' encoding; internal/store: the
//     events kept for GRAFTs; internal/slab: the memory the event path cuts
//     its copies from; internal/flow: credit per (link, origin), a state
//     machine with no IO.
//
// # Epidemic broadcast tree
//
// Forwarding follows a per-origin Plumtree (PROTOCOL.md, section 9): for
// each origin a link is eager (events in full) or lazy (batched IHAVE
// notices only). A duplicate over an eager link prunes it; a noticed event
// still missing after a short grace is grafted from the notifying
// neighbour, which resends it from its recent-event store. A full mesh so
// converges to one copy per event and receiver. Config.Flood turns it off:
// every event over every link.
//
// # Concurrency
//
// All methods of Node and Peer are safe for concurrent use. The router holds
// one lock while it orders, forwards (a non-blocking append to a link's
// buffer) and stages for delivery; nothing on that path waits for the
// network or for handlers, and a link never calls back into the router from
// inside one of its own methods. Handlers run on one dispatcher goroutine
// per node, in delivery order (see Config.SlowConsumer for the slow-handler
// policy); OnPeer handlers on another. On handlers get Args decoded; OnRaw
// handlers read the args from their wire bytes (Event.Scan, Event.RawArgs),
// and an event that reaches only those is never decoded. Emit alone waits
// (see Node.Emit); the dispatcher, having taken a batch, and a link, having
// been acknowledged, call the router (with no lock of theirs held) so that
// flow control resumes.
//
// Locks are taken in this order, never the other way round: Node.emitMu
// (Emit), Node.mu (the peer table), router.mu (the event path); below them
// a link's, the dispatchers' and the loss reporter's locks, each held only
// for its own short work. The router never takes Node.mu; relay's Handler
// calls (Receive, Event) come on the links' goroutines with no lock held.
//
// # Time
//
// The router reads one clock (monoClock, a single monotonic reading per
// input: a batch of events, an Emit, a timer) and passes it to the orderer,
// the tree and the stores, none of which reads a clock of its own.
//
// # Lifecycle
//
// New starts the router's two timer goroutines (the orderer's deadlines,
// the tree's rounds; both idle while there is nothing to do), the two
// dispatchers (and memberlist when GossipAddr is set); Listen starts an
// accept loop; Connect and Join start links (two goroutines each). Close
// waits briefly for the peers to acknowledge what they were sent, leaves
// the cluster (the others release their links to this node at once), closes
// the links, and stops and waits for all of the goroutines.
package mesh
