package membership

import (
	"strconv"
	"sync"
	"sync/atomic"

	metrics "github.com/hashicorp/go-metrics"
	compat "github.com/hashicorp/go-metrics/compat"
)

// memberlist v0.5.4 emits metrics only through the package-level functions
// of go-metrics/compat, which forward to a process-wide global: that of
// armon/go-metrics in a default build, that of hashicorp/go-metrics when
// built with -tags hashicorpmetrics. It accepts no sink of its own, but it
// attaches Config.MetricLabels to every sample.
//
// So: the first Membership with a MetricSink installs sinkRouter as that
// global (whichever it is: compat.NewGlobal picks it). Each such Membership
// sets one private label, routeLabel=<instance number>, which the router
// uses to find the instance's sink and then strips. Samples without a known
// label (instances without a sink, or other code using the same global) are
// dropped. Installing the router replaces any global sink the application
// had set on that global; an application wanting memberlist's metrics
// should pass its sink here instead.

const routeLabel = "verbose_membership_instance"

var (
	routerOnce sync.Once
	router     = &sinkRouter{sinks: make(map[string]metrics.MetricSink)}
	instanceN  atomic.Uint64
)

// registerSink routes this instance's samples to sink and returns the
// labels to give memberlist and a function that stops the routing.
func registerSink(sink metrics.MetricSink) ([]compat.Label, func()) {
	if sink == nil {
		return nil, func() {}
	}
	routerOnce.Do(func() {
		cfg := compat.DefaultConfig("")
		// No hostname prefix or label, no type prefix, and above all no
		// runtime-metrics goroutine: the router only relays memberlist.
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableRuntimeMetrics = false
		cfg.EnableTypePrefix = false
		cfg.EnableServiceLabel = false
		_, _ = compat.NewGlobal(cfg, router) // cannot fail without runtime metrics
	})
	id := strconv.FormatUint(instanceN.Add(1), 10)
	router.mu.Lock()
	router.sinks[id] = sink
	router.mu.Unlock()
	return []compat.Label{{Name: routeLabel, Value: id}}, func() {
		router.mu.Lock()
		delete(router.sinks, id)
		router.mu.Unlock()
	}
}

// sinkRouter implements compat.MetricSink, whose Label type depends on the
// build tag; the conversions below compile either way.
type sinkRouter struct {
	mu    sync.RWMutex
	sinks map[string]metrics.MetricSink
}

var _ compat.MetricSink = (*sinkRouter)(nil)

// route finds the sink for labels and returns the labels it should see.
func (r *sinkRouter) route(labels []compat.Label) (metrics.MetricSink, []metrics.Label) {
	var id string
	out := make([]metrics.Label, 0, len(labels))
	for _, l := range labels {
		if l.Name == routeLabel {
			id = l.Value
			continue
		}
		out = append(out, metrics.Label{Name: l.Name, Value: l.Value})
	}
	if id == "" {
		return nil, nil
	}
	r.mu.RLock()
	s := r.sinks[id]
	r.mu.RUnlock()
	return s, out
}

func (r *sinkRouter) SetGaugeWithLabels(key []string, val float32, labels []compat.Label) {
	if s, ls := r.route(labels); s != nil {
		s.SetGaugeWithLabels(key, val, ls)
	}
}

func (r *sinkRouter) IncrCounterWithLabels(key []string, val float32, labels []compat.Label) {
	if s, ls := r.route(labels); s != nil {
		s.IncrCounterWithLabels(key, val, ls)
	}
}

// AddSampleWithLabels also carries memberlist's timers: go-metrics turns
// MeasureSinceWithLabels into a sample in milliseconds before the sink.
func (r *sinkRouter) AddSampleWithLabels(key []string, val float32, labels []compat.Label) {
	if s, ls := r.route(labels); s != nil {
		s.AddSampleWithLabels(key, val, ls)
	}
}

// The unlabelled forms carry no route: memberlist never uses them.
func (r *sinkRouter) SetGauge([]string, float32)    {}
func (r *sinkRouter) EmitKey([]string, float32)     {}
func (r *sinkRouter) IncrCounter([]string, float32) {}
func (r *sinkRouter) AddSample([]string, float32)   {}
