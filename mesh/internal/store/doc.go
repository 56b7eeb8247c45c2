// Package store keeps the events a node can send again when a neighbour
// GRAFTs them (PROTOCOL.md, section 9): Recent, the last events it
// released of other origins, copied out of the link's buffer into a
// pointer-free byte ring; and Own, its own last events, as Emit encoded
// them. Both are bounded by count, bytes (MaxBytes) and age, and serve
// best effort: what they no longer hold is a miss the caller counts.
//
// Nothing here reads a clock (time is passed in), starts a goroutine or is
// safe for concurrent use: mesh's router owns both stores under its lock.
package store
