package main

import (
	"net/http"
	"sync"
	"time"

	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/verbosemesh/verbose/mesh"
)

// agentMetrics is the agent's private Prometheus registry: memberlist's
// metrics through a go-metrics sink, the node's counters read from
// node.Stats() at scrape time, per-peer gauges, and counts of peer
// lifecycle events.
type agentMetrics struct {
	reg  *prometheus.Registry
	sink *gmprom.PrometheusSink // give to mesh.Config.MetricSink

	peerEvents *prometheus.CounterVec
	peers      *peerCollector
	offPeer    func()
}

// newMetrics builds the registry and the memberlist sink; attach adds the
// node's metrics once the node exists (the sink must exist before it).
func newMetrics() (*agentMetrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Expiration 0: memberlist's series stay once seen, like counters should.
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Name: "verbose_memberlist_sink"})
	if err != nil {
		return nil, err
	}
	return &agentMetrics{reg: reg, sink: sink}, nil
}

// trackedPeerEvents are the lifecycle events counted in
// verbose_peer_events_total: the ones that mean trouble or churn.
var trackedPeerEvents = []mesh.PeerEventKind{mesh.Reconnect, mesh.Disconnect, mesh.Rejected, mesh.Overflow, mesh.Expired, mesh.Backoff, mesh.Slow, mesh.Recovered}

func (m *agentMetrics) attach(node *mesh.Node) {
	counter := func(name, help string, get func(mesh.Stats) uint64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(get(node.Stats())) }))
	}
	counter("verbose_events_emitted_total", "Events emitted by this node.", func(s mesh.Stats) uint64 { return s.Emitted })
	counter("verbose_events_received_total", "Event frames received on all links, duplicates included.", func(s mesh.Stats) uint64 { return s.Received })
	counter("verbose_events_delivered_total", "Events released to this node's handlers.", func(s mesh.Stats) uint64 { return s.Delivered })
	counter("verbose_events_duplicates_total", "Event frames dropped as already seen.", func(s mesh.Stats) uint64 { return s.Duplicates })
	counter("verbose_events_forwarded_total", "Event frames relayed to other links.", func(s mesh.Stats) uint64 { return s.Forwarded })
	counter("verbose_events_overflow_dropped_total", "Events dropped from peer buffers at BufferMax.", func(s mesh.Stats) uint64 { return s.Overflowed })
	counter("verbose_events_expired_dropped_total", "Events dropped with a peer gone for BufferTimeout.", func(s mesh.Stats) uint64 { return s.Expired })
	counter("verbose_events_released_total", "Events buffered for members that left the cluster, freed unsent (not a loss).", func(s mesh.Stats) uint64 { return s.Released })
	counter("verbose_events_handler_dropped_total", "Deliveries dropped because handlers were too slow.", func(s mesh.Stats) uint64 { return s.HandlerDropped })
	counter("verbose_events_skipped_total", "Events declared lost after the reorder timeout.", func(s mesh.Stats) uint64 { return s.Skipped })
	counter("verbose_events_late_dropped_total", "Events that arrived after ReorderTimeout had declared them lost, dropped to keep order.", func(s mesh.Stats) uint64 { return s.Late })
	counter("verbose_events_bad_payloads_total", "Malformed event payloads received.", func(s mesh.Stats) uint64 { return s.BadPayloads })
	counter("verbose_tree_notices_total", "IHAVE notice batches sent on lazy links.", func(s mesh.Stats) uint64 { return s.Notices })
	counter("verbose_tree_grafts_total", "GRAFTs sent to repair a path.", func(s mesh.Stats) uint64 { return s.Grafts })
	counter("verbose_tree_prunes_total", "PRUNEs sent after duplicates.", func(s mesh.Stats) uint64 { return s.Prunes })
	counter("verbose_tree_graft_resent_total", "Events resent to answer GRAFTs.", func(s mesh.Stats) uint64 { return s.GraftResent })
	counter("verbose_tree_graft_misses_total", "Events asked for by GRAFTs that were no longer stored.", func(s mesh.Stats) uint64 { return s.GraftMisses })
	counter("verbose_tree_grafts_refused_total", "GRAFTs not answered: the range's head had left the stores while the grafter's path was still bringing it.", func(s mesh.Stats) uint64 { return s.GraftsRefused })
	counter("verbose_view_messages_dropped_total", "Partial-view messages lost here (a full queue, a failed send); the view's timeouts repair them.", func(s mesh.Stats) uint64 { return s.ViewDropped })
	counter("verbose_flow_grants_total", "GRANT batches sent: credit given to upstream links.", func(s mesh.Stats) uint64 { return s.Grants })
	counter("verbose_flow_slow_consumers_total", "Consumers (a link, or this node's handlers) declared slow after Timeout.", func(s mesh.Stats) uint64 { return s.SlowConsumers })
	counter("verbose_flow_emit_waits_total", "Emit calls that waited for consumers (back-pressure).", func(s mesh.Stats) uint64 { return s.EmitWaits })
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "verbose_flow_emit_wait_seconds_total", Help: "Time Emit calls waited for consumers, in all."},
		func() float64 { return node.Stats().EmitWaited.Seconds() }))
	gauge := func(name, help string, get func(mesh.Stats) float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return get(node.Stats()) }))
	}
	gauge("verbose_tree_eager_links", "(origin, link) pairs that carry events in full.", func(s mesh.Stats) float64 { return float64(s.EagerLinks) })
	gauge("verbose_tree_lazy_links", "(origin, link) pairs that carry notices only.", func(s mesh.Stats) float64 { return float64(s.LazyLinks) })
	gauge("verbose_flow_holding", "1 while flow control holds events for some consumer (senders are being held back).", func(s mesh.Stats) float64 {
		if s.Held {
			return 1
		}
		return 0
	})
	gauge("verbose_view_active_members", "Neighbours in the partial view's active view (0 without --active-view).", func(s mesh.Stats) float64 { return float64(s.ActiveView) })
	gauge("verbose_view_passive_members", "Members in the partial view's passive view, the reserve it repairs from.", func(s mesh.Stats) float64 { return float64(s.PassiveView) })
	gauge("verbose_redundancy", "Event frames received per event delivered since start (1.0 is the floor).", func(s mesh.Stats) float64 { return s.Redundancy() })
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verbose_peers", Help: "Relay links."},
		func() float64 { return float64(len(node.Peers())) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verbose_buffered_events", Help: "Unacknowledged events over all links."},
		func() float64 { return float64(node.Stats().Buffered) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "verbose_members", Help: "Alive members of the cluster, this node included."},
		func() float64 { return float64(aliveMembers(node)) }))

	m.peerEvents = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "verbose_peer_events_total",
		Help: "Relay link lifecycle events by kind (reconnect, disconnect, rejected, overflow, expired, backoff).",
	}, []string{"kind"})
	for _, k := range trackedPeerEvents {
		m.peerEvents.WithLabelValues(k.String()) // export zeros, so rates work from the start
	}
	m.reg.MustRegister(m.peerEvents)
	m.peers = newPeerCollector(node)
	m.reg.MustRegister(m.peers)
	m.offPeer = node.OnPeer(m.onPeer)
}

// onPeer runs on the node's dispatcher: it only counts and stamps.
func (m *agentMetrics) onPeer(e mesh.PeerEvent) {
	for _, k := range trackedPeerEvents {
		if e.Kind == k {
			m.peerEvents.WithLabelValues(k.String()).Inc()
		}
	}
	if e.Peer != nil && (e.Kind == mesh.Acknowledge || e.Kind == mesh.Initialized) {
		m.peers.acked(e.Peer, time.Now())
	}
}

func (m *agentMetrics) detach() {
	if m.offPeer != nil {
		m.offPeer()
	}
}

func (m *agentMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

func aliveMembers(node *mesh.Node) int {
	n := 0
	for _, mb := range node.Members() {
		if mb.State == "alive" {
			n++
		}
	}
	return n
}

// peerCollector exports per-link gauges, computed at scrape time:
// verbose_peer_buffered_events (unacknowledged events held for the peer)
// and verbose_peer_ack_lag_seconds (time since the peer last acknowledged,
// 0 while nothing is unacknowledged).
type peerCollector struct {
	node     *mesh.Node
	buffered *prometheus.Desc
	ackLag   *prometheus.Desc

	mu      sync.Mutex
	lastAck map[*mesh.Peer]time.Time
}

func newPeerCollector(node *mesh.Node) *peerCollector {
	// The peer's NodeID only: an address label would start new series with
	// every pod IP. A departed peer is not in Peers(), so its series go.
	labels := []string{"peer"}
	return &peerCollector{
		node:     node,
		buffered: prometheus.NewDesc("verbose_peer_buffered_events", "Unacknowledged events held for a peer.", labels, nil),
		ackLag:   prometheus.NewDesc("verbose_peer_ack_lag_seconds", "Seconds since the peer last acknowledged, 0 when it has nothing unacknowledged.", labels, nil),
		lastAck:  make(map[*mesh.Peer]time.Time),
	}
}

func (c *peerCollector) acked(p *mesh.Peer, now time.Time) {
	c.mu.Lock()
	c.lastAck[p] = now
	c.mu.Unlock()
}

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.buffered
	ch <- c.ackLag
}

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ id string }
	type row struct {
		buffered int
		lag      float64
	}
	now := time.Now()
	peers := c.node.Peers()
	rows := make(map[key]*row, len(peers))
	c.mu.Lock()
	live := make(map[*mesh.Peer]bool, len(peers))
	for _, p := range peers {
		live[p] = true
		b := p.Buffered()
		lag := 0.0
		if b > 0 {
			last, ok := c.lastAck[p]
			if !ok {
				last = now // first seen holding events: start counting from here
				c.lastAck[p] = last
			}
			lag = now.Sub(last).Seconds()
		}
		// Two links can share a peer id for a moment (a redial racing a
		// close, both nodes dialling); Prometheus refuses duplicate series,
		// so merge.
		k := key{p.ID()}
		if r := rows[k]; r != nil {
			r.buffered += b
			r.lag = max(r.lag, lag)
		} else {
			rows[k] = &row{b, lag}
		}
	}
	for p := range c.lastAck {
		if !live[p] {
			delete(c.lastAck, p)
		}
	}
	c.mu.Unlock()
	for k, r := range rows {
		ch <- prometheus.MustNewConstMetric(c.buffered, prometheus.GaugeValue, float64(r.buffered), k.id)
		ch <- prometheus.MustNewConstMetric(c.ackLag, prometheus.GaugeValue, r.lag, k.id)
	}
}
