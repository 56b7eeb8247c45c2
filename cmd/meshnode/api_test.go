package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// linkedPair starts agent b, then agent a linked to b's relay address, and
// waits until the link is up on both sides.
func linkedPair(t *testing.T) (a, b *agent) {
	t.Helper()
	b = startTestAgent(t, "--node-id", "node-b")
	a = startTestAgent(t, "--node-id", "node-a", "--connect", b.node.Addr().String())
	waitFor(t, 10*time.Second, "a link a→b in both /v1/peers", func() bool {
		var pa, pb []peerJSON
		getJSON(t, a.url("/v1/peers"), &pa)
		getJSON(t, b.url("/v1/peers"), &pb)
		return len(pa) == 1 && pa[0].State == "connected" && pa[0].ID == "node-b" && pa[0].Outbound &&
			len(pb) == 1 && pb[0].State == "connected" && pb[0].ID == "node-a" && !pb[0].Outbound
	})
	return a, b
}

func TestEmitReachesOtherNodesStream(t *testing.T) {
	a, b := linkedPair(t)

	// b also gets the event in-process, to check the types msgpack carried.
	var mu sync.Mutex
	var got []mesh.Event
	off := b.node.On("greet", func(e mesh.Event) { mu.Lock(); got = append(got, e); mu.Unlock() })
	defer off()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lines, resp := openStream(t, ctx, b.url("/v1/events?event=greet"), "")
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type = %q, want application/x-ndjson", ct)
	}
	emitJSON(t, a, `{"event":"other","args":[]}`) // filtered out of the stream
	emitJSON(t, a, `{"event":"greet","args":["hi",1,2.5,{"k":[true,null]},-7]}`)

	line, err := lines.ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	var ev struct {
		Event  string `json:"event"`
		Args   []any  `json:"args"`
		Origin string `json:"origin"`
		Seq    uint64 `json:"seq"`
	}
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatalf("stream line %q: %v", line, err)
	}
	wantArgs := []any{"hi", 1.0, 2.5, map[string]any{"k": []any{true, nil}}, -7.0}
	if ev.Event != "greet" || ev.Origin != "node-a" || ev.Seq == 0 || !reflect.DeepEqual(ev.Args, wantArgs) {
		t.Fatalf("stream line = %s, want greet from node-a with args %v", line, wantArgs)
	}

	waitFor(t, 5*time.Second, "the in-process handler", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 })
	mu.Lock()
	args := got[0].Args
	mu.Unlock()
	// JSON integers travel as integers, other numbers as floats.
	if _, ok := args[1].(int64); !ok {
		if _, ok := args[1].(uint64); !ok {
			t.Errorf("arg 1 is %T, want an integer", args[1])
		}
	}
	if _, ok := args[2].(float64); !ok {
		t.Errorf("arg 2 is %T, want float64", args[2])
	}
	if v, ok := args[4].(int64); !ok || v != -7 {
		t.Errorf("arg 4 is %T %v, want int64 -7", args[4], args[4])
	}

	// The emitter counts its link and itself.
	var h healthJSON
	getJSON(t, a.url("/v1/health"), &h)
	if h.Status != "ok" || h.NodeID != "node-a" || h.Peers != 1 || h.Connected != 1 || h.Members != 1 {
		t.Errorf("health = %+v", h)
	}
}

func TestEventStreamSSE(t *testing.T) {
	a, b := linkedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lines, resp := openStream(t, ctx, b.url("/v1/events"), "text/event-stream")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
	emitJSON(t, a, `{"event":"tick","args":[3]}`)
	line, err := lines.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(line, `data: {"event":"tick","args":[3],"origin":"node-a"`) {
		t.Fatalf("SSE line = %q", line)
	}
	if blank, _ := lines.ReadString('\n'); blank != "\n" {
		t.Fatalf("SSE event not ended by a blank line: %q", blank)
	}
}

func TestStreamEndsOnShutdown(t *testing.T) {
	b := startTestAgent(t, "--gossip", "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lines, _ := openStream(t, ctx, b.url("/v1/events"), "")
	done := make(chan error, 1)
	go func() { _, err := lines.ReadString('\n'); done <- err }()
	b.close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("the stream sent a line, want its end")
		}
	case <-ctx.Done():
		t.Fatal("the stream outlived the agent")
	}
}

func TestBadRequests(t *testing.T) {
	a := startTestAgent(t, "--gossip", "")
	long := strings.Repeat("x", mesh.MaxNameLen+1)
	huge := `{"event":"x","args":["` + strings.Repeat("a", maxEmitBody) + `"]}`
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed JSON", "POST", "/v1/emit", `{"event":`, 400},
		{"not an object", "POST", "/v1/emit", `[1,2]`, 400},
		{"no event", "POST", "/v1/emit", `{"args":[1]}`, 400},
		{"empty event", "POST", "/v1/emit", `{"event":""}`, 400},
		{"name too long", "POST", "/v1/emit", `{"event":"` + long + `"}`, 400},
		{"args not an array", "POST", "/v1/emit", `{"event":"x","args":5}`, 400},
		{"trailing data", "POST", "/v1/emit", `{"event":"x"} {"event":"y"}`, 400},
		{"huge body", "POST", "/v1/emit", huge, 413},
		{"empty body", "POST", "/v1/emit", ``, 400},
		{"GET emit", "GET", "/v1/emit", ``, 405},
		{"DELETE members", "DELETE", "/v1/members", ``, 405},
		{"POST events", "POST", "/v1/events", ``, 405},
		{"empty filter", "GET", "/v1/events?event=", ``, 400},
		{"unknown path", "GET", "/v2/nothing", ``, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := httpDo(t, tc.method, a.url(tc.path), "application/json", strings.NewReader(tc.body))
			if code != tc.want {
				t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Errorf("body %q is not a JSON error", body)
			}
			var h healthJSON
			getJSON(t, a.url("/v1/health"), &h)
			if h.Status != "ok" {
				t.Errorf("health after a bad request: %+v", h)
			}
		})
	}
	// A good emit with no peers is accepted, and the node counts it.
	emitJSON(t, a, `{"event":"alone","args":[1,"two"]}`)
	emitJSON(t, a, `{"event":"noargs"}`)
	if s := a.node.Stats(); s.Emitted != 2 {
		t.Errorf("Emitted = %d, want 2", s.Emitted)
	}
}

func TestMembersAndPeersShapes(t *testing.T) {
	a, b := linkedPair(t)
	var ms []map[string]any
	getJSON(t, a.url("/v1/members"), &ms)
	if len(ms) != 1 {
		t.Fatalf("members = %v, want this node only", ms)
	}
	m := ms[0]
	for _, k := range []string{"name", "addr", "relay_addr", "state"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("member lacks string %q: %v", k, m)
		}
	}
	if m["name"] != "node-a" || m["state"] != "alive" || m["addr"] != a.node.GossipAddr() {
		t.Errorf("member = %v", m)
	}
	var ps []map[string]any
	getJSON(t, a.url("/v1/peers"), &ps)
	want := map[string]any{"id": "node-b", "addr": b.node.Addr().String(), "state": "connected", "buffered": 0.0, "outbound": true}
	if len(ps) != 1 {
		t.Fatalf("peers = %v", ps)
	}
	// buffered may be non-zero for a moment (a heartbeat-free link holds nothing, though).
	if !reflect.DeepEqual(ps[0], want) {
		t.Errorf("peer = %v, want %v", ps[0], want)
	}

	// Without membership, members is an empty list, not null.
	c := startTestAgent(t, "--gossip", "")
	code, body := httpDo(t, http.MethodGet, c.url("/v1/members"), "", nil)
	if code != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("members without gossip = %d %s", code, body)
	}
}

func TestMetrics(t *testing.T) {
	a, _ := linkedPair(t)
	emitJSON(t, a, `{"event":"m","args":[1]}`)
	var body string
	waitFor(t, 10*time.Second, "memberlist metrics in /metrics", func() bool {
		code, b := httpDo(t, http.MethodGet, a.url("/metrics"), "", nil)
		body = string(b)
		return code == 200 && strings.Contains(body, "\nverbose_memberlist_")
	})
	for _, want := range []string{
		"verbose_events_emitted_total 1\n",
		"verbose_events_received_total ",
		"verbose_events_delivered_total ",
		"verbose_events_duplicates_total ",
		"verbose_events_forwarded_total ",
		"verbose_events_overflow_dropped_total ",
		"verbose_events_expired_dropped_total ",
		"verbose_events_handler_dropped_total ",
		"verbose_events_skipped_total ",
		"verbose_tree_notices_total ",
		"verbose_tree_grafts_total ",
		"verbose_tree_prunes_total ",
		"verbose_tree_eager_links ",
		"verbose_redundancy ",
		"verbose_peers 1\n",
		"verbose_buffered_events ",
		`verbose_peer_buffered_events{peer="`,
		`verbose_peer_ack_lag_seconds{peer="`,
		`verbose_peer_events_total{kind="reconnect"} `,
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

func TestSubscriberDropsWhenFull(t *testing.T) {
	sub := &subscriber{q: make(chan mesh.Event, 2)}
	for i := range 5 {
		sub.offer(mesh.Event{Name: "e", Seq: uint64(i)})
	}
	if len(sub.q) != 2 || sub.dropped.Load() != 3 {
		t.Fatalf("queue %d, dropped %d; want 2 and 3", len(sub.q), sub.dropped.Load())
	}
}

// With back-pressure a full stream holds the offer (the node's handler)
// until the reader takes an event, or the stream ends, or the wait is over:
// nothing is dropped while the reader keeps up within the wait.
func TestSubscriberWaitsWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sub := &subscriber{q: make(chan mesh.Event, 1), wait: time.Minute, gone: make(chan struct{})}
		sub.offer(mesh.Event{Seq: 1})
		done := make(chan struct{})
		go func() { sub.offer(mesh.Event{Seq: 2}); close(done) }()
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("offer returned with the queue full")
		default:
		}
		if e := <-sub.q; e.Seq != 1 {
			t.Fatalf("got seq %d", e.Seq)
		}
		<-done
		if e := <-sub.q; e.Seq != 2 || sub.dropped.Load() != 0 {
			t.Fatalf("got seq %d, dropped %d", e.Seq, sub.dropped.Load())
		}
		// Full again: the stream ends, and the waiting offer lets go.
		sub.offer(mesh.Event{Seq: 3})
		go func() { sub.offer(mesh.Event{Seq: 4}) }()
		synctest.Wait()
		close(sub.gone)
		synctest.Wait()
		// Full, the reader gone silent: dropped after the wait, counted.
		sub2 := &subscriber{q: make(chan mesh.Event, 1), wait: time.Minute, gone: make(chan struct{})}
		sub2.offer(mesh.Event{Seq: 1})
		start := time.Now()
		sub2.offer(mesh.Event{Seq: 2})
		if waited := time.Since(start); waited != time.Minute || sub2.dropped.Load() != 1 {
			t.Fatalf("waited %v, dropped %d; want a minute and 1", waited, sub2.dropped.Load())
		}
	})
}

func TestWriteEventEdgeCases(t *testing.T) {
	var sb strings.Builder
	bw := bufio.NewWriter(&sb)
	nan := 0.0
	nan /= nan
	writeEvent(bw, false, mesh.Event{Name: "n", Origin: "o", Seq: 1})
	writeEvent(bw, false, mesh.Event{Name: "f", Args: []any{nan, []byte("hi"), map[any]any{1: "x"}}, Origin: "o", Seq: 2})
	bw.Flush()
	want := `{"event":"n","args":[],"origin":"o","seq":1}` + "\n" +
		`{"event":"f","args":["NaN","aGk=",{"1":"x"}],"origin":"o","seq":2}` + "\n"
	if sb.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", sb.String(), want)
	}
}

func TestNaturalJSON(t *testing.T) {
	for in, want := range map[string]any{
		"1": int64(1), "-3": int64(-3), "18446744073709551615": uint64(1<<64 - 1), "2.5": 2.5, "1e3": 1000.0, "1e999": "1e999",
	} {
		if got := naturalJSON(json.Number(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("naturalJSON(%s) = %T %v, want %T %v", in, got, got, want, want)
		}
	}
	got := naturalJSON([]any{map[string]any{"a": json.Number("4")}})
	if want := []any{map[string]any{"a": int64(4)}}; !reflect.DeepEqual(got, want) {
		t.Errorf("nested = %v", fmt.Sprint(got))
	}
}

func TestWriteBatchReportsDrops(t *testing.T) {
	for _, sse := range []bool{false, true} {
		sub := &subscriber{q: make(chan mesh.Event, 2)}
		for i := range 4 {
			sub.offer(mesh.Event{Name: "e", Origin: "o", Seq: uint64(i + 1)})
		}
		var sb strings.Builder
		bw := bufio.NewWriter(&sb)
		writeBatch(bw, sse, sub, <-sub.q)
		bw.Flush()
		want := `{"event":"e","args":[],"origin":"o","seq":1}` + "\n" + `{"event":"e","args":[],"origin":"o","seq":2}` + "\n" + `{"dropped":2}` + "\n"
		if sse {
			want = `data: {"event":"e","args":[],"origin":"o","seq":1}` + "\n\n" + `data: {"event":"e","args":[],"origin":"o","seq":2}` + "\n\n" +
				"event: dropped\ndata: {\"dropped\":2}\n\n"
		}
		if sb.String() != want {
			t.Errorf("sse=%v: got\n%q\nwant\n%q", sse, sb.String(), want)
		}
		if sub.dropped.Load() != 0 {
			t.Errorf("drop count not reset")
		}
	}
}

// With --slow-consumer drop, a stream whose reader stalls must not stall the node: its events are
// dropped for that stream only, and every one of them is either in the
// stream or counted in a {"dropped":n} line.
func TestStalledStreamDoesNotStallNode(t *testing.T) {
	a, b := linkedPair(t)
	b.api.queueLen.Store(8)
	b.api.streamWait = 0 // --slow-consumer drop: a stream never holds the node (TestSubscriberWaitsWhenFull: backpressure)
	var delivered atomic.Int64
	off := b.node.On("bulk", func(mesh.Event) { delivered.Add(1) })
	defer off()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lines, _ := openStream(t, ctx, b.url("/v1/events?event=bulk"), "")
	const n = 3000
	payload := strings.Repeat("p", 4096) // 12 MB in all: more than socket buffers hold
	for i := range n {
		if err := a.node.Emit("bulk", i, payload); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "every event delivered to b's handler despite the stalled stream", func() bool {
		return delivered.Load() == n
	})

	seen, dropped := 0, 0
	for seen+dropped < n {
		line, err := lines.ReadBytes('\n')
		if err != nil {
			t.Fatalf("after %d events and %d dropped: %v", seen, dropped, err)
		}
		var m struct {
			Event   string `json:"event"`
			Dropped int    `json:"dropped"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %.80q: %v", line, err)
		}
		if m.Event == "bulk" {
			seen++
		}
		dropped += m.Dropped
	}
	if seen+dropped != n || dropped == 0 {
		t.Fatalf("stream: %d events + %d dropped, want %d with some dropped", seen, dropped, n)
	}
	t.Logf("stalled stream: %d events written, %d dropped", seen, dropped)
}

func TestEncryptedGossipJoin(t *testing.T) {
	key := "QUJDREVGR0hJSktMTU5PUA==" // 16 bytes
	b := startTestAgent(t, "--node-id", "enc-b", "--encrypt", key)
	a := startTestAgent(t, "--node-id", "enc-a", "--encrypt", key, "--join", b.node.GossipAddr())
	waitFor(t, 15*time.Second, "two alive members and a link, over encrypted gossip", func() bool {
		var h healthJSON
		getJSON(t, a.url("/v1/health"), &h)
		return h.Members == 2 && h.Connected == 1
	})
}

func TestRecovererAnswersJSON(t *testing.T) {
	b := startTestAgent(t, "--gossip", "", "--relay", "", "--http", "")
	api := newAPI(b.node, nil, b.log)
	h := api.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Fatalf("panic answered %d %q", rec.Code, rec.Body.String())
	}
}
