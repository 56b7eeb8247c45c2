package membership

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	metrics "github.com/hashicorp/go-metrics"
)

// memberlist emits metrics only through the package-level functions of
// hashicorp/go-metrics, which write to one process-wide *Metrics. It takes
// no sink of its own, but it attaches Config.MetricLabels to every sample.
//
// So, only when a Config asks (GlobalMetrics, with a MetricSink), such a
// Membership installs sinkRouter as that global (unless it already is),
// keeping the *Metrics that was global before (the application's, or
// go-metrics' blackhole). An application that sets a global of its own
// later replaces the router until the next routed Membership starts.
// Each routed Membership sets one private label, routeLabel=<instance
// number>, by which the router finds the instance's sink and which it then
// strips. Every other sample (the application's own, or an instance's
// without a sink) goes on to the previous global unchanged, so an
// application that set its go-metrics global before starting a node keeps
// its metrics. Without GlobalMetrics the global is never touched.
//
// What the instance sink sees follows Prometheus' naming conventions
// (promName): "verbose_memberlist_" and snake_case parts, counters end in
// "total", timers are in seconds and end in "seconds", byte sizes end in
// "bytes". A Prometheus sink (go-metrics/prometheus) joins the parts with
// "_": verbose_memberlist_msg_alive_total, verbose_memberlist_probe_node_seconds.

const routeLabel = "verbose_membership_instance"

var (
	router    = &sinkRouter{sinks: make(map[string]metrics.MetricSink)}
	instanceN atomic.Uint64
)

// registerSink routes this instance's samples to sink and returns the
// labels to give memberlist and a function that stops the routing. Without
// global (the application's permission to replace go-metrics' global) or
// without a sink, nothing is routed and the global is left alone.
func registerSink(sink metrics.MetricSink, global bool) ([]metrics.Label, func()) {
	if sink == nil || !global {
		return nil, func() {}
	}
	router.ensureGlobal()
	id := strconv.FormatUint(instanceN.Add(1), 10)
	router.mu.Lock()
	router.sinks[id] = sink
	router.mu.Unlock()
	return []metrics.Label{{Name: routeLabel, Value: id}}, func() {
		router.mu.Lock()
		delete(router.sinks, id)
		router.mu.Unlock()
	}
}

// sinkRouter is go-metrics' global sink once installed: it sends
// memberlist's samples to their instance's sink and all others to the
// global that was there before.
type sinkRouter struct {
	installMu sync.Mutex
	self      *metrics.Metrics                // our global, once installed
	prev      atomic.Pointer[metrics.Metrics] // the global before ours: gets every unrouted sample
	unit      atomic.Int64                    // the timer granularity of our global (prev's)

	mu    sync.RWMutex
	sinks map[string]metrics.MetricSink
}

var _ metrics.MetricSink = (*sinkRouter)(nil)

// ensureGlobal makes r the process-wide sink unless it is already: first
// use, or the application set a global of its own since (r then passes on
// to that one). Our *Metrics adds no prefix, no label and no
// runtime-metrics goroutine, and converts timers with the previous global's
// granularity, so that what is passed on to it is what it would have got
// itself.
func (r *sinkRouter) ensureGlobal() {
	r.installMu.Lock()
	defer r.installMu.Unlock()
	prev := metrics.Default()
	if prev == r.self {
		return
	}
	cfg := metrics.DefaultConfig("")
	cfg.EnableHostname = false
	cfg.EnableHostnameLabel = false
	cfg.EnableRuntimeMetrics = false
	cfg.EnableTypePrefix = false
	cfg.EnableServiceLabel = false
	if g := prev.TimerGranularity; g > 0 {
		cfg.TimerGranularity = g
	}
	r.unit.Store(int64(cfg.TimerGranularity))
	r.prev.Store(prev)
	r.self, _ = metrics.NewGlobal(cfg, r) // cannot fail without runtime metrics
}

// route finds the sink for labels and returns the labels it should see;
// nil when the sample is not one of a routed instance.
func (r *sinkRouter) route(labels []metrics.Label) (metrics.MetricSink, []metrics.Label) {
	var id string
	out := make([]metrics.Label, 0, len(labels))
	for _, l := range labels {
		if l.Name == routeLabel {
			id = l.Value
			continue
		}
		out = append(out, metrics.Label{Name: promPart(l.Name), Value: l.Value})
	}
	if id == "" {
		return nil, nil
	}
	r.mu.RLock()
	s := r.sinks[id]
	r.mu.RUnlock()
	return s, out
}

func (r *sinkRouter) SetGaugeWithLabels(key []string, val float32, labels []metrics.Label) {
	if s, ls := r.route(labels); s != nil {
		s.SetGaugeWithLabels(promName(key, gauge), val, ls)
	} else if !routed(labels) {
		r.prev.Load().SetGaugeWithLabels(key, val, labels)
	}
}

func (r *sinkRouter) IncrCounterWithLabels(key []string, val float32, labels []metrics.Label) {
	if s, ls := r.route(labels); s != nil {
		s.IncrCounterWithLabels(promName(key, counter), val, ls)
	} else if !routed(labels) {
		r.prev.Load().IncrCounterWithLabels(key, val, labels)
	}
}

// AddSampleWithLabels also carries memberlist's timers: go-metrics turns
// MeasureSinceWithLabels into a sample in units of r.unit before the sink.
func (r *sinkRouter) AddSampleWithLabels(key []string, val float32, labels []metrics.Label) {
	if s, ls := r.route(labels); s != nil {
		k := promName(key, sample)
		if timerKeys[strings.Join(key, ".")] {
			val = float32(float64(val) * time.Duration(r.unit.Load()).Seconds())
		}
		s.AddSampleWithLabels(k, val, ls)
	} else if !routed(labels) {
		r.prev.Load().AddSampleWithLabels(key, val, labels)
	}
}

// The unlabelled forms carry no route: the application's, passed on.
func (r *sinkRouter) SetGauge(key []string, val float32)    { r.prev.Load().SetGauge(key, val) }
func (r *sinkRouter) EmitKey(key []string, val float32)     { r.prev.Load().EmitKey(key, val) }
func (r *sinkRouter) IncrCounter(key []string, val float32) { r.prev.Load().IncrCounter(key, val) }
func (r *sinkRouter) AddSample(key []string, val float32)   { r.prev.Load().AddSample(key, val) }

// routed reports whether labels carry a route: the sample is one of our
// instances' (whose sink may be gone), never the application's.
func routed(labels []metrics.Label) bool {
	for _, l := range labels {
		if l.Name == routeLabel {
			return true
		}
	}
	return false
}

type metricKind int

const (
	gauge metricKind = iota
	counter
	sample
)

// timerKeys are memberlist's MeasureSince keys (v0.7.0): durations.
var timerKeys = map[string]bool{
	"memberlist.gossip":       true,
	"memberlist.probeNode":    true,
	"memberlist.pushPullNode": true,
}

// byteKeys are memberlist's samples and gauges of sizes in bytes.
var byteKeys = map[string]bool{
	"memberlist.size.remote": true,
	"memberlist.size.local":  true,
}

// promName renames one of memberlist's keys by Prometheus' conventions:
// "verbose" first, parts in snake_case, and the unit or "total" last.
func promName(key []string, kind metricKind) []string {
	joined := strings.Join(key, ".")
	out := make([]string, 0, len(key)+2)
	out = append(out, "verbose")
	for _, k := range key {
		out = append(out, promPart(k))
	}
	switch {
	case timerKeys[joined]:
		out = append(out, "seconds")
	case byteKeys[joined]:
		out = append(out, "bytes")
	}
	if kind == counter {
		out = append(out, "total")
	}
	return out
}

// promPart turns camelCase into snake_case: probeNode → probe_node.
func promPart(s string) string {
	var b strings.Builder
	for i, c := range s {
		if unicode.IsUpper(c) {
			if i > 0 {
				b.WriteByte('_')
			}
			c = unicode.ToLower(c)
		}
		b.WriteRune(c)
	}
	return b.String()
}
