// Command natsbench runs verbose side by side with NATS core and with raw TCP,
// in one process and one run, in the shape of meshbench's blast: one
// publisher, N-1 receivers each on its own connection, --size-byte messages
// published as fast as the publisher's call returns for --duration.
//
// Per repetition (--runs) it measures, in this order:
//
//   - raw TCP: one writer goroutine, length-prefixed frames through a
//     bufio.Writer per connection, N-1 loopback reader connections;
//   - verbose: N mesh.Nodes over loopback TCP, a full mesh by Connect, node 0
//     Emits, the others receive with an On("*") handler reading Event.Args
//     (--handler=raw: OnRaw and Event.Scan);
//   - NATS core: an embedded nats-server on loopback, one publishing client
//     connection and N-1 subscribing connections, one subscription each,
//     default limits (the server's and the client's);
//   - raw TCP again: the machine's speed drifts, and the ratio is taken
//     against the faster of the two baseline runs.
//
// Every message carries an 8-byte index and an 8-byte send timestamp; every
// 64th message is stamped with the send time, and its receive time minus
// that is a latency sample "under blast" (the queueing a message meets while
// the publisher saturates the machine). Each receiver keeps a bitmap of the
// indexes it saw: loss and duplicates are exact. A phase's clock runs from the
// first publish to the last delivery at any receiver; throughput is the
// deliveries per receiver over that time. CPU per delivery is the process's
// CPU time (user and system, getrusage) over the phase divided by the
// deliveries: it counts everything the phase ran in this process (the NATS
// server included, and verbose's N nodes).
//
// --cpuprofile writes a CPU profile of one system's phase (--profile, verbose
// by default) in the first repetition and prints where its time goes, the
// samples grouped by what they do (see groups.go).
//
// The module is separate from verbose's (bench/go.mod, with a replace of
// verbose to the parent directory) so that verbose itself never depends on
// NATS. Each system is driven through its public API only.
package main
