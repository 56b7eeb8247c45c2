// Package hyparview keeps a node's bounded, symmetric partial view of the
// cluster: the HyParView membership protocol (Leitão, Pereira and Rodrigues,
// DSN 2007) as a pure state machine. The active view is the small set of
// peers the node keeps a link with, over which the broadcast tree runs; the
// passive view is a larger reserve of known nodes from which the active view
// is repaired when a link dies. Membership (memberlist) still discovers and
// tracks the members; it feeds the passive view.
//
// # What it owns
//
// The two views of one node, the HyParView messages that maintain them, and
// the decision of which links the node holds: which to open, when to close,
// which peers the broadcast runs over. It owns no link, socket, timer or
// wire encoding: the caller carries those out (see "The caller's contract").
//
// # The protocol
//
// A node joins by sending JOIN to a contact. The contact takes it into its
// active view (evicting a random neighbour if full), confirms with a
// NEIGHBORREPLY, and sends a FORWARDJOIN to each other neighbour: a random
// walk of ARWL hops. The node at TTL PRWL keeps the newcomer in its passive
// view; the node where a walk ends (TTL 0, or no neighbour to forward to)
// asks the newcomer to be its neighbour. The newcomer so gets about
// ActiveSize neighbours spread over the overlay, not clustered around its
// contact.
//
// Every addition to an active view is an exchange over one link: a NEIGHBOR
// request, answered by a NEIGHBORREPLY. The requester adds the peer when the
// accept arrives, the acceptor as it accepts. A high-priority request (from
// a node with no neighbour at all, or from the end of a join's walk) is
// always accepted, evicting a random neighbour if the view is full; a
// low-priority one is accepted only if there is room. An evicted neighbour
// gets a DISCONNECT that keeps each node in the other's passive view.
//
// A node repairs: when a link to an active peer is lost (LinkDown), the peer
// is dropped from both views and a passive peer is asked to replace it; at
// every Tick an active view below ActiveSize asks passive peers, with high
// priority if it is empty, else with low priority, backing off from 1s to
// ShuffleInterval while it is rejected. A request unanswered for
// NeighborTimeout fails and its peer leaves the passive view.
//
// Every ShuffleInterval a node sends a SHUFFLE on a random walk of ARWL hops
// carrying itself, ShuffleActive active and ShufflePassive passive peers; the
// walk's last node replies with as many of its passive peers and both keep
// what they received in place of what they sent. Membership's Candidates
// fill free passive slots and membership's Forget removes dead nodes, so the
// passive view holds mostly live nodes, and a node whose passive view is
// empty still bootstraps and repairs.
//
// Two departures from the paper keep both ends of a link in step: the end of
// a join's walk asks the newcomer by a high-priority NEIGHBOR instead of
// adding it outright, and the contact answers a JOIN with a NEIGHBORREPLY.
// The periodic refill to ActiveSize is ours too (the paper repairs only on
// failure); it is what makes a small cluster a full mesh.
//
// So is the ring (Ring): the caller names the node's successor and
// predecessor among all members ordered by id; the successor is kept in the
// active view by high-priority NEIGHBORs (at most one per NeighborTimeout)
// and an eviction spares both while another neighbour can go. Without it,
// nodes that start together can fill their views among themselves in two
// components that no request ever joins (a full view refuses low-priority
// requests, and nobody below its target asks); the ring joins every member.
//
// # Small clusters are a full mesh
//
// With N <= min(ActiveSize, MaxActive)+1 nodes every node is in every other's
// active view once membership has listed them: no view ever needs more room
// than N-1, so no request is rejected and nothing is evicted, and the refill
// asks every known node. This is today's topology (one link per pair), so
// small clusters behave as before.
//
// # The caller's contract
//
// After each input the caller drains the outbox (Ready, Drain) and carries
// the outputs out in order:
//
//   - Connect{P}: open a link to P, or adopt the one P is opening to this
//     node (one link per pair); report LinkUp(P) once it is established, or
//     LinkDown(P) if it cannot be (giving up within NeighborTimeout).
//     Emitted only when the machine holds no link to P.
//   - Send{P, m}: deliver m to P's machine over that link, reliably and in
//     order (relay's control frames). Emitted only while the link is up. If
//     the link is lost, m may be: the machine learns it from LinkDown.
//   - Disconnect{P}: deliver the Sends to P that precede it, then close the
//     link for good (a graceful close, not a redial); report no LinkDown(P)
//     for it and deliver nothing more from it. A later Connect{P} asks for a
//     new link. Emitted only for a held link, with P not in the active view.
//   - Added{P} / Removed{P}: P entered / left the active view. The broadcast
//     layer runs over exactly the active view: Added comes once the link is
//     up, Removed before the link closes (or after it was lost).
//
// And it reports, in the order they happen for each peer:
//
//   - LinkUp(P) for every link established, the ones P opened included,
//     before delivering any message from it; Receive(P, m) only between
//     LinkUp(P) and the link's end (ErrNotLinked otherwise).
//   - LinkDown(P) once, when a link is lost for good: closed by P (after
//     every message P sent before closing), or failed (silent for longer than
//     the link's timeout, its redial failed). Transient drops that the link
//     repairs by itself are not reported; a peer that restarted (a new boot)
//     is a new link. The LinkDown of a link comes before the LinkUp of the
//     next link with the same peer.
//   - Tick(now) periodically, about every second and at most every
//     NeighborTimeout/4: the machine's clock is the latest Tick's now, so its
//     timeouts resolve to the tick period.
//   - Candidates(ids) with members membership knows to be alive, on each
//     member join and every few seconds (all of them or a random sample; the
//     machine keeps what fits), and Forget(id) when membership declares a
//     member dead or gone.
//
// Join is optional: with candidates and an empty active view the next Tick
// connects the node by NEIGHBOR requests; Join also spreads the node into
// other nodes' views through the walks, so call it once at start with any
// alive member. Leave before shutting down tells the active peers to drop
// this node at once instead of waiting for their links to time out.
//
// # Invariants and bounds
//
// After every input, whatever the inputs were (the fuzz test feeds random
// and malformed ones):
//
//  1. Neither view holds this node, an id twice, or an id held by the other.
//  2. The active view holds at most min(ActiveSize, MaxActive) peers: a
//     high-priority request or a JOIN evicts before adding. The passive view
//     holds at most PassiveSize ids.
//  3. Every active peer's link is up.
//  4. At most min(ActiveSize, MaxActive) requests are pending, each to a peer
//     outside the active view over a held link; each fails after
//     NeighborTimeout.
//  5. A link neither the active view nor a request needs is closed once its
//     exchange is done, or by Tick NeighborTimeout after its last message.
//     At most 2 links are opened only to carry a SHUFFLEREPLY, and at most 4
//     messages wait for a link being opened.
//
// Across the cluster, once messages settle, the active views are symmetric:
// P is in Q's active view if and only if Q is in P's. An addition happens at
// both ends of one exchange over one link; a removal happens at both ends, by
// a DISCONNECT followed by the link's close, or by the link's loss, which the
// contract reports at both ends. The simulation checks it, with connectivity,
// at 50, 200 and (with -hpv.large) 1000 nodes, before and after killing 10%.
//
// A message carries at most MaxSample ids of at most MaxIDLen bytes and a TTL
// of at most MaxTTL; Message.Validate refuses anything else, and
// Machine.Receive also refuses a message from itself or from a peer it holds
// no link to. A machine's memory is a few dozen ids.
//
// # Defaults and why
//
// ActiveSize 7. The paper sizes the active view like a gossip fanout, about
// ln N + c, because its broadcast is probabilistic. Here the Plumtree floods
// every active link (eager, or lazy with GRAFT), so a connected overlay
// delivers everything; the size buys resistance to simultaneous failures and
// short paths, and costs links and lazy notices per node. 7 keeps the cost
// flat whatever N is (a node passes each event, or its notice, to at most 6
// neighbours), and is about ln N at N = 1000 and log2 N at N = 128. In the simulation at N = 1000
// it gives a mean path of 3.9 hops (5: 4.7, 10: 3.3, for 43% more links);
// a node loses all 7 neighbours to a 10% failure with probability 1e-7, and
// killing 10% at once split no simulated overlay (50 to 1000 nodes). And it
// makes clusters of up to 8 nodes, the usual deployments and the 5-node
// benchmark, a full mesh as today.
//
// MaxActive = ActiveSize: set it to the node's MaxPeers when that is lower.
//
// PassiveSize 30, ARWL 6, PRWL 3, ShuffleActive 3, ShufflePassive 4: the
// paper's values (for 10,000 nodes). A 6-hop walk ends far from the contact,
// so a newcomer's neighbours are spread; 30 passive ids leave plenty of
// replacements after 10% failures, at a cost of about a kilobyte.
//
// ShuffleInterval 10s: membership already keeps the passive view alive, so
// shuffling only mixes it; at this period it costs about 0.8 messages and
// 0.1 short-lived links per node per second (a 7-hop walk and a reply).
//
// NeighborTimeout 5s: a dial, handshake and reply take milliseconds on a
// LAN; 5s tolerates a loaded peer while bounding how long a dead passive
// peer holds a repair slot, well below the relay's 60s link timeout.
//
// # Concurrency and lifecycle
//
// A Machine starts no goroutine, reads no clock (time comes from New and
// Tick) and does no IO; its only randomness is the *rand.Rand given to New,
// so a seed reproduces a run. It is not safe for concurrent use: the caller
// serialises every call, typically on the goroutine that owns the node's
// links. There is nothing to close; Leave before shutting down.
package hyparview
