package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verbosemesh/verbose/mesh"
)

// maxEmitBody bounds a POST /v1/emit body.
const maxEmitBody = 1 << 20

// api serves the agent's HTTP API over one node.
type api struct {
	node    *mesh.Node
	metrics *agentMetrics // nil: /metrics answers 404
	log     hclog.Logger

	// done ends every event stream: closed when the server shuts down, since
	// http.Server.Shutdown waits for handlers and a stream never returns
	// on its own.
	done          chan struct{}
	streamMu      sync.Mutex
	streamsClosed bool
	streams       sync.WaitGroup

	queueLen   atomic.Int64  // each stream's queue; streamQueue unless a test shrinks it
	streamWait time.Duration // how long a full stream holds the node's handler (0: drop at once)

	// The open streams, by filter, for the events emitted through this
	// API: the node does not deliver its own events to its handlers, so
	// the API hands them to its local streams itself. emitMu keeps the
	// order in which the local streams see them the order of the emits.
	emitMu sync.Mutex
	subsMu sync.Mutex
	subs   map[*subscriber][]string // filter names; "*" = all
	joined *atomic.Bool             // nil: ready needs no join

	maxPeers    int  // with MaxPeers links connected, ready without the rest
	partialView bool // --active-view: ready is linked to the view's neighbours

	topo *topology // every node's links, for /v1/topology and /ui; nil when reports are off

	maxStreams  int64        // most concurrent /v1/events streams; 0: no cap
	openStreams atomic.Int64 // streams being served or about to be

	streamDropped  prometheus.Counter
	streamRefused  prometheus.Counter
	unlinkedEmits  prometheus.Counter
	unlinkedLogged atomic.Int64 // unix nanos of the last "emit reached no node" log line
}

func newAPI(node *mesh.Node, metrics *agentMetrics, log hclog.Logger) *api {
	a := &api{node: node, metrics: metrics, log: log, done: make(chan struct{}), subs: map[*subscriber][]string{}}
	a.queueLen.Store(streamQueue)
	a.streamDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verbose_stream_dropped_events_total",
		Help: "Events dropped for /v1/events readers too slow to take them (slow consumers).",
	})
	a.streamRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verbose_stream_refused_total",
		Help: "GET /v1/events requests refused with 503 because --max-streams streams were open.",
	})
	a.unlinkedEmits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "verbose_emit_unlinked_total",
		Help: "Events emitted through the API while the node had no relay link: they reached no other node.",
	})
	return a
}

// addSub registers a stream's subscriber for local emits; the returned
// func removes it.
func (a *api) addSub(s *subscriber, names []string) func() {
	a.subsMu.Lock()
	a.subs[s] = names
	a.subsMu.Unlock()
	return func() {
		a.subsMu.Lock()
		delete(a.subs, s)
		a.subsMu.Unlock()
	}
}

// deliverLocal offers an event emitted through this API to the local
// streams whose filter takes it.
func (a *api) deliverLocal(e mesh.Event) {
	a.subsMu.Lock()
	defer a.subsMu.Unlock()
	for s, names := range a.subs {
		for _, n := range names {
			if n == "*" && !mesh.IsSystemEvent(e.Name) || n == e.Name {
				s.offer(e)
				break
			}
		}
	}
}

// closeStreams ends every event stream and waits for their handlers.
func (a *api) closeStreams() {
	a.streamMu.Lock()
	if !a.streamsClosed {
		a.streamsClosed = true
		close(a.done)
	}
	a.streamMu.Unlock()
	a.streams.Wait()
}

func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/emit", a.emit)
	mux.HandleFunc("GET /v1/events", a.events)
	mux.HandleFunc("GET /v1/members", a.members)
	mux.HandleFunc("GET /v1/peers", a.peers)
	mux.HandleFunc("GET /v1/health", a.health)
	mux.HandleFunc("GET /v1/ready", a.ready)
	mux.HandleFunc("GET /v1/topology", a.topologyHandler)
	a.handleUI(mux)
	if a.metrics != nil {
		mux.Handle("GET /metrics", a.metrics.handler())
	}
	// The method-less patterns catch the wrong methods, so that they get a
	// JSON error like every other failure rather than the mux's plain text.
	allowed := map[string]string{"/v1/emit": "POST", "/v1/events": "GET, HEAD", "/v1/members": "GET, HEAD",
		"/v1/peers": "GET, HEAD", "/v1/health": "GET, HEAD", "/v1/ready": "GET, HEAD",
		"/v1/topology": "GET, HEAD", "/v1/ui/stream": "GET, HEAD", "/ui": "GET, HEAD"}
	if a.metrics != nil {
		allowed["/metrics"] = "GET, HEAD"
	}
	for path, allow := range allowed {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", r.Method, path, allow)
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s", r.URL.Path)
	})
	return a.recoverer(mux)
}

// recoverer is the last resort: requests are validated first, but a panic
// in a handler must not take the agent down.
func (a *api) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
					panic(v)
				}
				a.log.Error("panic in HTTP handler", "method", r.Method, "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// emitRequest is the body of POST /v1/emit.
type emitRequest struct {
	Event string `json:"event"`
	Args  []any  `json:"args"`
}

func (a *api) emit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxEmitBody)
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	var req emitRequest
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body over %d bytes", maxEmitBody)
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			writeError(w, http.StatusRequestTimeout, "body not received within --http-read-timeout")
			return
		}
		writeError(w, http.StatusBadRequest, "malformed JSON body: %v", err)
		return
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "body over %d bytes", maxEmitBody)
			return
		}
		writeError(w, http.StatusBadRequest, "malformed JSON body: data after the object")
		return
	}
	if req.Event == "" {
		writeError(w, http.StatusBadRequest, `missing "event": the event name`)
		return
	}
	if len(req.Event) > mesh.MaxNameLen {
		writeError(w, http.StatusBadRequest, "event name too long: %d bytes, at most %d", len(req.Event), mesh.MaxNameLen)
		return
	}
	args := make([]any, len(req.Args))
	for i, v := range req.Args {
		args[i] = naturalJSON(v)
	}
	a.emitMu.Lock()
	defer a.emitMu.Unlock()
	if err := a.node.EmitContext(r.Context(), req.Event, args...); err != nil {
		switch {
		case errors.Is(err, mesh.ErrBadEvent):
			writeError(w, http.StatusBadRequest, "%v", err)
		case errors.Is(err, mesh.ErrClosed):
			writeError(w, http.StatusServiceUnavailable, "%v", err)
		case r.Context().Err() != nil:
			writeError(w, http.StatusServiceUnavailable, "emit abandoned: %v", err)
		default:
			writeError(w, http.StatusInternalServerError, "%v", err)
		}
		return
	}
	// Local subscribers see local publishes (as with NATS). The library's
	// Emit does not return the sequence number: seq 0 and "local": true
	// mark these lines.
	a.deliverLocal(mesh.Event{Name: req.Event, Args: args, Origin: a.node.ID()})
	writeJSON(w, http.StatusAccepted, a.emitResult(w))
}

// emitResultJSON is the body of a 202 from POST /v1/emit.
type emitResultJSON struct {
	OK        bool   `json:"ok"`
	Peers     int    `json:"peers"`     // links that took the event (connected or buffering for their peer)
	Connected int    `json:"connected"` // of which connected
	Warning   string `json:"warning,omitempty"`
}

// Headers of a 202 from POST /v1/emit: how many links took the event, and
// how many of them are connected. X-Verbose-Peers: 0 means the event
// reached no other node.
const (
	headerPeers     = "X-Verbose-Peers"
	headerConnected = "X-Verbose-Connected"
)

// emitResult says where an accepted event went: an emit on a node with no
// link reached no other node, and the client is told so (a warning in the
// body and X-Verbose-Peers: 0), counted and logged (once a second at most),
// rather than answered with a bare 202.
func (a *api) emitResult(w http.ResponseWriter) emitResultJSON {
	res := emitResultJSON{OK: true}
	for _, p := range a.node.Peers() {
		res.Peers++
		if p.State() == mesh.Connected {
			res.Connected++
		}
	}
	w.Header().Set(headerPeers, strconv.Itoa(res.Peers))
	w.Header().Set(headerConnected, strconv.Itoa(res.Connected))
	switch {
	case res.Peers == 0:
		res.Warning = "no relay link: the event reached no other node"
		a.unlinkedEmits.Inc()
		now := time.Now().UnixNano()
		if last := a.unlinkedLogged.Load(); now-last >= int64(time.Second) && a.unlinkedLogged.CompareAndSwap(last, now) {
			a.log.Warn("event emitted with no relay link: it reached no other node (see verbose_emit_unlinked_total)", "node", a.node.ID())
		}
	case res.Connected == 0:
		res.Warning = fmt.Sprintf("no connected link: the event is buffered for %d peer(s) until they connect (up to --buffer-max, for --buffer-timeout)", res.Peers)
	}
	return res
}

// naturalJSON turns json.Numbers into int64 when they are integers in
// range, float64 otherwise, so that msgpack carries natural types.
func naturalJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) {
			return string(x) // out of float64 range: keep the digits
		}
		return f
	case []any:
		for i := range x {
			x[i] = naturalJSON(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = naturalJSON(x[k])
		}
		return x
	}
	return v
}

// memberJSON and peerJSON are the shapes of /v1/members and /v1/peers.
type memberJSON struct {
	Name      string `json:"name"`
	Addr      string `json:"addr"`
	RelayAddr string `json:"relay_addr"`
	State     string `json:"state"`
}

type peerJSON struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	State    string `json:"state"`
	Buffered int    `json:"buffered"`
	Outbound bool   `json:"outbound"`
}

func (a *api) members(w http.ResponseWriter, _ *http.Request) {
	out := []memberJSON{}
	for _, m := range a.node.Members() {
		out = append(out, memberJSON{Name: m.Name, Addr: m.Addr, RelayAddr: m.RelayAddr, State: m.State})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *api) peers(w http.ResponseWriter, _ *http.Request) {
	out := []peerJSON{}
	for _, p := range a.node.Peers() {
		out = append(out, peerJSON{ID: p.ID(), Addr: p.Addr(), State: p.State().String(), Buffered: p.Buffered(), Outbound: p.Outbound()})
	}
	writeJSON(w, http.StatusOK, out)
}

// healthJSON is the shape of /v1/health.
type healthJSON struct {
	Status    string `json:"status"`
	NodeID    string `json:"node_id"`
	Peers     int    `json:"peers"`
	Connected int    `json:"connected"`
	Members   int    `json:"members"`
}

func (a *api) health(w http.ResponseWriter, _ *http.Request) {
	h := healthJSON{Status: "ok", NodeID: a.node.ID(), Members: aliveMembers(a.node)}
	for _, p := range a.node.Peers() {
		h.Peers++
		if p.State() == mesh.Connected {
			h.Connected++
		}
	}
	writeJSON(w, http.StatusOK, h)
}

// readyJSON is the shape of /v1/ready.
type readyJSON struct {
	Ready     bool     `json:"ready"`
	NodeID    string   `json:"node_id"`
	Reason    string   `json:"reason,omitempty"`
	Unlinked  []string `json:"unlinked,omitempty"` // members or --connect peers without a connected link
	Members   int      `json:"members"`
	Connected int      `json:"connected"`
}

// ready answers 200 when the agent has joined (a --join seed answered)
// and holds a connected link to every member it should be linked to: each
// alive member, when one of the pair can dial the other (the lower NodeID
// dials the other's advertised relay address), or MaxPeers connected
// links. Without membership, every
// --connect link must be connected. Otherwise 503 with the reason.
func (a *api) ready(w http.ResponseWriter, _ *http.Request) {
	r := readyJSON{NodeID: a.node.ID()}
	connected := map[string]bool{}
	var outboundDown []string
	for _, p := range a.node.Peers() {
		if p.State() == mesh.Connected {
			connected[p.ID()] = true
			r.Connected++
		} else if p.Outbound() {
			outboundDown = append(outboundDown, p.Addr())
		}
	}
	members := a.node.Members()
	switch {
	case a.joined != nil && !a.joined.Load():
		r.Reason = "not joined: no --join seed has answered yet"
	case members == nil: // no membership: the --connect links
		if len(outboundDown) > 0 {
			r.Unlinked = outboundDown
			r.Reason = fmt.Sprintf("%d --connect link(s) not connected", len(outboundDown))
		}
	case a.node.ActiveView() != nil || a.partialView:
		// A partial view: linked to every neighbour, and to some when
		// there is anyone to link.
		view := a.node.ActiveView()
		for _, m := range members {
			if m.State == "alive" && m.Name != r.NodeID {
				r.Members++
			}
		}
		for _, id := range view {
			if !connected[id] {
				r.Unlinked = append(r.Unlinked, id)
			}
		}
		switch {
		case len(r.Unlinked) > 0:
			r.Reason = fmt.Sprintf("no connected link to %d neighbour(s) of the partial view", len(r.Unlinked))
		case len(view) == 0 && r.Members > 0:
			r.Reason = "the partial view has no neighbour yet"
		}
	default:
		selfRelay := ""
		for _, m := range members {
			if m.Name == r.NodeID {
				selfRelay = m.RelayAddr
			}
		}
		for _, m := range members {
			if m.State != "alive" || m.Name == r.NodeID {
				continue
			}
			r.Members++
			dialable := (r.NodeID < m.Name && m.RelayAddr != "") || (r.NodeID > m.Name && selfRelay != "")
			if dialable && !connected[m.Name] {
				r.Unlinked = append(r.Unlinked, m.Name)
			}
		}
		if len(r.Unlinked) > 0 && (a.maxPeers == 0 || r.Connected < a.maxPeers) {
			r.Reason = fmt.Sprintf("no connected link to %d alive member(s)", len(r.Unlinked))
		}
	}
	r.Ready = r.Reason == ""
	status := http.StatusOK
	if !r.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, r)
}
