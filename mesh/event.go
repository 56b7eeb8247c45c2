package mesh

import (
	"slices"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// Event is one event as a handler sees it.
type Event struct {
	Name string
	// Args are the emitted arguments, decoded: string, int64/uint64,
	// float64, bool, nil, []byte, []any, map[string]any. Handlers of the
	// same event share them. The slice and small []byte values are regions
	// of buffers shared with neighbouring events (capped, so an append
	// copies): a handler that keeps them for long keeps up to 16 KiB alive,
	// and should copy what it keeps. Args is nil in an OnRaw handler, which
	// reads the arguments with Scan or RawArgs.
	Args []any
	// Origin is the NodeID of the emitter.
	Origin string
	// Seq is the origin's sequence number for this event; with Origin it is
	// the event's identity. It grows across restarts of the origin: a new
	// boot starts from the clock, above anything the previous boot used.
	Seq uint64

	raw codec.Raw // the msgpack array the args came from, for Scan and RawArgs
}

// RawArgs returns the msgpack array of the event's args exactly as the
// origin encoded it (nil for an Event built without one, as in a test).
// The bytes must not be modified: the handlers of the same event share
// them, and Scan reads them. In an On handler they are the handler's to
// keep (a region of a dispatcher buffer shared with neighbouring events, so
// keeping them keeps up to 16 KiB alive). In an OnRaw handler they are lent
// for the call: the node reuses them once the handler returns, so a handler
// that keeps them copies them (or keeps e.Clone()).
func (e Event) RawArgs() []byte {
	if len(e.raw) == 0 {
		return nil
	}
	return e.raw
}

// Clone returns a copy of e that owns its args' bytes: an OnRaw handler
// keeps an event past its return, to Scan it later, by keeping e.Clone().
func (e Event) Clone() Event {
	e.raw = slices.Clone(e.raw)
	return e
}
