// Package memnet is an in-memory network for tests: hosts that listen and
// dial by "host:port" address, connections that behave like TCP streams
// (buffered per direction, with back-pressure, deadlines, EOF on close) and
// fault injection (cut, partition, refuse, isolate, latency).
//
// It is built for testing/synctest: no real sockets, no goroutine of its own
// except short timer callbacks (deadlines), and time read only through the
// time package, so fake time drives deadlines and latency. Ephemeral and
// port-0 ports come from a random source seeded by New, so a run is
// reproducible. A Network and its connections must be used either inside a
// single synctest bubble or outside any bubble, not both.
//
// Concurrency: every method of Network, of a Host, of a listener and of a
// connection is safe for concurrent use. A Network holds no goroutines and
// needs no Close; close the connections and listeners you open (Conns
// reports the connections still open).
//
// Semantics worth knowing:
//   - Listen on "host:port", or on ":port", "0.0.0.0:port" or "[::]:port",
//     which mean the listening host's own name. Port "0" picks a free port.
//   - A Dial to an address without a listener fails at once with
//     ErrRefused; a Dial across a partition or from or to an isolated host
//     fails at once with ErrUnreachable. A Dial succeeds before the listener
//     accepts (like a TCP backlog).
//   - Close of one side: the other side reads what was sent, then io.EOF;
//     its writes fail. A cut (Cut, CutHost, Partition, Isolate) makes both
//     sides' Read and Write fail at once with ErrCut; data in flight is lost.
//   - With latency d between two hosts, bytes written at t are readable at
//     t+d, in order; the 1 MiB per-direction buffer includes bytes in flight.
//
// Example:
//
//	n := memnet.New(1)
//	l, _ := n.Host("a").Listen("a:7947")
//	c, _ := n.Host("b").Dial(ctx, "a:7947") // c.LocalAddr() is "b:<ephemeral>"
//	n.SetLatency("a", "b", 20*time.Millisecond)
//	n.Partition([]string{"a"}, []string{"b"}) // c is cut; new dials fail
//	n.Heal()
package memnet
