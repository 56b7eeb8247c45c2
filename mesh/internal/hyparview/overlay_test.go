package hyparview

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"
)

var large = flag.Bool("hpv.large", false, "also simulate 1000 nodes")

// checkSettled fails unless, with nothing in flight, the overlay of the
// living nodes is healthy and every active peer's link is up at both ends.
func checkSettled(t *testing.T, s *sim, lo, hi int) overlay {
	t.Helper()
	s.settle()
	o := s.overlay()
	if !o.healthy(lo, hi) {
		t.Fatalf("settled overlay unhealthy: connected %v symmetric %v dead refs %d sizes%s",
			o.connected, o.symmetric, o.deadRefs, histogram(o.sizes))
	}
	for _, n := range s.living {
		for _, p := range n.m.Active() {
			if e := n.ends[p]; e == nil || !e.up {
				t.Fatalf("%s: active peer %s without an up link in the network", n.id, p)
			}
		}
	}
	return o
}

func TestOverlayJoinAndHeal(t *testing.T) {
	type run struct {
		nodes int
		seeds []uint64
		burst bool // every node joins within one second, not one every 20ms
	}
	runs := []run{{50, []uint64{1, 2, 3, 4, 5}, false}, {200, []uint64{1, 2, 3}, false}, {200, []uint64{4}, true}}
	if *large {
		runs = append(runs, run{1000, []uint64{1, 2}, false}, run{1000, []uint64{3}, true})
	}
	for _, r := range runs {
		for _, seed := range r.seeds {
			name := fmt.Sprintf("N=%d/seed=%d", r.nodes, seed)
			if r.burst {
				name += "/burst"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				opt := defaultSimOptions(r.nodes, seed)
				if r.burst {
					opt.joinGap = time.Second / time.Duration(r.nodes)
				}
				joinAndHeal(t, opt)
			})
		}
	}
}

func joinAndHeal(t *testing.T, opt simOptions) {
	s := newSim(t, opt)
	hi := opt.cfg.withDefaults().capacity()
	s.runUntil(t0.Add(time.Duration(opt.nodes+1) * opt.joinGap))
	joined := s.now.Sub(t0)
	conv, ok := s.waitFor(time.Minute, func(o overlay) bool { return o.healthy(1, hi) })
	if !ok {
		o := s.overlay()
		t.Fatalf("not converged a minute after the last join: connected %v symmetric %v sizes%s",
			o.connected, o.symmetric, histogram(o.sizes))
	}
	joinMsgs := s.stats.messages()
	s.run(30 * time.Second)
	before := checkSettled(t, s, 1, hi)
	steadyMsgs, steadyConnects := s.stats.messages(), s.stats.connects
	const rest = 30 * time.Second
	s.run(rest)
	perNodeSecond := func(n int) float64 { return float64(n) / float64(opt.nodes) / rest.Seconds() }
	steadyRate := perNodeSecond(s.stats.messages() - steadyMsgs)
	steadyDials := perNodeSecond(s.stats.connects - steadyConnects)
	if steadyRate > 1.5 || steadyDials > 0.25 {
		t.Errorf("at rest: %.2f messages and %.2f Connects per node per second, want at most 1.5 and 0.25", steadyRate, steadyDials)
	}

	dead := slices.Clone(s.living)
	s.rng.Shuffle(len(dead), func(i, j int) { dead[i], dead[j] = dead[j], dead[i] })
	dead = dead[:opt.nodes/10]
	killMsgs := s.stats.messages()
	s.kill(dead)
	split := false
	heal, ok := s.waitFor(time.Minute, func(o overlay) bool {
		split = split || !o.connected
		return o.healthy(1, hi)
	})
	if !ok {
		o := s.overlay()
		t.Fatalf("not healed a minute after killing %d: connected %v symmetric %v dead refs %d sizes%s",
			len(dead), o.connected, o.symmetric, o.deadRefs, histogram(o.sizes))
	}
	healMsgs := s.stats.messages() - killMsgs
	if limit := opt.detect + time.Second; heal > limit {
		t.Errorf("healed in %v, want within %v (link loss detection + 1s)", heal, limit)
	}
	refill, refilled := s.waitFor(time.Minute, func(o overlay) bool { return deficit(o, hi) <= deficit(before, hi) })
	s.run(30 * time.Second)
	after := checkSettled(t, s, 1, hi)
	t.Logf("N=%d seed=%d: %d joins over %v converged %v after the last, %.0f msgs/node; at rest %.2f msgs and %.3f Connects per node per second",
		opt.nodes, opt.seed, opt.nodes-1, joined.Round(time.Millisecond), conv, float64(joinMsgs)/float64(opt.nodes), steadyRate, steadyDials)
	t.Logf("  settled: active sizes%s (mean %.2f), passive mean %.1f, mean path %.2f hops, eccentricity %d",
		histogram(before.sizes), meanInt(before.sizes), meanInt(before.passive), before.pathLength, before.eccentric)
	t.Logf("  killed %d (LinkDown after %v, Forget after %v-%v): split %v, healed in %v with %.1f msgs/node, slots refilled %v later (%v)",
		len(dead), opt.detect, opt.forget[0], opt.forget[1], split, heal, float64(healMsgs)/float64(len(s.living)), refill, refilled)
	t.Logf("  at most %d links held by a node at once; %d messages in all lost on links their other end had closed or died on",
		s.stats.maxLinks, s.stats.dropped)
	t.Logf("  settled: active sizes%s (mean %.2f), passive mean %.1f, mean path %.2f hops, eccentricity %d",
		histogram(after.sizes), meanInt(after.sizes), meanInt(after.passive), after.pathLength, after.eccentric)
}

// deficit counts the active view slots missing from capacity hi.
func deficit(o overlay, hi int) int {
	d := 0
	for _, n := range o.sizes {
		d += hi - n
	}
	return d
}

func TestOverlayMaxActiveBelowActiveSize(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			opt := defaultSimOptions(50, seed)
			opt.cfg = Config{ActiveSize: 7, MaxActive: 3}
			joinAndHeal(t, opt)
		})
	}
}

func TestOverlaySmallClusterIsFullMesh(t *testing.T) {
	for n := 2; n <= DefaultActiveSize+1; n++ {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("N=%d/seed=%d", n, seed), func(t *testing.T) {
				s := newSim(t, defaultSimOptions(n, seed))
				s.runUntil(t0.Add(time.Duration(n+1) * s.opt.joinGap))
				took, ok := s.waitFor(10*time.Second, func(o overlay) bool { return o.healthy(n-1, n-1) })
				if !ok {
					t.Fatalf("no full mesh 10s after the last join: sizes%s", histogram(s.overlay().sizes))
				}
				s.run(30 * time.Second)
				checkSettled(t, s, n-1, n-1)
				if d, r := s.stats.sent[KindDisconnect], s.stats.rejects; d+r > 0 {
					t.Fatalf("%d DISCONNECTs and %d rejections in a cluster that fits the active view", d, r)
				}
				if n == DefaultActiveSize+1 && seed == 1 {
					t.Logf("N=%d: full mesh %v after the last join", n, took)
				}
				if n < 3 {
					return
				}
				s.kill(s.living[:1])
				if _, ok := s.waitFor(s.opt.detect+time.Second, func(o overlay) bool { return o.healthy(n-2, n-2) }); !ok {
					t.Fatalf("no full mesh of the %d left: sizes%s", n-1, histogram(s.overlay().sizes))
				}
				checkSettled(t, s, n-2, n-2)
			})
		}
	}
}
