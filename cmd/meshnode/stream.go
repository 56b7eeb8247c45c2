package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/verbosemesh/verbose/mesh"
)

// Event stream tuning. A subscriber's queue absorbs bursts. Past it, with
// --slow-consumer backpressure (the default) the node's handler waits for
// the reader, up to streamWriteTimeout, so that the mesh holds its senders
// back and nothing is lost; with drop, or once that wait is over, events are
// dropped for that subscriber only, counted and reported in the stream.
const (
	streamQueue        = 4096
	streamBatch        = 256              // events written between flushes, at most
	streamWriteTimeout = 30 * time.Second // a reader stuck this long is cut off
	sseKeepAlive       = 15 * time.Second
)

// eventJSON is one line of GET /v1/events.
type eventJSON struct {
	Event  string `json:"event"`
	Args   []any  `json:"args"`
	Origin string `json:"origin"`
	Seq    uint64 `json:"seq"`
	Local  bool   `json:"local,omitempty"` // emitted through this agent's API (seq is 0: see api.emit)
	Error  string `json:"error,omitempty"`
}

// subscriber is one stream's bounded queue, fed by node handlers on the
// node's dispatcher goroutine: offer never blocks.
type subscriber struct {
	q       chan mesh.Event
	wait    time.Duration // how long offer waits for room (0: never)
	gone    chan struct{} // closed when the stream ends; nil in some tests
	dropped atomic.Uint64
	total   prometheus.Counter // every drop, all streams; nil in some tests
}

func (s *subscriber) offer(e mesh.Event) {
	select {
	case s.q <- e:
		return
	default:
	}
	if s.wait > 0 {
		t := time.NewTimer(s.wait)
		defer t.Stop()
		select {
		case s.q <- e:
			return
		case <-s.gone:
			return // the reader left: nobody to deliver to
		case <-t.C:
		}
	}
	s.dropped.Add(1)
	if s.total != nil {
		s.total.Inc()
	}
}

// acceptsSSE reports whether the client asked for server-sent events.
func acceptsSSE(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
			return true
		}
	}
	return false
}

// startStream registers a stream unless the server is shutting down.
func (a *api) startStream() bool {
	a.streamMu.Lock()
	defer a.streamMu.Unlock()
	if a.streamsClosed {
		return false
	}
	a.streams.Add(1)
	return true
}

func (a *api) events(w http.ResponseWriter, r *http.Request) {
	names := r.URL.Query()["event"]
	for _, n := range names {
		if n == "" || len(n) > mesh.MaxNameLen {
			writeError(w, http.StatusBadRequest, "event filter must be 1 to %d bytes, got %d", mesh.MaxNameLen, len(n))
			return
		}
	}
	if n := a.openStreams.Add(1); a.maxStreams > 0 && n > a.maxStreams {
		a.openStreams.Add(-1)
		a.streamRefused.Inc()
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "too many event streams: %d open, the most --max-streams allows", a.maxStreams)
		return
	}
	defer a.openStreams.Add(-1)
	if !a.startStream() {
		writeError(w, http.StatusServiceUnavailable, "the agent is shutting down")
		return
	}
	defer a.streams.Done()

	sub := &subscriber{q: make(chan mesh.Event, a.queueLen.Load()), total: a.streamDropped,
		wait: a.streamWait, gone: make(chan struct{})}
	filter := filterNames(names)
	for _, name := range filter {
		off := a.node.On(name, sub.offer)
		defer off()
	}
	defer close(sub.gone) // first of the defers: a handler waiting in offer lets go`
	defer a.addSub(sub, filter)()
	sse := acceptsSSE(r)
	h := w.Header()
	if sse {
		h.Set("Content-Type", "text/event-stream")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil {
		return
	}
	bw := bufio.NewWriter(w)
	var keepAlive <-chan time.Time
	if sse {
		t := time.NewTicker(sseKeepAlive)
		defer t.Stop()
		keepAlive = t.C
	}
	drops := &dropLog{log: a.log, msg: "event stream reader too slow: events dropped for it", remote: r.RemoteAddr}
	defer func() { drops.close(sub.dropped.Load()) }()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.done:
			return
		case <-keepAlive:
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			bw.WriteString(": keepalive\n\n")
		case e := <-sub.q:
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			drops.add(writeBatch(bw, sse, sub, e))
		}
		if bw.Flush() != nil || rc.Flush() != nil {
			return // the client is gone or too slow
		}
	}
}

// dropLog logs the events dropped for one stream's reader: once a second
// at most while it runs (they are counted, and written into the stream),
// and what is left when it ends.
type dropLog struct {
	log         hclog.Logger
	msg, remote string
	unlogged    uint64 // drops not yet logged
	logged      time.Time
}

// add counts n more drops and logs them if a second has passed.
func (d *dropLog) add(n uint64) {
	d.unlogged += n
	if d.unlogged > 0 && time.Since(d.logged) >= time.Second {
		d.log.Warn(d.msg, "dropped", d.unlogged, "remote", d.remote)
		d.unlogged, d.logged = 0, time.Now()
	}
}

// close logs what is left, with pending drops never written to the stream.
func (d *dropLog) close(pending uint64) {
	if n := d.unlogged + pending; n > 0 {
		d.log.Warn(d.msg, "dropped", n, "remote", d.remote)
	}
}

// writeBatch writes first and whatever else is queued (up to streamBatch
// events), then the count of events dropped for this subscriber, if any.
// Drops happen only while the queue is full, so a batch always follows
// them: they are reported where the stream resumes.
func writeBatch(bw *bufio.Writer, sse bool, sub *subscriber, first mesh.Event) (dropped uint64) {
	writeEvent(bw, sse, first)
drain:
	for range streamBatch - 1 {
		select {
		case e := <-sub.q:
			writeEvent(bw, sse, e)
		default:
			break drain
		}
	}
	d := sub.dropped.Swap(0)
	if d > 0 {
		line := fmt.Sprintf(`{"dropped":%d}`, d)
		if sse {
			fmt.Fprintf(bw, "event: dropped\ndata: %s\n\n", line)
		} else {
			bw.WriteString(line + "\n")
		}
	}
	return d
}

// filterNames is the handler registrations for a stream's ?event= filter:
// "*" for none, else each name once (a name given twice must not double
// the events).
func filterNames(names []string) []string {
	seen := make(map[string]bool, len(names))
	var out []string
	for _, n := range names {
		if n == "*" {
			return []string{"*"}
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return []string{"*"}
	}
	return out
}

func writeEvent(bw *bufio.Writer, sse bool, e mesh.Event) {
	args := e.Args
	if args == nil {
		args = []any{}
	}
	local := e.Seq == 0 // only deliverLocal makes events without a sequence number
	line, err := json.Marshal(eventJSON{Event: e.Name, Args: jsonSafeSlice(args), Origin: e.Origin, Seq: e.Seq, Local: local})
	if err != nil {
		line, _ = json.Marshal(eventJSON{Event: e.Name, Args: []any{}, Origin: e.Origin, Seq: e.Seq,
			Error: "args not representable in JSON: " + err.Error()})
	}
	if sse {
		bw.WriteString("data: ")
		bw.Write(line)
		bw.WriteString("\n\n")
		return
	}
	bw.Write(line)
	bw.WriteByte('\n')
}

// jsonSafe makes msgpack-decoded values JSON-encodable: maps with
// non-string keys get their keys printed, non-finite floats become strings.
func jsonSafe(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Sprint(x)
		}
	case []any:
		return jsonSafeSlice(x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonSafe(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonSafe(e)
		}
		return out
	}
	return v
}

func jsonSafeSlice(xs []any) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = jsonSafe(x)
	}
	return out
}
