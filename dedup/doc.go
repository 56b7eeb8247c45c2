// Package dedup decides whether an event has been seen before and releases each
// origin's events in sequence order, exactly once, with bounded memory.
//
// # What it owns
//
// An event's identity is (origin, boot, seq). boot is the origin's process
// incarnation and also the seq of that boot's first event, so the events of one
// boot carry the contiguous seqs boot, boot+1, boot+2, ... The [Orderer] keeps,
// per origin, the state of at most Config.MaxBoots boots; per boot it keeps
//
//   - next, the next seq to release in order (everything below it was released
//     or declared lost);
//   - the held events, those above next that wait for a gap to fill: at most
//     Config.Window-1 of them, all within [next, next+Window);
//   - the skipped ranges, seqs below next that were declared lost and never
//     delivered: at most 64 ranges (a range costs the same whatever its width).
//
// A gap waits at most Config.Grace, measured from the arrival of the earliest
// held event behind it; then it is skipped and counted (Stats.Skipped, in seqs)
// and handed to the caller by TakeSkips, so that it can report the loss.
// An event too far ahead to fit in the Window forces the oldest part of the gap
// to be skipped at once. A skipped seq that arrives later is delivered once,
// immediately and out of order (Stats.Late), or dropped with Config.DropLate.
// Offer's Verdict says which of these an arrival was: Fresh, Duplicate, Late
// or Stale.
//
// # Exactly once over bounded memory
//
// Every bound errs on the side of dropping, never of delivering twice: when the
// skipped ranges overflow, the oldest are forgotten and their seqs count as seen;
// when a new boot pushes out the oldest tracked one (the smallest boot number),
// the origin remembers the largest forgotten boot and drops every event of a boot
// at or below it. Such drops are counted as Stats.Stale. Boot numbers are only used
// to choose which boot to forget; a new boot (a restarted origin) is never stalled
// by an older one nor deduplicated away, unless its boot number is below one
// already forgotten (a wall clock that went backwards across several restarts).
//
// Origins idle for longer than Config.IdleTimeout are forgotten by Tick when
// IdleTimeout > 0; after that their events look new again, so the caller must
// choose IdleTimeout well above the time any copy of an event can stay in flight.
//
// # Concurrency and lifecycle
//
// An Orderer is a pure state machine: it starts no goroutine, reads no clock
// (time is passed in) and does no IO. It is not safe for concurrent use: the
// caller serialises every call, typically under its own lock. There is nothing
// to close; drop the Orderer to release its memory. The caller arms a timer for
// NextDeadline and calls Tick when it fires.
package dedup
