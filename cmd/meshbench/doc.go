// Command meshbench measures verbose against the wire's own limit: it starts
// N nodes in one process, over loopback TCP or the in-memory network
// (relay/memnet), and in one bounded run reports
//
//   - the raw-TCP baseline of the same shape: one writer, length-prefixed
//     frames through bufio, N-1 reader connections, frames/s per reader and
//     p50/p99/p999 latency at a fixed rate; with the blast, its throughput
//     is measured again after it, and the ratio taken against the faster
//     of the two runs (the machine's speed drifts; a slow baseline must not
//     flatter the ratio);
//   - blast throughput: events/s delivered per receiver with one emitter
//     emitting as fast as Emit returns, plus loss, duplicates and reorders
//     counted per (origin, index) at every receiver; with --warmup, after an
//     unmeasured blast that long (its events checked all the same), so that
//     the figures are the steady state's and not the first touch of every
//     node's buffers;
//   - redundancy: event frames received per event per receiving node, from
//     Node.Stats (1.0 is the floor; flooding a full mesh of N costs N-1);
//   - latency p50/p99/p999 at a paced rate, one hop (the chosen topology,
//     a full mesh by default) and end to end across a line of N;
//   - memory: heap per node at rest, and while 1000 events are buffered for
//     a peer that went away;
//   - time to converge: from the first Join to every link up, for N = 5, 20.
//
// The human table goes to stdout, then one machine-readable line:
//
//	RESULT nodes=5 size=128 tcp_ev_s=... mesh_ev_s=... ratio=... loss=0 dups=0 p50_us=... ...
//
// (with --json, one JSON document instead of both). Progress goes to stderr,
// one line per phase. Every phase is bounded in time; the defaults finish in
// well under two minutes on two cores.
//
// An event is --size application bytes: an 8-byte index, an 8-byte send
// timestamp (UnixNano) and size-16 bytes of padding; the TCP baseline frames
// carry the same bytes behind a 4-byte length. Receivers read the index and
// the timestamp with an OnRaw("*") handler and Event.Scan (--handler=raw, the
// default: no []any per event) or an On("*") handler and Event.Args
// (--handler=args).
//
// Concurrency and lifecycle: everything runs from run(); each phase builds
// its nodes (or sockets), measures, and closes them before the next one, so
// one phase's goroutines never disturb another's figures.
package main
