package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/testcluster"
)

// The agent's registry, scraped: every name follows Prometheus'
// conventions (snake_case, counters end in _total), memberlist's included;
// per-peer series carry the peer's id and no address; a member that leaves
// takes its series with it.
func TestMetricsByPrometheusConventions(t *testing.T) {
	m, err := newMetrics()
	if err != nil {
		t.Fatal(err)
	}
	c := testcluster.NewWith(t, 3, testcluster.Options{Join: true, Configure: func(i int, cfg *mesh.Config) {
		if i == 0 {
			cfg.MetricSink, cfg.GlobalMetrics = m.sink, true
		}
	}})
	m.attach(c.Node(0))
	defer m.detach()
	c.Emit(0, "x", 1)
	c.WaitFromOrigin(t, 1, 0, 1)

	scrape := func() []*dto.MetricFamily {
		fams, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		return fams
	}
	peerSeries := func(id string) int {
		n := 0
		for _, f := range scrape() {
			for _, s := range f.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "peer" && l.GetValue() == id {
						n++
					}
				}
			}
		}
		return n
	}
	waitFor(t, 10*time.Second, "memberlist's metrics and both peers' series", func() bool {
		has := false
		for _, f := range scrape() {
			has = has || strings.HasPrefix(f.GetName(), "verbose_memberlist_")
		}
		return has && peerSeries(c.ID(1)) == 2 && peerSeries(c.ID(2)) == 2
	})

	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	millis := regexp.MustCompile(`_(ms|millis|milliseconds)(_|$)`)
	for _, f := range scrape() {
		name := f.GetName()
		if !snake.MatchString(name) {
			t.Errorf("%s is not snake_case", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if millis.MatchString(name) {
			t.Errorf("%s is not in seconds", name)
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if n := l.GetName(); n == "addr" || n == "address" || strings.Contains(n, "verbose_membership") {
					t.Errorf("%s carries label %s=%q", name, n, l.GetValue())
				}
			}
		}
	}

	c.Stop(2)
	waitFor(t, 10*time.Second, "the departed peer's series gone", func() bool { return peerSeries(c.ID(2)) == 0 })
	if n := peerSeries(c.ID(1)); n != 2 {
		t.Errorf("the remaining peer has %d series, want 2", n)
	}
}
