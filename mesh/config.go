package mesh

import (
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-metrics"

	"github.com/verbosemesh/verbose/internal/meshopt"
	"github.com/verbosemesh/verbose/relay"
)

// Defaults, as in the seed library's options. The link's own are relay's.
const (
	DefaultChannel             = relay.DefaultChannel
	DefaultTimeout             = relay.DefaultTimeout       // 60s
	DefaultBufferTimeout       = relay.DefaultBufferTimeout // 15m
	DefaultBufferMax           = relay.DefaultBufferMax     // 1000
	DefaultAcknowledgeInterval = relay.DefaultAckInterval   // 1s
	DefaultMaxFrameSize        = relay.DefaultMaxFrameSize  // 1 MiB
	DefaultMaxPeers            = 1000
	maxActiveView              = 64 // Config.ActiveView's bound
	DefaultReorderTimeout      = time.Second
	DefaultHandlerQueue        = 16384
)

// Config configures a Node. The zero value of every field means its default.
type Config struct {
	// NodeID identifies this node to its peers. Default: a random UUID.
	NodeID string
	// Channel is the cluster name: peers and members of another channel are
	// refused at the handshake, and memberlist's Label keeps gossip apart.
	Channel string
	// Timeout drops and redials a link with no traffic (heartbeats count)
	// for this long. It also bounds the handshake and Emit's back-pressure.
	Timeout time.Duration
	// BufferTimeout is how long events unacknowledged by a peer are kept for
	// it; a peer gone this long is forgotten.
	BufferTimeout time.Duration
	// BufferMax is the most unacknowledged events kept per peer. It also
	// sizes what a node keeps to answer GRAFTs: its own last 4×BufferMax
	// events and the last 4×BufferMax it relayed (each store also bounded
	// by 64 MiB and by max(30s, BufferTimeout) of age).
	BufferMax int
	// AcknowledgeInterval is how often a receiver acknowledges; it also acks
	// as soon as a quarter of the sender's window is unacknowledged.
	AcknowledgeInterval time.Duration
	// MaxPeers is the most relay links at once.
	MaxPeers int
	// ActiveView, when above 0, makes membership's links a partial view
	// (HyParView, see overlay.go and PROTOCOL.md): each node keeps relay
	// links with about ActiveView members (at most MaxPeers), repaired from
	// a passive view of others when one is lost, and the broadcast tree
	// runs over them, so a node's links and notices stay flat whatever the
	// cluster's size. 7 suits clusters of tens to thousands (doc of
	// mesh/internal/hyparview says why); a cluster of at most ActiveView+1
	// nodes is still a full mesh. 0 (the default) links every member.
	// Every node must agree on keeping one (the sizes may differ): a member
	// that differs is never linked, and reported (ErrViewMismatch).
	// Needs membership (GossipAddr); links made by Connect are not the
	// view's. When MaxPeers is set below its default and ActiveView is not
	// set, the view is MaxPeers (at most 64): MaxPeers then bounds the
	// links without leaving members unlinked.
	ActiveView int
	// Transport carries relay links. Default: TCP().
	Transport Transport
	// GossipAddr is the memberlist bind address (host:port, port 0 picks a
	// free one). Empty: no membership, links only by Connect.
	GossipAddr string
	// AdvertiseAddr is the gossip address other members should use, when
	// the bind address is not reachable from them.
	AdvertiseAddr string
	// GossipKey is the cluster key: 16, 24 or 32 bytes. It encrypts
	// memberlist's gossip and, unless Transport is TLS (certificates then
	// authenticate links), relay links too: they run over mutual TLS 1.3
	// with certificates derived from it (relay.Keyed), so that only nodes
	// holding the key can link, read or emit. Without GossipAddr it keys
	// the relay links alone.
	GossipKey []byte
	// Logger receives the node's logs, memberlist's included. Default:
	// hclog at Info to stderr.
	Logger hclog.Logger

	// ReorderTimeout is how long delivery of an origin's events waits for a
	// missing earlier event before declaring it lost and moving on (a node
	// that joins mid-stream waits this long once per origin). Default 1s.
	ReorderTimeout time.Duration
	// HandlerQueue bounds the events waiting for this node's handlers. When a
	// slow handler lets it fill up, further deliveries to handlers are
	// dropped, counted and reported (an Overflow PeerEvent with no Peer);
	// relaying to other nodes is never held back by a slow handler.
	HandlerQueue int
	// SlowConsumer is what this node does when its handlers, or a link it
	// relays to, cannot keep up: Backpressure (the zero value) holds its
	// senders back, so that the origin's Emit waits and nothing is lost;
	// Drop drops its handlers' backlog past HandlerQueue (reported) and
	// never slows anyone for them. See SlowConsumerPolicy.
	SlowConsumer SlowConsumerPolicy
	// MaxFrameSize is the largest relay frame accepted. Default 1 MiB.
	MaxFrameSize int
	// Flood turns the epidemic broadcast tree off: every event goes in full
	// over every link (one copy per link; a receiver in a full mesh of N
	// gets N-1 copies of each event and drops N-2). The zero value, the
	// tree, sends each event in full along one spanning tree per origin and
	// only short notices over the other links (see PROTOCOL.md). For
	// measuring one against the other; set it alike on every node.
	Flood bool
	// MetricSink receives memberlist's metrics (hashicorp/go-metrics),
	// named by Prometheus' conventions (verbose_memberlist_…, counters
	// ending in _total, timers in _seconds), when GlobalMetrics allows it.
	MetricSink metrics.MetricSink
	// GlobalMetrics lets the node install a router as go-metrics'
	// process-wide sink, the only place memberlist writes its metrics: it
	// sends each node's samples to its MetricSink and every other sample
	// on to the global set before (an application that set its own first
	// keeps its metrics). Without it go-metrics' global is left alone and
	// MetricSink gets nothing (New logs a warning).
	GlobalMetrics bool

	opts *meshopt.Options // set by internal/meshopt, for this module's harnesses
}

func (c Config) withDefaults() Config {
	if c.Channel == "" {
		c.Channel = DefaultChannel
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
	if c.AcknowledgeInterval == 0 {
		c.AcknowledgeInterval = DefaultAcknowledgeInterval
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
	} else if c.ActiveView == 0 && c.MaxPeers < DefaultMaxPeers {
		// A bound on links that the cluster may outgrow: linking every
		// member would refuse and redial the rest forever; a partial view
		// of that size keeps everyone linked, directly or not.
		c.ActiveView = min(c.MaxPeers, maxActiveView)
	}
	if c.ReorderTimeout == 0 {
		c.ReorderTimeout = DefaultReorderTimeout
	}
	if c.HandlerQueue == 0 {
		c.HandlerQueue = DefaultHandlerQueue
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	return c
}

// Validate reports the first invalid field of c, by name. Zero values are
// valid: they mean the default.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Timeout", c.Timeout},
		{"BufferTimeout", c.BufferTimeout},
		{"AcknowledgeInterval", c.AcknowledgeInterval},
		{"ReorderTimeout", c.ReorderTimeout},
	} {
		if d.v < 0 {
			return bad(d.name, "must not be negative, got %v", d.v)
		}
	}
	if c.BufferMax < 0 {
		return bad("BufferMax", "must be at least 1, got %d", c.BufferMax)
	}
	if c.ActiveView < 0 || c.ActiveView > maxActiveView {
		return bad("ActiveView", "must be 0 (every member) to %d, got %d", maxActiveView, c.ActiveView)
	}
	if c.MaxPeers < 0 {
		return bad("MaxPeers", "must be at least 1, got %d", c.MaxPeers)
	}
	if c.SlowConsumer != Backpressure && c.SlowConsumer != Drop {
		return bad("SlowConsumer", "must be mesh.Backpressure or mesh.Drop, got %d", int(c.SlowConsumer))
	}
	if c.HandlerQueue < 0 {
		return bad("HandlerQueue", "must be at least 1, got %d", c.HandlerQueue)
	}
	if c.MaxFrameSize < 0 || (c.MaxFrameSize > 0 && c.MaxFrameSize < 1024) {
		return bad("MaxFrameSize", "must be at least 1024, got %d", c.MaxFrameSize)
	}
	if len(c.NodeID) > 256 {
		return bad("NodeID", "must be at most 256 bytes, got %d", len(c.NodeID))
	}
	if len(c.Channel) > 128 {
		return bad("Channel", "must be at most 128 bytes, got %d", len(c.Channel))
	}
	switch len(c.GossipKey) {
	case 0, 16, 24, 32:
	default:
		return bad("GossipKey", "must be 16, 24 or 32 bytes, got %d", len(c.GossipKey))
	}
	for _, a := range []struct{ name, v string }{
		{"GossipAddr", c.GossipAddr},
		{"AdvertiseAddr", c.AdvertiseAddr},
	} {
		if a.v == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return bad(a.name, "is not a host:port: %v", err)
		}
	}
	gossip := c.GossipAddr != "" || c.opts != nil && c.opts.GossipTransport != nil
	if c.AdvertiseAddr != "" && !gossip {
		return bad("AdvertiseAddr", "needs GossipAddr")
	}
	return nil
}

func init() {
	meshopt.Set = func(cfg any, o meshopt.Options) { cfg.(*Config).opts = &o }
}

// options returns the hidden options (zero if none were set).
func (c Config) options() meshopt.Options {
	if c.opts == nil {
		return meshopt.Options{}
	}
	return *c.opts
}
