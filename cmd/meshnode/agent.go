package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

// shutdownTimeout bounds the HTTP server's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// runAgent is `meshnode agent`: it runs until ctx ends (SIGINT/SIGTERM).
func runAgent(ctx context.Context, stopSignals func(), args []string, stdout, stderr io.Writer) int {
	opts, fs, err := parseAgentConfig(args, os.Environ())
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs, agentSynopsis)
			return exitOK
		}
		fmt.Fprintf(stderr, "meshnode agent: %v\nRun 'meshnode agent --help' for usage.\n", err)
		return exitUsage
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "meshnode", Level: opts.logLevel, Output: stderr, JSONFormat: opts.logJSON})
	for _, k := range opts.unknownEnv {
		log.Warn("ignoring an environment variable that names no agent setting", "variable", k)
	}
	a, err := startAgent(opts, log)
	if err != nil {
		log.Error("cannot start the agent", "error", err)
		fmt.Fprintf(stderr, "meshnode agent: %v\n", err)
		return exitError
	}
	<-ctx.Done()
	stopSignals()
	log.Info("shutting down")
	a.close()
	log.Info("stopped")
	return exitOK
}

// agent is a running meshnode agent: one node, its HTTP API, its metrics.
type agent struct {
	node    *mesh.Node
	log     hclog.Logger
	metrics *agentMetrics
	api     *api
	srv     *http.Server
	httpLn  net.Listener
	metSrv  *http.Server // --metrics-addr; nil when /metrics is on the API's listener
	metLn   net.Listener
	joined  atomic.Bool // a --join succeeded (or there was none to do)
	topo    *topology   // nil with --topology-interval 0

	stop      chan struct{} // ends the background join
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// startAgent builds the node from opts, starts its listeners and the HTTP
// API, links the --connect addresses and joins the --join seeds in the
// background. On error, whatever was started is stopped again.
func startAgent(opts *agentOptions, log hclog.Logger) (*agent, error) {
	m, err := newMetrics()
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	cfg := opts.cfg
	cfg.Logger = log
	cfg.MetricSink = m.sink
	cfg.GlobalMetrics = true // the agent owns its process: memberlist's metrics need go-metrics' global
	tlsCfg, err := opts.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		cfg.Transport = mesh.TLS(tlsCfg)
	}
	node, err := mesh.New(cfg)
	if err != nil {
		return nil, err
	}
	m.attach(node)
	a := &agent{node: node, log: log, metrics: m, stop: make(chan struct{})}
	if err := a.start(opts); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

func (a *agent) start(opts *agentOptions) error {
	if opts.relay != "" {
		if err := a.node.Listen(opts.relay); err != nil {
			return fmt.Errorf("--relay: %w", err)
		}
	}
	apiMetrics := a.metrics
	if opts.metricsAddr != "" {
		apiMetrics = nil // served on its own listener below
		ln, err := net.Listen("tcp", opts.metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.metrics.handler())
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such endpoint: %s (this listener serves GET /metrics only)", r.URL.Path)
		})
		a.metLn = ln
		a.metSrv = a.newServer(mux, opts.readTimeout)
		a.serve(a.metSrv, ln, "metrics")
	}
	if opts.topologyInterval > 0 {
		a.topo = newTopology(a.node, opts.topologyInterval, a.metrics.peers, a.log.Named("topology"))
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.topo.run(a.stop)
		}()
	}
	if opts.http != "" {
		ln, err := net.Listen("tcp", opts.http)
		if err != nil {
			return fmt.Errorf("--http: %w", err)
		}
		a.httpLn = ln
		a.api = newAPI(a.node, apiMetrics, a.log.Named("http"))
		a.api.joined = &a.joined
		a.api.maxPeers = opts.cfg.MaxPeers
		a.api.partialView = opts.cfg.ActiveView > 0
		a.api.topo = a.topo
		a.api.maxStreams = int64(opts.maxStreams)
		if opts.cfg.SlowConsumer == mesh.Backpressure {
			a.api.streamWait = streamWriteTimeout // a slow reader holds the cluster back, losing nothing
		}
		a.metrics.reg.MustRegister(a.api.streamDropped, a.api.streamRefused, a.api.unlinkedEmits)
		a.srv = a.newServer(a.api.handler(), opts.readTimeout)
		a.serve(a.srv, ln, "HTTP API")
	}
	for _, addr := range opts.connect {
		if _, err := a.node.Connect(addr); err != nil {
			return fmt.Errorf("--connect %s: %w", addr, err)
		}
	}
	seeds := opts.join
	if opts.dataDir != "" {
		extra, err := a.startSnapshot(opts.dataDir)
		if err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		seeds = appendNew(seeds, extra...)
	}
	if len(opts.join) == 0 {
		a.joined.Store(true) // ready needs no join; snapshot seeds are tried all the same
	}
	if len(seeds) > 0 {
		a.wg.Add(1)
		go a.joinLoop(seeds)
	}
	relay, httpAddr := "", ""
	if ra := a.node.Addr(); ra != nil {
		relay = ra.String()
	}
	if a.httpLn != nil {
		httpAddr = a.httpLn.Addr().String()
	}
	metricsAddr := httpAddr
	if a.metLn != nil {
		metricsAddr = a.metLn.Addr().String()
	}
	a.log.Info("agent started", "node", a.node.ID(), "gossip", a.node.GossipAddr(), "relay", relay, "http", httpAddr, "metrics", metricsAddr)
	return nil
}

// newServer is an HTTP server with the agent's limits: headers within
// 10s, the whole request (headers and body) within readTimeout (a body
// trickled slower is cut off: POST /v1/emit answers 408), bodies of
// POST /v1/emit up to maxEmitBody (413 past it). An event stream's
// connection is not bound by readTimeout once its request is read.
func (a *agent) newServer(h http.Handler, readTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: min(10*time.Second, readTimeout),
		ReadTimeout:       readTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          a.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
}

func (a *agent) serve(srv *http.Server, ln net.Listener, what string) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("server failed", "server", what, "error", err)
		}
	}()
}

// joinLoop joins the seeds (--join's and the member snapshot's), retrying
// with back-off (500ms doubling up to 30s) until one answers or the agent
// stops, as consul's -retry-join: seeds started at the same moment may not
// be up yet, and a restarted seed's members may be restarting too.
func (a *agent) joinLoop(seeds []string) {
	defer a.wg.Done()
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 500 * time.Millisecond
	b.MaxInterval = 30 * time.Second
	b.MaxElapsedTime = 0 // keep trying: an agent without its cluster is useless
	for {
		n, err := a.node.Join(seeds...)
		if err == nil && n > 0 {
			a.joined.Store(true)
			a.log.Info("joined the cluster", "seeds", seeds, "answered", n)
			return
		}
		if errors.Is(err, mesh.ErrClosed) {
			return
		}
		wait := b.NextBackOff()
		a.log.Warn("cannot join the cluster yet", "seeds", seeds, "error", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-a.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// startSnapshot reads --data-dir's member snapshot (creating the
// directory on a first start) and starts recording the members; it
// returns the snapshot's gossip addresses, to join as extra seeds.
func (a *agent) startSnapshot(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	prev, err := readSnapshot(dir, a.node.ID())
	if err != nil {
		// A damaged snapshot must not keep the agent down: it is rewritten
		// from the members found through --join.
		a.log.Warn("ignoring an unreadable member snapshot", "error", err)
		prev = nil
	}
	var seeds []string
	for _, m := range prev {
		if m.Addr != a.node.GossipAddr() {
			seeds = appendNew(seeds, m.Addr)
		}
	}
	if len(seeds) > 0 {
		a.log.Info("joining the members of the snapshot", "dir", dir, "members", len(seeds))
	}
	a.wg.Add(1)
	go a.snapshotLoop(newSnapshotter(dir, a.node.ID(), prev))
	return seeds, nil
}

// appendNew appends the items of add not already in list.
func appendNew(list []string, add ...string) []string {
	out := slices.Clone(list)
	for _, s := range add {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// close leaves the cluster and closes the links (node.Close), ends the event
// streams, shuts the HTTP server down and waits for every goroutine.
func (a *agent) close() {
	a.closeOnce.Do(func() {
		close(a.stop)
		if err := a.node.Close(); err != nil {
			a.log.Warn("closing the node", "error", err)
		}
		if a.topo != nil {
			a.topo.close()
		}
		a.metrics.detach()
		if a.srv != nil {
			a.api.closeStreams()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := a.srv.Shutdown(ctx); err != nil {
				a.log.Warn("HTTP shutdown", "error", err)
				a.srv.Close()
			}
			cancel()
		}
		if a.metSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := a.metSrv.Shutdown(ctx); err != nil {
				a.log.Warn("metrics server shutdown", "error", err)
				a.metSrv.Close()
			}
			cancel()
		}
		a.wg.Wait()
	})
}

// metricsAddr is the bound --metrics-addr address ("" without it).
func (a *agent) metricsAddr() string {
	if a.metLn == nil {
		return ""
	}
	return a.metLn.Addr().String()
}

// httpAddr is the bound HTTP API address ("" without the API).
func (a *agent) httpAddr() string {
	if a.httpLn == nil {
		return ""
	}
	return a.httpLn.Addr().String()
}
