package main

import (
	"bufio"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// The cluster page: GET /ui serves ui/index.html and /ui/ its script and
// style, all embedded in the binary (no build step, nothing fetched from
// elsewhere: the Content-Security-Policy allows this origin only). The page
// opens one server-sent event stream, GET /v1/ui/stream, which carries
//
//	event: topology   the cluster (as GET /v1/topology) at each change,
//	                  at most every uiMinGap, and every uiRefresh at least
//	(no event name)   each event this agent receives or emits, as a line
//	                  of GET /v1/events (the tail)
//	event: dropped    {"dropped":n}: tail events left out for a slow page
//
// The tail never holds the node back: past uiQueue waiting events, the
// page misses them, counted (verbose_stream_dropped_events_total), logged
// and reported in the stream.
const (
	uiMinGap  = 500 * time.Millisecond
	uiRefresh = 5 * time.Second // ages and stale marks move even when nothing else does
	uiQueue   = 256
)

//go:embed ui
var uiFiles embed.FS

const uiCSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (a *api) handleUI(mux *http.ServeMux) {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	static := http.StripPrefix("/ui/", http.FileServerFS(sub))
	headers := func(w http.ResponseWriter) {
		w.Header().Set("Content-Security-Policy", uiCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
	}
	mux.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) {
		headers(w)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /ui/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") == "index.html" || r.PathValue("file") == "" {
			http.Redirect(w, r, "/ui", http.StatusMovedPermanently)
			return
		}
		if _, err := fs.Stat(sub, r.PathValue("file")); err != nil {
			writeError(w, http.StatusNotFound, "no such file: %s", r.URL.Path)
			return
		}
		headers(w)
		static.ServeHTTP(w, r)
	})
	mux.HandleFunc("GET /v1/ui/stream", a.uiStream)
}

// uiStream is GET /v1/ui/stream: the page's one server-sent event stream.
func (a *api) uiStream(w http.ResponseWriter, r *http.Request) {
	if a.topo == nil {
		writeError(w, http.StatusNotFound, "topology reports are off (--topology-interval 0)")
		return
	}
	if !a.startStream() {
		writeError(w, http.StatusServiceUnavailable, "the agent is shutting down")
		return
	}
	defer a.streams.Done()
	defer a.topo.view()()
	sub := &subscriber{q: make(chan mesh.Event, uiQueue), total: a.streamDropped, gone: make(chan struct{})}
	defer a.node.On("*", sub.offer)()
	defer close(sub.gone)
	defer a.addSub(sub, []string{"*"})()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	bw := bufio.NewWriter(w)
	keepAlive := time.NewTicker(sseKeepAlive)
	defer keepAlive.Stop()
	refresh := time.NewTimer(0) // the first snapshot at once
	defer refresh.Stop()
	changed := a.topo.wait()
	var last time.Time
	drops := &dropLog{log: a.log, msg: "cluster page too slow: tail events left out", remote: r.RemoteAddr}
	defer func() { drops.close(sub.dropped.Load()) }()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.done:
			return
		case <-keepAlive.C:
			bw.WriteString(": keepalive\n\n")
		case <-changed:
			changed = nil // until this snapshot is sent
			refresh.Reset(max(0, uiMinGap-time.Since(last)))
			continue
		case <-refresh.C:
			changed = a.topo.wait() // before the snapshot: a change during it is not missed
			data, err := json.Marshal(a.topo.snapshot(time.Now()))
			if err != nil {
				a.log.Error("cannot encode the topology", "error", err)
				return
			}
			fmt.Fprintf(bw, "event: topology\ndata: %s\n\n", data)
			last = time.Now()
			refresh.Reset(uiRefresh)
		case e := <-sub.q:
			drops.add(writeBatch(bw, true, sub, e))
		}
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if bw.Flush() != nil || rc.Flush() != nil {
			return
		}
		drops.add(0) // what a batch left unlogged, once its second has passed
	}
}
