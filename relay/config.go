package relay

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"
)

// Version is the link protocol version carried in HELLO.
const Version = 6

// Defaults applied to zero Config fields.
const (
	DefaultChannel       = "default"
	DefaultTimeout       = 60 * time.Second
	DefaultBufferTimeout = 15 * time.Minute
	DefaultBufferMax     = 1000
	DefaultAckInterval   = time.Second
	DefaultMaxFrameSize  = 1 << 20
)

// Bounds on MaxFrameSize: a HELLO must fit, and the 4-byte prefix must not
// promise more than we are willing to allocate for one frame.
const (
	minFrameSize = 256
	maxFrameCap  = 1 << 30
)

// Sentinel errors, matched with errors.Is.
var (
	ErrRejected      = errors.New("relay: handshake rejected")
	ErrFrameTooLarge = errors.New("relay: frame too large")
	ErrBadFrame      = errors.New("relay: malformed frame")
	ErrTimeout       = errors.New("relay: link timed out")
	ErrClosed        = errors.New("relay: link closed")
)

// Config configures a link. A zero field takes its default.
type Config struct {
	NodeID        string
	Channel       string        // default "default"
	Boot          uint64        // this process's boot id; zero: a fresh NewBoot()
	Timeout       time.Duration // inactivity timeout; also bounds dial and handshake (default 60s)
	BufferTimeout time.Duration // how long a disconnected link keeps its buffer (default 15m)
	BufferMax     int           // most unacknowledged payloads held (default 1000)
	AckInterval   time.Duration // default 1s
	MaxFrameSize  int           // default 1 MiB
	Transport     Transport     // required for dialing links
	Logger        hclog.Logger  // default hclog.NewNullLogger(); links use Named("relay")
	// NewBackoff returns the redial policy of one link; nil means exponential
	// from 100ms to 30s, multiplier 2, jitter 0.2, no end. A policy returning
	// backoff.Stop makes the link give up for good (Done closes).
	NewBackoff func() backoff.BackOff
}

// withDefaults returns c with zero fields filled in.
func (c Config) withDefaults() Config {
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if c.Boot == 0 {
		c.Boot = NewBoot()
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.BufferTimeout == 0 {
		c.BufferTimeout = DefaultBufferTimeout
	}
	if c.BufferMax == 0 {
		c.BufferMax = DefaultBufferMax
	}
	if c.AckInterval == 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.NewBackoff == nil {
		c.NewBackoff = defaultBackoff
	}
	return c
}

// Validate reports the first bad field, by name. Zero fields are valid: they
// take their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.NodeID == "":
		return errors.New("relay: NodeID must not be empty")
	case c.Timeout < 0:
		return fmt.Errorf("relay: Timeout must be > 0, got %s", c.Timeout)
	case c.BufferTimeout < 0:
		return fmt.Errorf("relay: BufferTimeout must be > 0, got %s", c.BufferTimeout)
	case c.BufferMax < 1:
		return fmt.Errorf("relay: BufferMax must be >= 1, got %d", c.BufferMax)
	case c.AckInterval < 0:
		return fmt.Errorf("relay: AckInterval must be > 0, got %s", c.AckInterval)
	case c.MaxFrameSize < minFrameSize || c.MaxFrameSize > maxFrameCap:
		return fmt.Errorf("relay: MaxFrameSize must be in [%d, %d], got %d", minFrameSize, maxFrameCap, c.MaxFrameSize)
	}
	return nil
}

// heartbeat is how long a connected link may stay silent before it sends an
// ACK just to prove it is alive: often enough that the remote's inactivity
// timeout never fires on a healthy idle link.
func (c Config) heartbeat() time.Duration {
	return min(c.AckInterval, c.Timeout/3)
}

func defaultBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.Multiplier = 2
	b.RandomizationFactor = 0.2
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// NewBoot returns a random non-zero boot id, to be drawn once per process
// start so that peers can tell a restart from a reconnect.
func NewBoot() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}
