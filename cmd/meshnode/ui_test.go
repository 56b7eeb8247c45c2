package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

// The page and its files are served from the binary, with their types and
// a policy that lets the page load nothing from elsewhere; nothing in them
// names another site.
func TestUIServed(t *testing.T) {
	a := startTestAgent(t)
	for _, c := range []struct{ path, ctype, has string }{
		{"/ui", "text/html; charset=utf-8", `<script src="/ui/app.js" defer></script>`},
		{"/ui/app.js", "text/javascript; charset=utf-8", `new EventSource("/v1/ui/stream")`},
		{"/ui/style.css", "text/css; charset=utf-8", "--eager"},
	} {
		resp, err := testClient.Get(a.url(c.path))
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != c.ctype || !strings.Contains(body.String(), c.has) {
			t.Errorf("GET %s: %s, Content-Type %q (want %q), has %q: %v", c.path, resp.Status, resp.Header.Get("Content-Type"), c.ctype, c.has, strings.Contains(body.String(), c.has))
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self'", c.path, csp)
		}
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{
		{http.MethodGet, "/ui/nothing.js", http.StatusNotFound},
		{http.MethodPost, "/ui", http.StatusMethodNotAllowed},
		{http.MethodGet, "/ui/index.html", http.StatusMovedPermanently},
	} {
		req, _ := http.NewRequest(c.method, a.url(c.path), nil)
		resp, err := (&http.Client{Transport: testClient.Transport, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s %s: %s, want %d", c.method, c.path, resp.Status, c.code)
		}
	}
	err := fs.WalkDir(uiFiles, "ui", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := uiFiles.ReadFile(path)
		s := strings.ReplaceAll(string(data), "http://www.w3.org/2000/svg", "") // a name, not fetched
		if strings.Contains(s, "http://") || strings.Contains(s, "https://") || strings.Contains(s, "//cdn") {
			t.Errorf("%s names another site: the page must load nothing from elsewhere", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Two linked agents: while /v1/topology is read, each reports its links
// to the other, so each shows both nodes with the link between them, and
// which origins it carries in full; /v1/events streams do not see the
// reports unless they ask for them by name.
func TestTopologyOfTwoAgents(t *testing.T) {
	b := startTestAgent(t, "--node-id", "node-b", "--topology-interval", "500ms")
	a := startTestAgent(t, "--node-id", "node-a", "--topology-interval", "500ms", "--connect", b.node.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	all, _ := openStream(t, ctx, b.url("/v1/events"), "")
	reports, _ := openStream(t, ctx, b.url("/v1/events?event="+topologyEvent), "")

	var top topologyJSON
	waitFor(t, 10*time.Second, "both nodes in a's and b's /v1/topology, linked", func() bool {
		for _, x := range []*agent{a, b} {
			getJSON(t, x.url("/v1/topology"), &top)
			if len(top.Nodes) != 2 {
				return false
			}
			for i, n := range top.Nodes {
				other := top.Nodes[1-i].Node
				if n.Stale || len(n.Links) != 1 || n.Links[0].Peer != other || n.Links[0].State != "connected" ||
					!reflect.DeepEqual(n.Links[0].Eager, []string{n.Node}) {
					return false
				}
			}
		}
		return true
	})
	if top.Self != "node-b" || top.IntervalMS != 500 || top.Nodes[0].Node != "node-a" || top.Nodes[0].Seq == 0 {
		t.Fatalf("b's topology: %+v", top)
	}

	// The reports reach a stream that names them; a catch-all stream sees
	// only the user's event that follows them.
	line, err := reports.ReadString('\n')
	if err != nil || !strings.Contains(line, `"event":"$topology"`) || !strings.Contains(line, `"origin":"node-a"`) {
		t.Fatalf("?event=$topology stream: %q, %v", line, err)
	}
	emitJSON(t, a, `{"event":"after","args":[1]}`)
	line, err = all.ReadString('\n')
	if err != nil || !strings.Contains(line, `"event":"after"`) {
		t.Fatalf("catch-all stream: first line %q (%v), want the event after, not a report", line, err)
	}

	// Off: no reports, and the endpoints say why.
	c := startTestAgent(t, "--topology-interval", "0")
	for _, path := range []string{"/v1/topology", "/v1/ui/stream"} {
		code, body := httpDo(t, http.MethodGet, c.url(path), "", nil)
		if code != http.StatusNotFound || !strings.Contains(string(body), "--topology-interval 0") {
			t.Errorf("GET %s with reports off: %d %s", path, code, body)
		}
	}
	if _, _, err := parseAgentFlags([]string{"--topology-interval", "100ms"}); err == nil || !strings.Contains(err.Error(), "--topology-interval") {
		t.Errorf("--topology-interval 100ms: %v, want an error naming the flag", err)
	}
}

// The page's stream: server-sent events, a "topology" message at once,
// then the events this agent emits and receives as unnamed messages.
func TestUIStreamFraming(t *testing.T) {
	a, b := linkedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, resp := openStream(t, ctx, b.url("/v1/ui/stream"), "")
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	name, data := readSSE(t, r)
	var top topologyJSON
	if err := json.Unmarshal([]byte(data), &top); name != "topology" || err != nil || top.Self != "node-b" {
		t.Fatalf("first message: event %q data %s (%v), want b's topology", name, data, err)
	}
	emitJSON(t, a, `{"event":"tailed","args":["x",2]}`)
	emitJSON(t, b, `{"event":"here","args":[]}`)
	var got []string
	for len(got) < 2 {
		name, data := readSSE(t, r)
		switch name {
		case "topology":
			continue
		case "":
			var e eventJSON
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatalf("tail message %s: %v", data, err)
			}
			got = append(got, fmt.Sprintf("%s from %s local=%v", e.Event, e.Origin, e.Local))
		default:
			t.Fatalf("unexpected message %q: %s", name, data)
		}
	}
	slices.Sort(got) // a's event and b's own are not ordered with each other
	if want := []string{"here from node-b local=true", "tailed from node-a local=false"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("tail %v, want %v", got, want)
	}
}

// readSSE reads one server-sent event: its name ("" for none) and data,
// skipping comments.
func readSSE(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != "" {
				return name, data
			}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data += strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("not server-sent event framing: %q", line)
		}
	}
}

// A report stays within its bounds however many links and origins; a
// report that names another node than its origin is refused and counted;
// rates come from two reports by the sender's clock.
func TestTopologyReports(t *testing.T) {
	r := nodeReport{Node: "n"}
	long := strings.Repeat("x", 36)
	for i := range 100 {
		l := linkReport{Peer: fmt.Sprintf("%s-%03d", long, i), State: "connected"}
		for j := range 40 {
			l.Eager = append(l.Eager, fmt.Sprintf("%s-%03d", long, j))
		}
		r.Links = append(r.Links, l)
	}
	data, err := marshalReport(&r)
	if err != nil {
		t.Fatal(err)
	}
	var back nodeReport
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if len(data) > topologyMaxBytes || !back.Truncated || len(back.Links)+back.MoreLinks != 100 || len(back.Links) == 0 {
		t.Fatalf("bounded report: %d bytes (max %d), truncated %v, %d links + %d more (want 100)",
			len(data), topologyMaxBytes, back.Truncated, len(back.Links), back.MoreLinks)
	}

	top := &topology{nodes: map[string]*nodeView{}, changed: make(chan struct{}), kick: make(chan struct{}, 1), log: hclog.NewNullLogger()}
	send := func(origin string, r nodeReport) {
		data, _ := json.Marshal(r)
		top.receive(mesh.Event{Name: topologyEvent, Origin: origin, Args: []any{string(data)}})
	}
	send("mallory", nodeReport{Node: "n"})
	top.receive(mesh.Event{Name: topologyEvent, Origin: "n", Args: []any{"not json"}})
	send("n", nodeReport{Node: "n", Seq: 1, AtMS: 1000, Stats: counters{Delivered: 10, Forwarded: 4}})
	send("n", nodeReport{Node: "n", Seq: 2, AtMS: 3000, Stats: counters{Delivered: 30, Forwarded: 8, Skipped: 1}, Watch: true})
	send("n", nodeReport{Node: "n", Seq: 1, AtMS: 2000}) // overtaken: ignored
	if top.bad != 2 {
		t.Errorf("bad reports %d, want 2 (a forged origin, malformed JSON)", top.bad)
	}
	v := top.nodes["n"]
	if v == nil || v.report.Seq != 2 || v.rate != (rates{Delivered: 10, Forwarded: 2, Lost: 0.5}) || len(v.hist) != 1 {
		t.Fatalf("n's view: %+v", v)
	}
	if !time.Now().Before(top.heardUntil) {
		t.Error("a watched node's report did not start this agent's reports")
	}
	select {
	case <-top.kick:
	default:
		t.Error("a watched node's report did not wake the reporter")
	}
}
