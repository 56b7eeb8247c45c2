package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

// Phase names, in the order they run.
var allPhases = []string{"tcp", "blast", "latency", "line", "memory", "converge"}

var errUsage = errors.New("meshbench: usage")

// options are the parsed flags.
type options struct {
	Nodes        int
	Size         int
	Duration     time.Duration
	Warmup       time.Duration // an unmeasured blast before the measured one
	Rate         int
	Topology     string // mesh, join, line, ring
	Network      string // tcp, mem
	Phases       map[string]bool
	Converge     []int
	CPUProfile   string
	MemProfile   string
	JSON         bool
	Tree         string // Plumtree routing: on (mesh's default) or off (Config.Flood)
	Handler      string // raw (OnRaw + Scan) or args (On + Event.Args)
	BufferMax    int
	HandlerQueue int
	AckInterval  time.Duration
	Timeout      time.Duration
	LogLevel     string
	SlowHandler  time.Duration // the last node's handler cost per event
	SlowConsumer mesh.SlowConsumerPolicy
	ActiveView   int // mesh Config.ActiveView (with --topology join): a partial view
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("meshbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Nodes, "nodes", 5, "nodes in the cluster (one emitter, the others receive)")
	fs.IntVar(&o.Size, "size", 128, "application bytes per event (index, timestamp, padding); at least 16")
	fs.DurationVar(&o.Duration, "duration", 3*time.Second, "length of each timed phase (blast, paced latency)")
	fs.DurationVar(&o.Warmup, "warmup", 0, "blast this long, unmeasured, before the measured blast: its figures are then the steady state's (the warm-up's events are checked all the same)")
	fs.IntVar(&o.Rate, "rate", 10000, "events/s of the paced latency phases")
	fs.StringVar(&o.Topology, "topology", "mesh", "mesh (full mesh by Connect), join (full mesh by Join, or a partial view with --active-view), line or ring")
	fs.IntVar(&o.ActiveView, "active-view", 0, "mesh Config.ActiveView with --topology join: each node links about N members (a partial view); 0 links every member")
	fs.StringVar(&o.Network, "network", "tcp", "tcp (loopback) or mem (relay/memnet, in-process)")
	phases := fs.String("phases", strings.Join(allPhases, ","), "comma list of phases to run: "+strings.Join(allPhases, ","))
	converge := fs.String("converge", "5,20", "cluster sizes of the converge phase, comma list")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the blast phase to this file")
	fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile (allocations up to the end of the blast) to this file")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON document instead of the table and the RESULT line")
	fs.StringVar(&o.Tree, "tree", "on", "Plumtree routing: on (mesh's default) or off (flooding, mesh Config.Flood)")
	fs.StringVar(&o.Handler, "handler", "raw", "receivers' handler: raw (OnRaw, Scan of index and timestamp) or args (On, Event.Args)")
	fs.IntVar(&o.BufferMax, "buffer-max", 4096, "mesh Config.BufferMax: unacknowledged events per peer")
	fs.IntVar(&o.HandlerQueue, "handler-queue", 1<<16, "mesh Config.HandlerQueue: events waiting for handlers")
	fs.DurationVar(&o.AckInterval, "ack-interval", 0, "mesh Config.AcknowledgeInterval (0: the default)")
	fs.DurationVar(&o.Timeout, "timeout", 0, "mesh Config.Timeout (0: the default)")
	fs.StringVar(&o.LogLevel, "log-level", "error", "log level of the nodes")
	fs.DurationVar(&o.SlowHandler, "slow-handler", 0, "the last node's handler spends this long per event (a slow consumer: back-pressure must lose nothing)")
	fs.TextVar(&o.SlowConsumer, "slow-consumer", mesh.Backpressure, "mesh Config.SlowConsumer: backpressure or drop")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	bad := func(format string, args ...any) (options, error) {
		return o, fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
	}
	o.Phases = map[string]bool{}
	for p := range strings.SplitSeq(*phases, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !slices.Contains(allPhases, p) {
			return bad("--phases: unknown phase %q (have %s)", p, strings.Join(allPhases, ","))
		}
		o.Phases[p] = true
	}
	for s := range strings.SplitSeq(*converge, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 || n > 200 {
			return bad("--converge: %q is not a cluster size from 2 to 200", s)
		}
		o.Converge = append(o.Converge, n)
	}
	switch {
	case o.Nodes < 2 || o.Nodes > 200 || o.Nodes > 100 && o.Network != "mem":
		return bad("--nodes must be 2 to 100 (200 with --network mem), got %d", o.Nodes)
	case o.Size < 16 || o.Size > 512<<10:
		return bad("--size must be 16 to %d, got %d", 512<<10, o.Size)
	case o.Duration <= 0:
		return bad("--duration must be positive")
	case o.Warmup < 0:
		return bad("--warmup must not be negative")
	case o.Rate < 1 || o.Rate > 1_000_000:
		return bad("--rate must be 1 to 1000000, got %d", o.Rate)
	case o.BufferMax < 1 || o.HandlerQueue < 1:
		return bad("--buffer-max and --handler-queue must be at least 1")
	}
	if !slices.Contains([]string{"mesh", "join", "line", "ring"}, o.Topology) {
		return bad("--topology must be mesh, join, line or ring, got %q", o.Topology)
	}
	if o.ActiveView < 0 || o.ActiveView > 0 && o.Topology != "join" {
		return bad("--active-view needs --topology join, and must not be negative")
	}
	if o.Network != "tcp" && o.Network != "mem" {
		return bad("--network must be tcp or mem, got %q", o.Network)
	}
	switch o.Tree {
	case "on", "off":
	default:
		return bad("--tree must be on or off, got %q", o.Tree)
	}
	if o.Handler != "raw" && o.Handler != "args" {
		return bad("--handler must be raw or args, got %q", o.Handler)
	}
	if hclog.LevelFromString(o.LogLevel) == hclog.NoLevel {
		return bad("--log-level: unknown level %q", o.LogLevel)
	}
	return o, nil
}

// meshConfig is the node config every phase starts from (NodeID, Transport
// and addresses are filled in by the cluster). --tree=off is Config.Flood.
func (o options) meshConfig(log hclog.Logger) mesh.Config {
	return mesh.Config{
		BufferMax:           o.BufferMax,
		HandlerQueue:        o.HandlerQueue,
		AcknowledgeInterval: o.AckInterval,
		Timeout:             o.Timeout,
		Flood:               o.Tree == "off",
		SlowConsumer:        o.SlowConsumer,
		ActiveView:          o.ActiveView,
		Logger:              log,
	}
}

// configLine describes the mesh config in effect, defaults resolved.
func (o options) configLine() string {
	ack, timeout := o.AckInterval, o.Timeout
	if ack == 0 {
		ack = mesh.DefaultAcknowledgeInterval
	}
	if timeout == 0 {
		timeout = mesh.DefaultTimeout
	}
	line := fmt.Sprintf("BufferMax=%d HandlerQueue=%d AcknowledgeInterval=%v Timeout=%v tree=%s handler=%s SlowConsumer=%s",
		o.BufferMax, o.HandlerQueue, ack, timeout, o.Tree, o.Handler, o.SlowConsumer)
	if o.SlowHandler > 0 {
		line += fmt.Sprintf(" slow-handler=%v (last node)", o.SlowHandler)
	}
	return line
}
