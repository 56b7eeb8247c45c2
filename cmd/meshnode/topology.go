package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

// The cluster's topology: while someone looks (a cluster page open on some
// agent, or GET /v1/topology in the last topologyLinger), every agent
// reports its links and counters to the others as a system event,
// topologyEvent, every --topology-interval; each agent keeps the latest
// report of every node and serves them as /v1/topology and on the page.
// "*" handlers (and so /v1/events without ?event=$topology) never see these
// events.
//
// Reports go only while watched because a node that links to a cluster
// later than an origin's events were emitted declares those events lost
// (verbose_events_skipped_total, once per origin): reports sent all the
// time would make every join look like a loss. A watched agent's reports
// say so (Watch), and every agent that hears one reports too, for
// topologyStaleReports intervals.
//
// A report is bounded: at most topologyMaxLinks links, and
// topologyMaxBytes in all (past that the eager lists go, then links).
const (
	topologyEvent           = mesh.SystemPrefix + "topology"
	defaultTopologyInterval = 2 * time.Second
	minTopologyInterval     = 500 * time.Millisecond
	topologyMaxLinks        = 64
	topologyMaxBytes        = 16 << 10
	topologyHistory         = 90               // rate samples kept per node: 3 minutes at 2s
	topologyStaleReports    = 3                // a node silent this many intervals is shown stale
	topologyForget          = 5 * time.Minute  // a node no longer a member and silent this long is forgotten
	topologyLinger          = 30 * time.Second // a GET /v1/topology keeps the reports going this long
)

// linkReport is one of a node's links in its report.
type linkReport struct {
	Peer     string `json:"peer"` // the remote NodeID, "" before the handshake
	Addr     string `json:"addr"`
	State    string `json:"state"` // connecting, connected, disconnected, closed
	Buffered int    `json:"buffered"`
	AckLagMS int64  `json:"ack_lag_ms"` // since the peer last acknowledged; 0 when nothing is unacknowledged
	Outbound bool   `json:"outbound"`
	// Eager lists the origins whose events this node sends over the link
	// in full (the link is in their broadcast tree); for the others it
	// carries notices only.
	Eager []string `json:"eager,omitempty"`
}

// counters are a node's event counters (mesh.Stats) in its report.
type counters struct {
	Emitted        uint64 `json:"emitted"`
	Delivered      uint64 `json:"delivered"`
	Forwarded      uint64 `json:"forwarded"`
	Overflowed     uint64 `json:"overflowed"`
	HandlerDropped uint64 `json:"handler_dropped"`
	Skipped        uint64 `json:"skipped"`
	Expired        uint64 `json:"expired"`
	SlowConsumers  uint64 `json:"slow_consumers"`
	Held           bool   `json:"held"`
}

// lost is every event the node will never deliver or pass on.
func (c counters) lost() uint64 { return c.Overflowed + c.HandlerDropped + c.Skipped + c.Expired }

// nodeReport is the payload of a topologyEvent: one JSON string argument.
type nodeReport struct {
	Node       string       `json:"node"`
	Seq        uint64       `json:"seq"`   // the report's number, from 1 at the agent's start
	AtMS       int64        `json:"at_ms"` // the sender's clock, Unix milliseconds
	IntervalMS int64        `json:"interval_ms"`
	Links      []linkReport `json:"links"`
	MoreLinks  int          `json:"more_links,omitempty"` // links left out to keep the report bounded
	Truncated  bool         `json:"truncated,omitempty"`  // eager lists left out to keep the report bounded
	Stats      counters     `json:"stats"`
	Watch      bool         `json:"watch,omitempty"` // someone looks at the sender's topology: report
}

// rates are events per second over one interval.
type rates struct {
	Delivered float64 `json:"delivered"`
	Forwarded float64 `json:"forwarded"`
	Lost      float64 `json:"lost"` // overflow, handler drops, skipped, expired
}

// nodeView is what this agent knows of one node.
type nodeView struct {
	report nodeReport
	at     time.Time // when it arrived, this agent's clock
	rate   rates     // over the last two reports
	hist   []rates   // oldest first, at most topologyHistory
}

// nodeJSON is one node in /v1/topology.
type nodeJSON struct {
	nodeReport
	AgeMS   int64   `json:"age_ms"` // since its last report arrived
	Stale   bool    `json:"stale"`  // no report for topologyStaleReports intervals
	Rates   rates   `json:"rates"`
	History []rates `json:"history"` // one per report, oldest first
}

// topologyJSON is GET /v1/topology and the page's "topology" messages.
type topologyJSON struct {
	Self       string       `json:"self"`
	IntervalMS int64        `json:"interval_ms"`
	Members    []memberJSON `json:"members"`
	Nodes      []nodeJSON   `json:"nodes"`
	BadReports uint64       `json:"bad_reports,omitempty"`
}

// topology keeps every node's latest report and sends this agent's own.
type topology struct {
	node     *mesh.Node
	interval time.Duration
	acks     *peerCollector // when each link last acknowledged; nil: lags are 0
	log      hclog.Logger

	mu          sync.Mutex
	nodes       map[string]*nodeView
	seq         uint64
	bad         uint64 // malformed reports received
	badLogged   time.Time
	changed     chan struct{} // closed and replaced when something changed: wakes the page streams
	viewers     int           // open cluster pages on this agent
	lookedUntil time.Time     // a GET /v1/topology keeps this agent watched until then
	heardUntil  time.Time     // a watched agent's report keeps this one reporting until then
	kick        chan struct{}

	offs []func()
}

func newTopology(node *mesh.Node, interval time.Duration, acks *peerCollector, log hclog.Logger) *topology {
	t := &topology{node: node, interval: interval, acks: acks, log: log,
		nodes: map[string]*nodeView{}, changed: make(chan struct{}), kick: make(chan struct{}, 1)}
	t.offs = append(t.offs,
		node.On(topologyEvent, t.receive),
		node.OnPeer(func(e mesh.PeerEvent) {
			switch e.Kind {
			case mesh.Connect, mesh.Initialized, mesh.Disconnect, mesh.Expired, mesh.Slow, mesh.Recovered:
				t.notify() // this agent's own links changed: the pages see it now, not at the next report
			}
		}))
	return t
}

// run records this node's own report every interval, and sends it to the
// cluster while watched, until stop closes. An emit waits at most one
// interval (back-pressure): a report that cannot go is skipped, the next
// one carries the news.
func (t *topology) run(stop <-chan struct{}) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		t.report()
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-t.kick:
		}
	}
}

// look notes a GET /v1/topology: the cluster reports for topologyLinger.
func (t *topology) look() {
	t.mu.Lock()
	wake := !t.watchedLocked(time.Now())
	t.lookedUntil = time.Now().Add(topologyLinger)
	t.mu.Unlock()
	if wake {
		t.wake()
	}
}

// view notes a cluster page opened here; the returned func, that it closed.
func (t *topology) view() func() {
	t.mu.Lock()
	wake := !t.watchedLocked(time.Now())
	t.viewers++
	t.mu.Unlock()
	if wake {
		t.wake()
	}
	return func() {
		t.mu.Lock()
		t.viewers--
		t.lookedUntil = time.Now().Add(t.interval * topologyStaleReports) // a reload keeps the picture
		t.mu.Unlock()
	}
}

// wake makes run report at once.
func (t *topology) wake() {
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// watchedLocked reports whether someone looks at this agent's topology.
func (t *topology) watchedLocked(now time.Time) bool {
	return t.viewers > 0 || now.Before(t.lookedUntil)
}

// report records this node's own report and, while this agent or one
// that reported lately is watched, sends it to the cluster.
func (t *topology) report() {
	now := time.Now()
	r := t.own(now)
	t.mu.Lock()
	t.seq++
	r.Seq = t.seq
	r.Watch = t.watchedLocked(now)
	send := r.Watch || now.Before(t.heardUntil)
	t.mu.Unlock()
	t.record(r, now)
	if !send {
		return
	}
	data, err := marshalReport(&r)
	if err != nil {
		t.log.Error("cannot encode the topology report", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.interval)
	defer cancel()
	if err := t.node.EmitContext(ctx, topologyEvent, string(data)); err != nil && ctx.Err() == nil {
		t.log.Debug("topology report not sent", "error", err)
	}
}

// own builds this node's report from its links and counters.
func (t *topology) own(now time.Time) nodeReport {
	s := t.node.Stats()
	r := nodeReport{Node: t.node.ID(), AtMS: now.UnixMilli(), IntervalMS: t.interval.Milliseconds(),
		Stats: counters{Emitted: s.Emitted, Delivered: s.Delivered, Forwarded: s.Forwarded, Overflowed: s.Overflowed,
			HandlerDropped: s.HandlerDropped, Skipped: s.Skipped, Expired: s.Expired, SlowConsumers: s.SlowConsumers, Held: s.Held}}
	eager := map[string][]string{} // peer -> origins
	for origin, peers := range t.node.EagerPeers() {
		for _, p := range peers {
			eager[p] = append(eager[p], origin)
		}
	}
	r.Links = []linkReport{}
	for _, p := range t.node.Peers() {
		l := linkReport{Peer: p.ID(), Addr: p.Addr(), State: p.State().String(), Buffered: p.Buffered(), Outbound: p.Outbound()}
		if t.acks != nil {
			l.AckLagMS = t.acks.lag(p, now).Milliseconds()
		}
		if l.Peer != "" {
			l.Eager = eager[l.Peer]
			slices.Sort(l.Eager)
		}
		r.Links = append(r.Links, l)
	}
	slices.SortFunc(r.Links, func(a, b linkReport) int {
		if a.Peer != b.Peer {
			if a.Peer < b.Peer {
				return -1
			}
			return 1
		}
		if a.Addr < b.Addr {
			return -1
		}
		return 0
	})
	return r
}

// marshalReport encodes r within topologyMaxLinks and topologyMaxBytes:
// past them it leaves out the eager lists, then links (counted in
// MoreLinks).
func marshalReport(r *nodeReport) ([]byte, error) {
	if n := len(r.Links); n > topologyMaxLinks {
		r.MoreLinks += n - topologyMaxLinks
		r.Links = r.Links[:topologyMaxLinks]
	}
	for {
		data, err := json.Marshal(r)
		if err != nil || len(data) <= topologyMaxBytes {
			return data, err
		}
		if !r.Truncated {
			r.Truncated = true
			for i := range r.Links {
				r.Links[i].Eager = nil
			}
			continue
		}
		cut := max(1, len(r.Links)/4)
		r.MoreLinks += cut
		r.Links = r.Links[:len(r.Links)-cut]
	}
}

// receive is the topologyEvent handler, on the node's dispatcher: it
// decodes and records, nothing more.
func (t *topology) receive(e mesh.Event) {
	var s string
	var r nodeReport
	err := e.Scan(&s)
	if err == nil {
		err = json.Unmarshal([]byte(s), &r)
	}
	if err == nil && r.Node != e.Origin {
		err = errReportOrigin
	}
	if err != nil {
		t.mu.Lock()
		t.bad++
		logIt := time.Since(t.badLogged) >= time.Minute
		if logIt {
			t.badLogged = time.Now()
		}
		bad := t.bad
		t.mu.Unlock()
		if logIt {
			t.log.Warn("malformed topology report ignored", "origin", e.Origin, "error", err, "bad_reports", bad)
		}
		return
	}
	if r.Watch {
		t.mu.Lock()
		wake := !t.watchedLocked(time.Now()) && !time.Now().Before(t.heardUntil)
		interval := max(time.Duration(r.IntervalMS)*time.Millisecond, minTopologyInterval)
		t.heardUntil = time.Now().Add(topologyStaleReports * interval)
		t.mu.Unlock()
		if wake {
			t.wake() // report now, not at the next tick
		}
	}
	t.record(r, time.Now())
}

// errReportOrigin refuses a report that names another node than its origin.
var errReportOrigin = errors.New("the report's node is not its origin")

// record keeps r as its node's latest report and derives the node's rates
// from the one before (by the sender's clock).
func (t *topology) record(r nodeReport, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v := t.nodes[r.Node]
	switch {
	case v == nil:
		v = &nodeView{}
		t.nodes[r.Node] = v
	case r.AtMS <= v.report.AtMS:
		return // not newer than what is known: overtaken
	case r.Stats.Delivered >= v.report.Stats.Delivered && r.Stats.Forwarded >= v.report.Stats.Forwarded &&
		r.Stats.lost() >= v.report.Stats.lost():
		dt := float64(r.AtMS-v.report.AtMS) / 1000
		v.rate = rates{
			Delivered: float64(r.Stats.Delivered-v.report.Stats.Delivered) / dt,
			Forwarded: float64(r.Stats.Forwarded-v.report.Stats.Forwarded) / dt,
			Lost:      float64(r.Stats.lost()-v.report.Stats.lost()) / dt,
		}
		v.hist = append(v.hist, v.rate)
		if len(v.hist) > topologyHistory {
			v.hist = slices.Delete(v.hist, 0, len(v.hist)-topologyHistory)
		}
	default:
		v.rate, v.hist = rates{}, nil // the node restarted: its counters start again
	}
	v.report, v.at = r, now
	t.notifyLocked()
}

func (t *topology) notify() {
	t.mu.Lock()
	t.notifyLocked()
	t.mu.Unlock()
}

func (t *topology) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// wait returns a channel closed at the next change.
func (t *topology) wait() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.changed
}

// snapshot is the cluster as this agent knows it now: the members, and
// every node's latest report (this node's own links read afresh).
func (t *topology) snapshot(now time.Time) topologyJSON {
	self := t.node.ID()
	out := topologyJSON{Self: self, IntervalMS: t.interval.Milliseconds(), Members: []memberJSON{}, Nodes: []nodeJSON{}}
	members := map[string]bool{}
	for _, m := range t.node.Members() {
		out.Members = append(out.Members, memberJSON{Name: m.Name, Addr: m.Addr, RelayAddr: m.RelayAddr, State: m.State})
		members[m.Name] = true
	}
	slices.SortFunc(out.Members, func(a, b memberJSON) int { return cmpString(a.Name, b.Name) })
	fresh := t.own(now)
	t.mu.Lock()
	defer t.mu.Unlock()
	out.BadReports = t.bad
	for id, v := range t.nodes {
		age := now.Sub(v.at)
		if id != self && !members[id] && age > topologyForget {
			delete(t.nodes, id)
			continue
		}
		n := nodeJSON{nodeReport: v.report, AgeMS: age.Milliseconds(), Rates: v.rate, History: slices.Clone(v.hist)}
		if id == self {
			n.Links, n.MoreLinks, n.Truncated, n.AgeMS = fresh.Links, 0, false, 0
		}
		if n.History == nil {
			n.History = []rates{}
		}
		interval := time.Duration(v.report.IntervalMS) * time.Millisecond
		n.Stale = id != self && age > topologyStaleReports*max(interval, minTopologyInterval)
		out.Nodes = append(out.Nodes, n)
	}
	slices.SortFunc(out.Nodes, func(a, b nodeJSON) int { return cmpString(a.Node, b.Node) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (t *topology) close() {
	for _, off := range t.offs {
		off()
	}
}

// lag is how long p has held unacknowledged events without an
// acknowledgement (0 when it holds none), as verbose_peer_ack_lag_seconds.
func (c *peerCollector) lag(p *mesh.Peer, now time.Time) time.Duration {
	if p.Buffered() == 0 {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.lastAck[p]
	if !ok {
		c.lastAck[p] = now // first seen holding events: count from here
		return 0
	}
	return now.Sub(last)
}

// topologyHandler serves GET /v1/topology.
func (a *api) topologyHandler(w http.ResponseWriter, _ *http.Request) {
	if a.topo == nil {
		writeError(w, http.StatusNotFound, "topology reports are off (--topology-interval 0)")
		return
	}
	a.topo.look()
	writeJSON(w, http.StatusOK, a.topo.snapshot(time.Now()))
}
