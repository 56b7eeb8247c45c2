// Package mesh is verbose's public API: a Node that emits events to every
// other node of the cluster and hands remote events to handlers, exactly
// once per node and in each emitter's order, over relay links that survive
// disconnects.
//
// # Flow of an event
//
// Emit stamps the event with this node's id, boot and the next sequence
// number, encodes it once and appends it to every link's retransmit buffer
// (package relay). A receiving node checks the identity against its orderer
// (package dedup): a duplicate is dropped; a new event is released in origin
// order, handed to the handlers and forwarded to every other link except the
// one it came over and the nodes on its path. The link acknowledges the
// frame once it is routed.
//
// # Epidemic broadcast tree
//
// Forwarding follows a per-origin Plumtree (plumtree*.go; PROTOCOL.md,
// section 9): for each origin a link is eager (events in full) or lazy
// (batched IHAVE notices only). A duplicate over an eager link prunes it; a
// noticed event still missing after a short grace is grafted from the
// notifying neighbour, which resends it from its recent-event store. A full
// mesh so converges to one copy per event and receiver. Config.Flood turns
// it off: every event over every link.
//
// # Concurrency
//
// All methods of Node and Peer are safe for concurrent use. Link readers
// call into the router, which holds one lock while it orders, forwards (a
// non-blocking append) and queues for delivery; nothing on that path waits
// for the network or for handlers. Handlers run on one dispatcher goroutine
// per node, in delivery order; see Config.HandlerQueue for the slow-handler
// policy. On handlers get Args decoded; OnRaw handlers read the args from
// their wire bytes (Event.Scan, Event.RawArgs), and an event that reaches
// only those is never decoded. A link hands the router payloads that are
// regions of its read buffer, valid during the call: what outlives it (an
// event held behind a gap, the graft store, the handlers' queue) is copied. Emit alone applies back-pressure (see Node.Emit).
//
// # Lifecycle
//
// New starts the router's timer goroutine, the tree's notice-and-graft
// goroutine (idle while there is nothing to announce or graft) and the
// dispatchers (and memberlist when GossipAddr is set); Listen starts an accept loop; Connect
// and Join start links (two goroutines each). Close stops and waits for all
// of them.
package mesh
