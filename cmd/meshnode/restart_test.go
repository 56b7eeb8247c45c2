package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rateEmitter posts "kill" events [tag, k], k from 0, to an agent at
// about rate events a second (one client, keep-alive), until halted.
type rateEmitter struct {
	n      atomic.Int64 // events accepted
	failed atomic.Int64 // posts not accepted (none expected)
	stop   chan struct{}
	done   chan struct{}
}

func startRateEmitter(t *testing.T, tag, httpAddr string, rate int) *rateEmitter {
	e := &rateEmitter{stop: make(chan struct{}), done: make(chan struct{})}
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	go func() {
		defer close(e.done)
		defer tr.CloseIdleConnections()
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-e.stop:
				return
			case <-tick.C:
			}
			due := int64(time.Since(start).Seconds() * float64(rate))
			for k := e.n.Load(); k < due; k = e.n.Load() {
				body := fmt.Sprintf(`{"event":"kill","args":[%q,%d]}`, tag, k)
				resp, err := client.Post("http://"+httpAddr+"/v1/emit", "application/json", strings.NewReader(body))
				if err != nil {
					t.Errorf("emit %d: %v", k, err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusAccepted {
					e.failed.Add(1)
					t.Errorf("emit %d: %s", k, resp.Status)
					return
				}
				e.n.Add(1)
			}
		}
	}()
	return e
}

func (e *rateEmitter) halt() int {
	close(e.stop)
	<-e.done
	return int(e.n.Load())
}

// gate is a TCP proxy to target that holds every connection until opened:
// a restarted agent joins through it, so that the test can subscribe to
// the agent's stream before the cluster knows it is back.
type gate struct {
	ln     net.Listener
	target string
	open   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn // closed at cleanup: no copy outlives the test
}

func (g *gate) track(c net.Conn) {
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
}

func startGate(t *testing.T, target string) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, open: make(chan struct{})}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.track(c)
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer c.Close()
				<-g.open
				u, err := net.Dial("tcp", g.target)
				if err != nil {
					return
				}
				g.track(u)
				defer u.Close()
				g.wg.Add(1)
				go func() {
					defer g.wg.Done()
					_, _ = io.Copy(u, c)
					_ = u.(*net.TCPConn).CloseWrite()
				}()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		select {
		case <-g.open:
		default:
			close(g.open)
		}
		g.mu.Lock()
		for _, c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// metric reads one unlabelled sample of an agent's /metrics.
func metric(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, "http://"+httpAddr+"/metrics", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics of %s: %d", httpAddr, code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q", name, line)
			}
			return f
		}
	}
	t.Fatalf("/metrics of %s has no %s", httpAddr, name)
	return 0
}

// peerState is the state of httpAddr's link to id ("" without one).
func peerState(t *testing.T, httpAddr, id string) string {
	var ps []peerJSON
	getJSON(t, "http://"+httpAddr+"/v1/peers", &ps)
	for _, p := range ps {
		if p.ID == id {
			return p.State
		}
	}
	return ""
}

// A receiver SIGKILLed and restarted on new ports under the same NodeID,
// while an emitter posts 1,000 events a second, is followed to its new
// address: it gets every event emitted after it is back, and every event
// it missed (emitted while it was down, or in flight at the kill) is
// either resent to it or reported as lost (the emitter's overflow or
// expiry counters, its own skipped counter, each with a PeerEvent and a
// log line). Before, memberlist refused the new address for ~40s while the
// emitter kept a link to the dead one.
//
// Two runs: restarted at once (nothing lost; what the previous
// incarnation had not yet acknowledged is delivered again, the documented
// choice), and restarted after 1,500 events (more than the emitter's
// buffer for it: the oldest are lost, and reported).
func TestReceiverRestartedOnNewPorts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs agent processes")
	}
	bin := buildMeshnode(t)
	t.Run("at once", func(t *testing.T) { testReceiverRestart(t, bin, 0) })
	t.Run("after 1500 events", func(t *testing.T) { testReceiverRestart(t, bin, 1500) })
}

// testReceiverRestart restarts the receiver once down events were emitted
// after its kill.
func testReceiverRestart(t *testing.T, bin string, down int64) {
	tx := startAgentProc(t, bin, "rs-1") // the lower NodeID: it dials the receiver
	rx := startAgentProc(t, bin, "rs-2", "--join", tx.gossip)
	waitFor(t, 20*time.Second, "the pair linked", func() bool {
		return peerState(t, tx.http, "rs-2") == "connected" && peerState(t, rx.http, "rs-1") == "connected"
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	old := openKillStream(t, ctx, rx.http)
	em := startRateEmitter(t, "r", tx.http, 1000)
	waitFor(t, 10*time.Second, "events flowing", func() bool { return old.has("r", 0, 200) })

	if err := rx.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = rx.cmd.Wait()
	killedAt := em.n.Load()
	killed := time.Now()
	waitFor(t, 10*time.Second, "the events emitted while the receiver is down", func() bool { return em.n.Load() >= killedAt+down })

	g := startGate(t, tx.gossip)
	rx2 := startAgentProc(t, bin, "rs-2", "--join", g.ln.Addr().String()) // new gossip, relay and HTTP ports
	if rx2.relay == rx.relay || rx2.gossip == rx.gossip {
		t.Fatalf("restarted on the old ports: relay %s gossip %s", rx2.relay, rx2.gossip)
	}
	fresh := openKillStream(t, ctx, rx2.http)
	close(g.open) // now the cluster may hear of it
	returned := time.Now()

	waitFor(t, 15*time.Second, "the emitter linked to the restarted receiver", func() bool {
		return peerState(t, tx.http, "rs-2") == "connected"
	})
	backAt := int(em.n.Load())
	backAfter := time.Since(killed)
	// Followed at once (memberlist's conflict names the new address), not
	// once memberlist has declared the old address dead (~6s).
	sinceReturn := time.Since(returned)
	if sinceReturn > 3*time.Second {
		t.Errorf("the emitter linked to the restarted receiver %v after its return, want within 3s", sinceReturn)
	}
	waitFor(t, 10*time.Second, "events emitted after its return flowing", func() bool { return fresh.has("r", backAt, backAt+500) })
	total := em.halt()

	waitFor(t, 20*time.Second, "every event emitted after its return delivered", func() bool { return fresh.has("r", backAt, total) })
	fresh.check(t, "restarted receiver", "r")
	old.check(t, "killed receiver", "r")

	// Every event the receiver missed was resent to it or reported.
	got := map[int]int{}
	old.mu.Lock()
	for _, k := range old.got["r"] {
		got[k]++
	}
	old.mu.Unlock()
	again := 0 // events the new incarnation had again (its previous one had them)
	fresh.mu.Lock()
	for _, k := range fresh.got["r"] {
		if got[k] > 0 {
			again++
		}
		got[k]++
	}
	fresh.mu.Unlock()
	missing := 0
	for k := range total {
		if got[k] == 0 {
			missing++
		}
	}
	var overflow, expired, skipped, reported float64
	waitFor(t, 10*time.Second, "the missed events reported", func() bool {
		overflow = metric(t, tx.http, "verbose_events_overflow_dropped_total")
		expired = metric(t, tx.http, "verbose_events_expired_dropped_total")
		skipped = metric(t, rx2.http, "verbose_events_skipped_total")
		reported = overflow + expired + skipped
		return float64(missing) <= reported
	})
	if missing > 0 && !strings.Contains(tx.log.String(), "events dropped: a peer's retransmit buffer was full") &&
		!strings.Contains(rx2.log.String(), "events declared lost after ReorderTimeout") {
		t.Errorf("%d events missed and counted, but no log line says so", missing)
	}
	// The documented choice: a new incarnation gets again what its
	// previous one had received but not yet acknowledged (acks go out
	// every 250 events here, --buffer-max/4, or every second), nothing
	// older: at most a second's worth at this rate.
	if again > 1000 {
		t.Errorf("the new incarnation had %d events again, more than its previous one can have left unacknowledged", again)
	}
	if down == 0 && missing > 0 {
		t.Errorf("restarted at once, within the emitter's buffer: %d events missed", missing)
	}
	t.Logf("%d events at ~1,000/s; killed after %d; the emitter linked to the new incarnation %v after the kill, %v after its return (at event %d); "+
		"missed %d, reported lost %.0f (emitter: overflow %.0f, expired %.0f; receiver: skipped %.0f); %d delivered again to the new incarnation",
		total, killedAt, backAfter.Round(10*time.Millisecond), sinceReturn.Round(10*time.Millisecond), backAt, missing, reported, overflow, expired, skipped, again)
}

// A seed (no --join) that is restarted finds its cluster again by itself:
// --data-dir's snapshot of the members it knew gives it seeds to join.
// Before, it stayed alone, its emits answered 202 and reached nobody.
func TestRestartedSeedRejoinsByItself(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs agent processes")
	}
	bin := buildMeshnode(t)
	dir := t.TempDir()
	seed := startAgentProc(t, bin, "seed-1", "--data-dir", dir)
	other := startAgentProc(t, bin, "seed-2", "--join", seed.gossip)
	waitFor(t, 20*time.Second, "the pair linked", func() bool {
		return peerState(t, seed.http, "seed-2") == "connected"
	})
	waitFor(t, 10*time.Second, "seed-2 in the seed's snapshot", func() bool {
		ms, err := readSnapshot(dir, "seed-1")
		return err == nil && len(ms) == 1 && ms[0].Name == "seed-2" && ms[0].Addr == other.gossip
	})

	if err := seed.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = seed.cmd.Wait()
	killed := time.Now()
	// Its original flags: no --join.
	seed2 := startAgentProc(t, bin, "seed-1", "--data-dir", dir, "--gossip", seed.gossip, "--relay", seed.relay)
	waitFor(t, 20*time.Second, "the restarted seed linked to its cluster", func() bool {
		return peerState(t, seed2.http, "seed-2") == "connected"
	})
	back := time.Since(killed)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := openKillStream(t, ctx, other.http)
	resp, err := testClient.Post("http://"+seed2.http+"/v1/emit", "application/json", strings.NewReader(`{"event":"kill","args":["seed",0]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get(headerPeers) != "1" {
		t.Errorf("emit on the restarted seed: %s, %s=%q; want 202 and one peer", resp.Status, headerPeers, resp.Header.Get(headerPeers))
	}
	waitFor(t, 10*time.Second, "the restarted seed's event at the other node", func() bool { return s.has("seed", 0, 1) })
	t.Logf("the restarted seed was linked to its cluster again %v after it was killed", back.Round(10*time.Millisecond))
}
