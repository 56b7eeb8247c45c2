package hyparview

import (
	"errors"
	"fmt"
	"time"
)

// Defaults applied by New to zero Config fields; doc.go says why.
const (
	DefaultActiveSize      = 7
	DefaultPassiveSize     = 30
	DefaultARWL            = 6
	DefaultPRWL            = 3
	DefaultShuffleInterval = 10 * time.Second
	DefaultShuffleActive   = 3
	DefaultShufflePassive  = 4
	DefaultNeighborTimeout = 5 * time.Second
)

// ErrInvalidConfig is wrapped by Config.Validate's errors.
var ErrInvalidConfig = errors.New("hyparview: invalid config")

// Config sets a Machine's view sizes, walks and timers. A zero field takes
// its default; a negative one is invalid.
type Config struct {
	// ActiveSize is the active view's target: the machine keeps asking
	// passive peers to become neighbours while it has fewer. Default 7.
	ActiveSize int
	// MaxActive is the hard bound on the active view (the node's MaxPeers):
	// never exceeded, not even by a high-priority NEIGHBOR or a JOIN, which
	// evict a random neighbour instead. The active view's capacity is
	// min(ActiveSize, MaxActive). Default: ActiveSize.
	MaxActive int
	// PassiveSize bounds the passive view, the reserve of known nodes the
	// active view is repaired from. Default 30.
	PassiveSize int
	// ARWL (active random walk length) is the TTL a FORWARDJOIN and a
	// SHUFFLE start with: how many hops a walk may still be forwarded.
	// At most MaxTTL. Default 6.
	ARWL int
	// PRWL (passive random walk length) is the TTL at which a FORWARDJOIN's
	// walk adds the joining node to the passive view. At most ARWL.
	// Default 3.
	PRWL int
	// ShuffleInterval is the period of the SHUFFLE that refreshes the
	// passive view, and the longest back-off between NEIGHBOR requests that
	// fill an active view below ActiveSize. Default 10s.
	ShuffleInterval time.Duration
	// ShuffleActive (ka) and ShufflePassive (kp) are how many active and
	// passive peers a SHUFFLE's sample carries besides the origin itself;
	// 1+ka+kp is at most MaxSample. Defaults 3 and 4.
	ShuffleActive  int
	ShufflePassive int
	// NeighborTimeout bounds the wait for a JOIN's or NEIGHBOR's reply,
	// link set-up included, and the life of a link nothing needs. Default 5s.
	NeighborTimeout time.Duration
}

// DefaultConfig returns the Config New uses for zero fields.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.ActiveSize, DefaultActiveSize)
	def(&c.MaxActive, c.ActiveSize)
	def(&c.PassiveSize, DefaultPassiveSize)
	def(&c.ARWL, DefaultARWL)
	def(&c.PRWL, DefaultPRWL)
	def(&c.ShuffleActive, DefaultShuffleActive)
	def(&c.ShufflePassive, DefaultShufflePassive)
	if c.ShuffleInterval == 0 {
		c.ShuffleInterval = DefaultShuffleInterval
	}
	if c.NeighborTimeout == 0 {
		c.NeighborTimeout = DefaultNeighborTimeout
	}
	return c
}

// capacity is the most peers the active view holds.
func (c Config) capacity() int { return min(c.ActiveSize, c.MaxActive) }

// Validate reports the first invalid field of c, by name. Zero values are
// valid: they mean the default.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"ActiveSize", c.ActiveSize},
		{"MaxActive", c.MaxActive},
		{"PassiveSize", c.PassiveSize},
		{"ARWL", c.ARWL},
		{"PRWL", c.PRWL},
		{"ShuffleActive", c.ShuffleActive},
		{"ShufflePassive", c.ShufflePassive},
	} {
		if f.v < 0 {
			return bad(f.name, "must not be negative, got %d", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    time.Duration
	}{
		{"ShuffleInterval", c.ShuffleInterval},
		{"NeighborTimeout", c.NeighborTimeout},
	} {
		if f.v < 0 {
			return bad(f.name, "must not be negative, got %v", f.v)
		}
	}
	d := c.withDefaults()
	switch {
	case d.ARWL > MaxTTL:
		return bad("ARWL", "must be at most MaxTTL (%d), got %d", MaxTTL, d.ARWL)
	case d.PRWL > d.ARWL:
		return bad("PRWL", "must be at most ARWL (%d), got %d", d.ARWL, d.PRWL)
	case 1+d.ShuffleActive+d.ShufflePassive > MaxSample:
		return bad("ShufflePassive", "1+ShuffleActive+ShufflePassive must be at most MaxSample (%d), got %d",
			MaxSample, 1+d.ShuffleActive+d.ShufflePassive)
	}
	return nil
}
