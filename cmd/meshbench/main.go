package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/benchkit"
)

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, errUsage) {
		if err.Error() != errUsage.Error()+": flag: help requested" {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(2)
	}
	if _, err := run(o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var (
	progressMu  sync.Mutex
	progressOut io.Writer = os.Stderr
)

// progress writes one line to stderr (or where run was told).
func progress(format string, args ...any) {
	progressMu.Lock()
	defer progressMu.Unlock()
	fmt.Fprintf(progressOut, "meshbench: "+format+"\n", args...)
}

// loggerFn makes the logger of a phase's nodes.
type loggerFn func() hclog.Logger

// report is everything one run measured; a nil section was not run.
type report struct {
	Machine  machine          `json:"machine"`
	Config   string           `json:"config"`
	Nodes    int              `json:"nodes"`
	Size     int              `json:"size"`
	Network  string           `json:"network"`
	Topology string           `json:"topology"`
	TCP      *tcpResult       `json:"tcp,omitempty"`
	TCPLat   *quantiles       `json:"tcp_latency,omitempty"`
	Blast    *blastResult     `json:"blast,omitempty"`
	Latency  *latencyResult   `json:"latency,omitempty"`
	Line     *latencyResult   `json:"line,omitempty"`      // from a fresh cluster: includes the tree's construction
	LineWarm *latencyResult   `json:"line_warm,omitempty"` // the same line right after, its tree built
	Memory   *memoryResult    `json:"memory,omitempty"`
	Converge []convergeResult `json:"converge,omitempty"`
	Result   string           `json:"result"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	LoadAvg   string `json:"loadavg"` // /proc/loadavg at the start: other load skews every figure
}

// run runs the selected phases in order and prints the report to stdout.
func run(o options, stdout, stderr io.Writer) (*report, error) {
	progressMu.Lock()
	progressOut = stderr
	progressMu.Unlock()
	level := hclog.LevelFromString(o.LogLevel)
	logger := func() hclog.Logger {
		return hclog.New(&hclog.LoggerOptions{Name: "meshbench", Level: level, Output: stderr})
	}
	rep := &report{
		Machine:  machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, LoadAvg: benchkit.LoadAvg()},
		Config:   o.configLine(),
		Nodes:    o.Nodes,
		Size:     o.Size,
		Network:  o.Network,
		Topology: o.Topology,
	}
	progress("config: nodes=%d size=%d network=%s topology=%s duration=%v rate=%d %s",
		o.Nodes, o.Size, o.Network, o.Topology, o.Duration, o.Rate, rep.Config)
	receivers := o.Nodes - 1
	if o.Phases["tcp"] {
		progress("phase tcp: raw TCP, 1 writer → %d readers, blast %v then %d/s for %v", receivers, o.Duration, o.Rate, o.Duration)
		t, err := tcpThroughput(receivers, o.Size, o.Duration)
		if err != nil {
			return rep, err
		}
		rep.TCP = t
		_, _, samples, err := tcpRun(receivers, o.Size, o.Duration, o.Rate)
		if err != nil {
			return rep, err
		}
		var all []int64
		for _, s := range samples {
			all = append(all, s...)
		}
		q := quantilesOf(all)
		rep.TCPLat = &q
	}
	if o.Phases["blast"] || o.Phases["latency"] {
		c, err := newCluster(o, clusterSpec{n: o.Nodes, topology: o.Topology, network: o.Network, connect: true}, logger())
		if err != nil {
			return rep, err
		}
		if o.Phases["blast"] {
			progress("phase blast: %s of %d over %s, node 0 emits as fast as Emit returns for %v", o.Topology, o.Nodes, o.Network, o.Duration)
			b, err := blast(o, c)
			if err != nil {
				c.close()
				return rep, err
			}
			rep.Blast = &b
		}
		if o.Phases["latency"] {
			progress("phase latency: %s of %d over %s, %d/s for %v, every receiver", o.Topology, o.Nodes, o.Network, o.Rate, o.Duration)
			l, err := paced(o, c, o.Topology, nil)
			if err != nil {
				c.close()
				return rep, err
			}
			rep.Latency = &l
		}
		c.close()
		if rep.TCP != nil && rep.Blast != nil {
			// The baseline again, on the other side of the blast: the
			// machine's speed drifts (a VM's neighbours), and the ratio is
			// taken against the faster of the two.
			progress("phase tcp: raw TCP throughput again, after the blast")
			again, err := tcpThroughput(receivers, o.Size, o.Duration)
			if err != nil {
				return rep, err
			}
			rep.TCP = rep.TCP.faster(again)
		}
	}
	if o.Phases["line"] {
		progress("phase line: line of %d over %s, %d/s for %v, first to last", o.Nodes, o.Network, o.Rate, o.Duration)
		c, err := newCluster(o, clusterSpec{n: o.Nodes, topology: "line", network: o.Network, connect: true}, logger())
		if err != nil {
			return rep, err
		}
		l, err := paced(o, c, "line", []int{o.Nodes - 2})
		if err != nil {
			c.close()
			return rep, err
		}
		rep.Line = &l
		// The first events of an origin new to the tree reach nodes past
		// the first hop by notice and graft (about 20 ms per hop) until
		// the relays are grafted; the same line again shows the built tree.
		w, err := paced(o, c, "line", []int{o.Nodes - 2})
		c.close()
		if err != nil {
			return rep, err
		}
		rep.LineWarm = &w
	}
	if o.Phases["memory"] {
		progress("phase memory: %s of %d over %s, at rest, then 1000 events for a closed peer", o.Topology, o.Nodes, o.Network)
		m, err := memory(o, logger)
		if err != nil {
			return rep, err
		}
		rep.Memory = &m
	}
	if o.Phases["converge"] {
		for _, n := range o.Converge {
			progress("phase converge: %d nodes over %s, Join through node 0 until all %d links are up", n, o.Network, n*(n-1)/2)
			cr, err := converge(o, n, logger)
			if err != nil {
				return rep, err
			}
			rep.Converge = append(rep.Converge, cr)
		}
	}
	rep.Result = rep.resultLine()
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return rep, enc.Encode(rep)
	}
	rep.writeTable(stdout)
	fmt.Fprintln(stdout, rep.Result)
	return rep, nil
}
