package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

// Every goroutine the agent, the nodes and the HTTP servers start must be
// gone when the tests end. Test clients disable keep-alives, so net/http
// keeps no idle connection goroutines behind: nothing is ignored.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testClient never keeps connections alive, so that no idle-connection
// goroutine outlives a test.
var testClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 20 * time.Second}

// startTestAgent starts an in-process agent from command-line flags, with
// loopback port-0 defaults, and stops it when the test ends.
func startTestAgent(t *testing.T, args ...string) *agent {
	t.Helper()
	base := []string{"--gossip", "127.0.0.1:0", "--relay", "127.0.0.1:0", "--http", "127.0.0.1:0", "--timeout", "5s"}
	opts, _, err := parseAgentFlags(append(base, args...))
	if err != nil {
		t.Fatalf("parseAgentFlags: %v", err)
	}
	out := &testLogWriter{w: t.Output()}
	t.Cleanup(out.stop) // registered first, so it runs after a.close
	log := hclog.New(&hclog.LoggerOptions{Name: "meshnode", Level: hclog.Warn, Output: out})
	a, err := startAgent(opts, log)
	if err != nil {
		t.Fatalf("startAgent: %v", err)
	}
	t.Cleanup(a.close)
	return a
}

func (a *agent) url(path string) string { return "http://" + a.httpAddr() + path }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpDo sends a request and returns the status and body.
func httpDo(t *testing.T, method, url, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, data
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, url, "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// openStream opens GET /v1/events and returns a line reader; the handler
// has registered its subscription once the headers are back.
func openStream(t *testing.T, ctx context.Context, url, accept string) (*bufio.Reader, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return bufio.NewReader(resp.Body), resp
}

func emitJSON(t *testing.T, a *agent, body string) {
	t.Helper()
	code, resp := httpDo(t, http.MethodPost, a.url("/v1/emit"), "application/json", strings.NewReader(body))
	if code != http.StatusAccepted || !bytes.Contains(resp, []byte(`"ok":true`)) {
		t.Fatalf("emit %s: %d %s", body, code, resp)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testLogWriter passes logs to the test's output until stop. memberlist's
// Shutdown does not wait for its gossip goroutine, which may log a line
// after node.Close returned; writing that to a finished test would panic.
type testLogWriter struct {
	mu      sync.Mutex
	w       io.Writer
	stopped bool
}

func (l *testLogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return len(p), nil
	}
	return l.w.Write(p)
}

func (l *testLogWriter) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
