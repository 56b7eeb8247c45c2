package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A client that trickles a POST /v1/emit body (one byte every 100ms,
// slower than --http-read-timeout allows for the whole request) is cut off
// with 408 once the timeout has passed, while another client's emit is
// served meanwhile. Before the limit such a body was held forever.
func TestSlowBodyIsCutOff(t *testing.T) {
	a := startTestAgent(t, "--http-read-timeout", "500ms")
	conn, err := net.Dial("tcp", a.httpAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"event":"slow","args":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]}`
	start := time.Now()
	fmt.Fprintf(conn, "POST /v1/emit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))

	// Trickle on its own goroutine; the answer is read here.
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		for i := 0; i < len(body); i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return // cut off: what the test expects
			}
		}
	}()
	defer func() { close(stop); <-trickled }()

	emitJSON(t, a, `{"event":"fast","args":[1]}`) // the API serves others meanwhile

	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the trickled body: %v", err)
	}
	defer resp.Body.Close()
	took := time.Since(start)
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(e.Error, "--http-read-timeout") {
		t.Errorf("trickled body: %s %q, want 408 naming --http-read-timeout", resp.Status, e.Error)
	}
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("cut off after %v, want about the 500ms read timeout", took)
	}
}

// Past --max-streams open GET /v1/events streams, another is refused with
// 503 and a JSON error; once one ends, a new one is served again.
func TestTooManyStreams(t *testing.T) {
	a := startTestAgent(t, "--max-streams", "2")
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	openStream(t, ctx1, a.url("/v1/events"), "")
	openStream(t, ctx2, a.url("/v1/events?event=x"), "")

	code, body := httpDo(t, http.MethodGet, a.url("/v1/events"), "", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "--max-streams") {
		t.Fatalf("third stream: %d %s, want 503 naming --max-streams", code, body)
	}
	var refused float64
	for _, line := range strings.Split(scrape(t, a), "\n") {
		if v, ok := strings.CutPrefix(line, "verbose_stream_refused_total "); ok {
			_, _ = fmt.Sscan(v, &refused)
		}
	}
	if refused != 1 {
		t.Errorf("verbose_stream_refused_total = %v, want 1", refused)
	}

	cancel1()
	waitFor(t, 10*time.Second, "a stream served again once one ended", func() bool {
		req, _ := http.NewRequest(http.MethodGet, a.url("/v1/events"), nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp, err := testClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// scrape returns the agent's /metrics text.
func scrape(t *testing.T, a *agent) string {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, a.url("/metrics"), "", nil)
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	return string(body)
}

// An emit on an agent with no relay link is accepted (its own streams get
// it) but says that it reached no other node: X-Verbose-Peers: 0 and a
// warning, counted. With a connected link it says so without a warning.
func TestEmitSaysWhenNoLink(t *testing.T) {
	lone := startTestAgent(t, "--node-id", "lone", "--gossip", "")
	emitResult := func(a *agent) (emitResultJSON, http.Header) {
		t.Helper()
		resp, err := testClient.Post(a.url("/v1/emit"), "application/json", strings.NewReader(`{"event":"x","args":[1]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r emitResultJSON
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("emit: %s %v", resp.Status, err)
		}
		return r, resp.Header
	}
	r, h := emitResult(lone)
	if h.Get(headerPeers) != "0" || r.Peers != 0 || !strings.Contains(r.Warning, "reached no other node") {
		t.Errorf("lone agent: %s=%q, %+v; want 0 peers and a warning", headerPeers, h.Get(headerPeers), r)
	}
	if !strings.Contains(scrape(t, lone), "verbose_emit_unlinked_total 1\n") {
		t.Error("verbose_emit_unlinked_total is not 1 after one unlinked emit")
	}

	a, _ := linkedPair(t)
	r, h = emitResult(a)
	if h.Get(headerPeers) != "1" || h.Get(headerConnected) != "1" || r.Warning != "" || r.Connected != 1 {
		t.Errorf("linked agent: %s=%q %s=%q, %+v; want 1 connected peer, no warning",
			headerPeers, h.Get(headerPeers), headerConnected, h.Get(headerConnected), r)
	}
}
