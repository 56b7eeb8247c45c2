package dedup

import "time"

// Defaults applied by New to zero (or negative) Config fields.
const (
	DefaultWindow   = 4096
	DefaultGrace    = time.Second
	DefaultMaxBoots = 4
)

// maxSkipRanges bounds the skipped ranges remembered per boot. Ranges, not seqs,
// cost memory, so the bound is on their number; past it the oldest are forgotten.
const maxSkipRanges = 64

// Config sets the Orderer's bounds. A zero field takes its default.
type Config struct {
	// Window bounds the reorder buffer per (origin, boot): an event at or past
	// next+Window forces the oldest part of the gap to be skipped. Default 4096.
	Window int
	// Grace is how long a gap is waited for, from the arrival of the earliest
	// event held behind it, before it is declared lost. Default 1s.
	Grace time.Duration
	// MaxBoots is how many boots (incarnations) of one origin are tracked at
	// once. Default 4.
	MaxBoots int
	// IdleTimeout, when > 0, lets Tick forget an origin that has sent nothing
	// (not even a duplicate) for longer than this. 0 never forgets. Set it well
	// above the longest time a copy of an event can be in flight (several times
	// the mesh's BufferTimeout), or a stray old copy would be delivered again.
	IdleTimeout time.Duration
	// DropLate drops a late arrival (a seq already skipped as lost) instead
	// of releasing it out of order; either way it is counted in Stats.Late.
	// Order then holds without exception, and the skip stands as the loss
	// it declared.
	DropLate bool
}

// DefaultConfig returns the Config New uses for zero fields.
func DefaultConfig() Config {
	return Config{Window: DefaultWindow, Grace: DefaultGrace, MaxBoots: DefaultMaxBoots}
}

func (c Config) withDefaults() Config {
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.Grace <= 0 {
		c.Grace = DefaultGrace
	}
	if c.MaxBoots <= 0 {
		c.MaxBoots = DefaultMaxBoots
	}
	if c.IdleTimeout < 0 {
		c.IdleTimeout = 0
	}
	return c
}

// Stats are the Orderer's counters since New. Counters only grow; Held and
// Origins are current values.
type Stats struct {
	// Fresh counts accepted arrivals (delivered at once, held, or late).
	Fresh uint64
	// Duplicates counts arrivals dropped because they were already delivered or held.
	Duplicates uint64
	// Skipped counts seqs declared lost: a gap that outlived Grace, that had to
	// make room in the Window, or that was flushed when its boot was forgotten.
	Skipped uint64
	// Late counts skipped seqs that arrived afterwards: delivered out of order,
	// or dropped with Config.DropLate.
	Late uint64
	// Stale counts arrivals dropped because the state that would tell whether
	// they are new was forgotten (an old boot, an old skipped range), or whose
	// identity is impossible (seq below boot). They may be duplicates or losses.
	Stale uint64
	// Held is the number of events currently waiting for a gap.
	Held int
	// Origins is the number of origins currently tracked.
	Origins int
}
