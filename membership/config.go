package membership

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	metrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/memberlist"
)

// DefaultChannel is the channel used when Config.Channel is empty.
const DefaultChannel = "default"

// labelPrefix namespaces memberlist's Label so that a verbose cluster never
// accepts gossip from another memberlist user on the same port range.
const labelPrefix = "verbose/"

// ErrInvalidConfig is wrapped by every validation error of New; the message
// names the offending field.
var ErrInvalidConfig = errors.New("membership: invalid config")

// Config configures one Membership. The zero value of each field is its
// default, except NodeID (required) and BindAddr (required unless Transport
// is set).
type Config struct {
	NodeID        string // this node's name in memberlist; required
	Channel       string // cluster name; also memberlist's Label; "" = DefaultChannel
	BindAddr      string // "ip:port"; port 0 picks a free port; ignored when Transport is set
	AdvertiseAddr string // optional "ip:port" other members should use (with BindAddr port 0, the bound port is advertised)
	Key           []byte // optional gossip encryption key (16, 24 or 32 bytes)
	Meta          Meta   // initial metadata; Meta.Channel is always set to Channel
	Logger        hclog.Logger

	// Events is called for every change of another member, in order, from
	// one goroutine owned by Membership. It may block; memberlist never
	// waits for it (an unbounded queue sits in between). It must not call
	// Shutdown. The local node is never reported.
	Events func(Event)

	// Messages is called with each message another member sent with Send
	// (a copy, the receiver's to keep), on memberlist's goroutines: it must
	// not block. nil drops them.
	Messages func(msg []byte)

	// MetricSink receives memberlist's metrics, named by Prometheus'
	// conventions (see metrics.go), when GlobalMetrics allows it.
	// memberlist has no per-instance sink: it writes only to
	// hashicorp/go-metrics' process-wide global.
	MetricSink metrics.MetricSink
	// GlobalMetrics lets membership install a router as go-metrics'
	// process-wide sink (unless it already is), the only way to get
	// memberlist's metrics to MetricSink. The router passes every sample
	// that is not a routed instance's on to the global that was set
	// before, so an application that set its own global first keeps its
	// metrics. Without it the global is left alone and MetricSink gets
	// nothing (New logs a warning).
	GlobalMetrics bool

	// Transport replaces memberlist's UDP/TCP transport (tests: see
	// MockNetwork). nil = memberlist's NetTransport on BindAddr.
	Transport Transport

	// ProbeFast shortens probe, gossip and suspicion intervals so a dead
	// member is detected in well under 2s. For tests on a quiet network.
	ProbeFast bool

	// pushPull overrides memberlist's PushPullInterval (tests: show what
	// does not wait for a push/pull).
	pushPull time.Duration
}

// joinTimeout bounds each TCP exchange of a join (memberlist's TCPTimeout
// defaults to 10s). Seeds are contacted in parallel, so a Join takes at most
// about this long whatever the number of seeds.
const joinTimeout = 5 * time.Second

func (c *Config) validate() error {
	if c.NodeID == "" {
		return fmt.Errorf("%w: NodeID must not be empty", ErrInvalidConfig)
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if n := len(labelPrefix) + len(c.Channel); n > memberlist.LabelMaxSize {
		return fmt.Errorf("%w: Channel is %d bytes, at most %d allowed",
			ErrInvalidConfig, len(c.Channel), memberlist.LabelMaxSize-len(labelPrefix))
	}
	if c.Transport == nil {
		if c.BindAddr == "" {
			return fmt.Errorf("%w: BindAddr must be set (or a Transport given)", ErrInvalidConfig)
		}
		if _, _, err := splitIPPort(c.BindAddr, true); err != nil {
			return fmt.Errorf("%w: BindAddr %q: %v", ErrInvalidConfig, c.BindAddr, err)
		}
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitIPPort(c.AdvertiseAddr, false); err != nil {
			return fmt.Errorf("%w: AdvertiseAddr %q: %v", ErrInvalidConfig, c.AdvertiseAddr, err)
		}
	}
	switch len(c.Key) {
	case 0, 16, 24, 32:
	default:
		return fmt.Errorf("%w: Key (GossipKey) is %d bytes, want 16, 24 or 32", ErrInvalidConfig, len(c.Key))
	}
	if c.Meta.Version < 0 {
		return fmt.Errorf("%w: Meta.Version must not be negative", ErrInvalidConfig)
	}
	c.Meta.Channel = c.Channel
	if _, err := encodeMeta(c.Meta, false); err != nil {
		return fmt.Errorf("%w: Meta: %w", ErrInvalidConfig, err)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// splitIPPort parses "ip:port". memberlist binds and advertises IP literals
// only, so a host name is refused here rather than failing later inside it.
// An empty host means all interfaces (bind) and is refused for advertising.
func splitIPPort(addr string, bind bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portStr)
	}
	if host == "" && bind {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	if !bind && port == 0 {
		return "", 0, errors.New("port 0 cannot be advertised")
	}
	return host, port, nil
}

// memberlistConfig builds memberlist's config from ours. It starts from
// DefaultLANConfig and overrides:
//   - Name, BindAddr/BindPort, AdvertiseAddr/AdvertisePort, SecretKey,
//     Transport: straight from our Config.
//   - Label = "verbose/"+Channel: other channels' packets and streams are
//     refused by memberlist before they reach our state.
//   - Delegate, Events, Conflict: ours (metadata; enqueue-only
//     notifications; a member restarted on a new address, reclaim.go).
//   - Logger: hclog's StandardLogger with level inference, so memberlist's
//     "[DEBUG] ..." lines become hclog records at that level.
//   - TCPTimeout = joinTimeout: bounds a join against a silent seed.
//   - EnableCompression = false: memberlist LZW-compresses every gossip
//     packet, which saves no packet (a compound message is sized to
//     UDPBufferSize before it is compressed) and costs CPU the relay needs:
//     3-5 % of a 100-node blast in one process, a quarter of it once
//     starved probes turn into suspicions and their broadcasts. Compressed
//     messages from other nodes are still read.
//   - DeadNodeReclaimTime: a NodeID restarted on a new port (port 0,
//     containers) may reclaim its dead record without waiting to be reaped.
//   - MetricLabels: our private routing label, only when a sink is routed.
//   - ProbeFast: short probe/gossip/suspicion timings for tests.
func memberlistConfig(c *Config, d *delegate, labels []metrics.Label) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.NodeID
	mc.Label = labelPrefix + c.Channel
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	mc.Logger = c.Logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	mc.TCPTimeout = joinTimeout
	mc.EnableCompression = false
	mc.DeadNodeReclaimTime = mc.ProbeInterval
	if len(c.Key) > 0 {
		mc.SecretKey = append([]byte(nil), c.Key...)
	}
	if c.Transport != nil {
		mc.Transport = c.Transport
	} else {
		host, port, _ := splitIPPort(c.BindAddr, true) // validated
		mc.BindAddr, mc.BindPort = host, port
		mc.AdvertisePort = port
	}
	if c.AdvertiseAddr != "" {
		host, port, _ := splitIPPort(c.AdvertiseAddr, false) // validated
		mc.AdvertiseAddr, mc.AdvertisePort = host, port
	}
	if c.ProbeFast {
		mc.ProbeInterval = 200 * time.Millisecond
		mc.ProbeTimeout = 100 * time.Millisecond
		mc.GossipInterval = 50 * time.Millisecond
		mc.SuspicionMult = 2
		mc.SuspicionMaxTimeoutMult = 2
		mc.TCPTimeout = time.Second
		mc.PushPullInterval = 2 * time.Second
		mc.GossipToTheDeadTime = 2 * time.Second
		mc.DeadNodeReclaimTime = mc.ProbeInterval
	}
	if c.pushPull > 0 {
		mc.PushPullInterval = c.pushPull
	}
	mc.MetricLabels = labels
	return mc
}
