// Command meshnode is the verbose agent and its client.
//
// `meshnode agent` runs one mesh.Node in its own process: it listens for
// relay links, joins a cluster by gossip, and serves an HTTP API on loopback
// (emit, a stream of received events, members, peers, health, readiness,
// Prometheus metrics, the last optionally on a listener of its own). The
// other subcommands (emit, tail, members, peers, health, ready, version)
// are thin clients of that HTTP API, at --http or $MESHNODE_HTTP_ADDR.
//
// Settings: flags, then MESHNODE_* environment variables (envName), then
// a JSON --config file, then defaults, in that order of precedence.
//
// Local delivery: the node never hands its own events to its handlers, so
// an event emitted through POST /v1/emit is given to the agent's own
// /v1/events streams by the API itself, after the node accepted it and in
// the order of the emits (marked "local": true, seq 0).
//
// It owns nothing of the protocol: it uses only package mesh's public API.
//
// Concurrency: the node's handlers (one On per event stream, one OnPeer for
// metrics) run on the node's dispatcher goroutine. Each stream subscriber
// has a bounded queue; when it is full, with --slow-consumer backpressure
// (the default) the handler waits for the reader, up to the stream's write
// timeout, so that the mesh holds its senders back instead of losing events;
// with drop, or after that wait, the event is dropped for that subscriber
// only, counted and reported in the stream.
// Metrics read node.Stats() and node.Peers() at scrape time.
//
// Lifecycle: the agent starts the node, its relay listener, the HTTP server,
// with --data-dir a goroutine that records the members in a snapshot
// (snapshot.go), and a background join of the --join seeds and the
// snapshot's members (retried with back-off until one answers). On
// SIGINT or SIGTERM it closes the node (leaving the cluster and closing its
// links), ends the event streams, shuts the HTTP server down and exits 0;
// every goroutine it started is waited for. Flag errors exit 2, errors
// building or starting the node exit 1.
package main
