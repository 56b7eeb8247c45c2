// Package membership puts hashicorp/memberlist behind a small API: join a
// cluster by seed, carry this node's metadata (relay address, channel,
// protocol version), report members joining, updating and leaving, gossip
// encryption, memberlist's logs routed to ours, and its metrics to a sink
// of ours when the application allows touching go-metrics' process-wide
// sink (Config.GlobalMetrics; see metrics.go). It is the only package of
// verbose that imports memberlist, and it knows nothing of relay frames or
// the mesh.
//
// # What it owns
//
// One memberlist instance per Membership, its configuration (built from
// DefaultLANConfig; memberlistConfig lists every override and why), the
// encoding of Meta as memberlist node metadata, and a view of the other
// members kept from memberlist's notifications. Channels are kept apart
// twice: memberlist's Label ("verbose/"+Channel) refuses other channels'
// packets and streams, and a member whose metadata names another channel
// is ignored.
//
// # Splits heal
//
// memberlist stops gossiping with a member shortly after declaring it
// dead, so a split that outlasts failure detection would never merge on
// its own. Each node remembers the members it saw fail and, as serf does,
// tries to join them for a day (reconnect.go): three every 30s, the least
// tried first, so that members gone for good do not hold back a split
// that healed.
//
// # Concurrency
//
// All methods are safe for concurrent use. memberlist calls our delegate
// with its node lock held; the delegate only updates the view and appends
// to an unbounded queue, so a slow Config.Events never stalls gossip or
// failure detection, and no event (a leave least of all) is dropped while
// running. One goroutine of ours drains the queue into Config.Events, in
// the order memberlist reported the changes.
//
// # Lifecycle
//
// New starts memberlist (listening, not joined), the event goroutine and
// the reconnecting one. Join may be called any number of times. Leave
// announces a graceful departure but keeps gossiping; Shutdown stops
// memberlist and waits for the event goroutine. Shutdown is idempotent;
// other methods return ErrClosed after it. memberlist's own goroutines
// notice the shutdown asynchronously and are gone a few milliseconds later
// (a connection being served can keep one until memberlist's TCPTimeout).
//
// # Tests
//
// MockNetwork provides an in-memory transport (Config.Transport) that runs
// inside testing/synctest; ProbeFast shortens memberlist's timings so a
// failure is detected within about a second.
package membership
