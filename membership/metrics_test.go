package membership

import (
	"regexp"
	"strings"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	gmprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// The test that sets go-metrics' process-wide global itself: what the
// router passes on depends on what was global before it, so every step
// runs here, in order.
func TestMetricsRouting(t *testing.T) {
	// The router keeps passing unrouted samples to the application's
	// InmemSink below after this test. Its intervals follow time.Now, so
	// memberlist in a synctest bubble (fake time) would make one there that
	// memberlist in a later real-time test closes from outside the bubble:
	// a fatal error. Pass them to a blackhole instead, as before the test.
	t.Cleanup(func() {
		cfg := metrics.DefaultConfig("")
		cfg.EnableRuntimeMetrics = false // no goroutine
		quiet, _ := metrics.New(cfg, &metrics.BlackholeSink{})
		router.prev.Store(quiet)
	})
	// The application's own global, set before any node.
	app := metrics.NewInmemSink(time.Hour, time.Hour)
	appCfg := metrics.DefaultConfig("app")
	appCfg.EnableHostname, appCfg.EnableRuntimeMetrics = false, false
	appGlobal, err := metrics.NewGlobal(appCfg, app)
	if err != nil {
		t.Fatal(err)
	}

	// A sink without GlobalMetrics: the global is left alone.
	quiet := &captureSink{}
	newNode(t, "quiet", func(c *Config) { c.MetricSink = quiet })
	if metrics.Default() != appGlobal {
		t.Fatal("a MetricSink without GlobalMetrics replaced go-metrics' global")
	}

	sinkA := &captureSink{}
	sinkB := &captureSink{}
	a, _ := newNode(t, "a", func(c *Config) { c.MetricSink, c.GlobalMetrics = sinkA, true })
	b, _ := newNode(t, "b", func(c *Config) { c.MetricSink, c.GlobalMetrics = sinkB, true })
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	// a accepts b's join stream; b dials it: each sink sees its own side,
	// renamed by Prometheus' conventions.
	waitFor(t, converge, "a's sink to count a tcp accept", func() bool { return sinkA.has("verbose.memberlist.tcp.accept.total") })
	waitFor(t, converge, "b's sink to count a tcp connect", func() bool { return sinkB.has("verbose.memberlist.tcp.connect.total") })
	if sinkA.has("verbose.memberlist.tcp.connect.total") {
		t.Error("a's sink got b's tcp connect: samples were not routed by instance")
	}
	if quiet.count() != 0 {
		t.Errorf("the sink without GlobalMetrics got %d samples", quiet.count())
	}
	for _, s := range []*captureSink{sinkA, sinkB} {
		s.mu.Lock()
		for _, l := range s.labels {
			if l.Name == routeLabel {
				t.Errorf("routing label leaked to the sink: %+v", l)
			}
		}
		for k := range s.keys {
			if !strings.HasPrefix(k, "verbose.memberlist.") {
				t.Errorf("sink got %q, not one of memberlist's renamed", k)
			}
		}
		s.mu.Unlock()
	}

	// The application's metrics still reach its own sink, with its prefix,
	// and routed instances' do not (the quiet one's do: without the router
	// that is where memberlist writes).
	metrics.IncrCounter([]string{"requests"}, 1)
	metrics.IncrCounterWithLabels([]string{"labelled"}, 1, []metrics.Label{{Name: "route", Value: "x"}})
	seen := map[string]bool{}
	for _, iv := range app.Data() {
		for k := range iv.Counters {
			seen[k] = true
		}
		for k := range iv.Samples {
			seen[k] = true
		}
	}
	if !seen["app.requests"] || !seen["app.labelled;route=x"] {
		t.Errorf("the application's own counters did not reach its sink: %v", seen)
	}
	for k := range seen {
		if strings.Contains(k, "memberlist.tcp") {
			t.Errorf("the application's sink got memberlist's %q", k)
		}
	}
}

// Scraped through go-metrics' Prometheus sink, memberlist's metrics follow
// Prometheus' conventions: snake_case, counters end in _total, timers are
// _seconds, and the private routing label is gone.
func TestMemberlistMetricsScrapeByConventions(t *testing.T) {
	reg := prometheus.NewRegistry()
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{Registerer: reg, Name: "verbose_membership_test"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := newNode(t, "a", func(c *Config) { c.MetricSink, c.GlobalMetrics = sink, true })
	b, _ := newNode(t, "b", func(c *Config) { c.MetricSink, c.GlobalMetrics = sink, true })
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	snake := regexp.MustCompile(`^verbose_memberlist_[a-z0-9_]+$`)
	var fams map[string]string
	waitFor(t, converge, "a probe timer and message counters", func() bool {
		got, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		fams = map[string]string{}
		for _, f := range got {
			fams[f.GetName()] = f.GetType().String()
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == routeLabel {
						t.Fatalf("%s carries the routing label", f.GetName())
					}
				}
			}
		}
		return fams["verbose_memberlist_probe_node_seconds"] != "" && fams["verbose_memberlist_msg_alive_total"] != ""
	})
	for name, typ := range fams {
		if !snake.MatchString(name) {
			t.Errorf("%s is not verbose_memberlist_ and snake_case", name)
		}
		if typ == "COUNTER" && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if strings.HasSuffix(name, "_total") && typ != "COUNTER" {
			t.Errorf("%s ends in _total but is a %s", name, typ)
		}
	}
	if typ := fams["verbose_memberlist_probe_node_seconds"]; typ != "SUMMARY" {
		t.Errorf("probe timer is a %s, want a summary in seconds", typ)
	}
}

func TestPromName(t *testing.T) {
	for _, c := range []struct {
		key  string
		kind metricKind
		want string
	}{
		{"memberlist.msg.alive", counter, "verbose.memberlist.msg.alive.total"},
		{"memberlist.probeNode", sample, "verbose.memberlist.probe_node.seconds"},
		{"memberlist.pushPullNode", sample, "verbose.memberlist.push_pull_node.seconds"},
		{"memberlist.size.remote", sample, "verbose.memberlist.size.remote.bytes"},
		{"memberlist.health.score", gauge, "verbose.memberlist.health.score"},
	} {
		if got := strings.Join(promName(strings.Split(c.key, "."), c.kind), "."); got != c.want {
			t.Errorf("promName(%s) = %s, want %s", c.key, got, c.want)
		}
	}
}
