package uitest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var screenshot = flag.String("screenshot", "", "write a PNG of the cluster page on 5 agents to this `file` (the README's docs/ui.png)")

// browsers are the names Chromium goes by; CHROME overrides them.
var browsers = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"}

func findBrowser(t *testing.T) string {
	if p := os.Getenv("CHROME"); p != "" {
		return p
	}
	for _, name := range browsers {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skipf("no Chromium found (looked for %s in PATH, and $CHROME): the browser test needs one; `apt-get install chromium` as root, or run `make ui-test`, which installs it where it can", strings.Join(browsers, ", "))
	return ""
}

// TestClusterPage starts 5 agents on loopback and drives the cluster page
// of two of them in Chromium: the page shows every member and every link;
// the broadcast tree of an origin; an event emitted from one page's form
// appears in the other's tail; a killed agent's links turn "down" within
// seconds and the agent itself failed; and no page logs an error.
func TestClusterPage(t *testing.T) {
	browser := findBrowser(t)
	bin := buildMeshnode(t)
	agents := make([]*agentProc, 5)
	agents[0] = startAgent(t, bin, "node-1")
	for i := 1; i < len(agents); i++ {
		agents[i] = startAgent(t, bin, fmt.Sprintf("node-%d", i+1), "--join", agents[0].gossip)
	}
	for _, a := range agents {
		waitReady(t, a, 30*time.Second)
	}

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1280, 860))...)
	defer cancelAlloc()
	page1, console1 := openPage(t, alloc, agents[0])
	page3, console3 := openPage(t, page1, agents[2]) // a second tab of the same browser

	// Every member alive, every link of the full mesh up, on both pages.
	const allUp = `document.querySelectorAll('#nodes-g .node[data-state="alive"][data-stale="false"]').length === 5 &&
		document.querySelectorAll('#links line.link[data-state="ok"]').length === 10 &&
		document.querySelectorAll('#links line.link').length === 10`
	start := time.Now()
	poll(t, page1, "node-1's page: 5 members alive and 10 links up", allUp, 20*time.Second)
	poll(t, page3, "node-3's page: 5 members alive and 10 links up", allUp, 20*time.Second)
	t.Logf("FIGURES: the pages showed 5 members and 10 links %v after they opened", time.Since(start).Round(100*time.Millisecond))

	// An event emitted from node-1's form reaches node-3's tail.
	do(t, page1, "emit from the form",
		chromedp.SetValue("#emit-name", "ui.hello"),
		chromedp.SetValue("#emit-args", `"from the page" 42`),
		chromedp.Click(`#emit-form button[type="submit"]`))
	poll(t, page1, "the form's emit accepted", `document.querySelector('#emit-status').dataset.ok === "true"`, 10*time.Second)
	poll(t, page3, "ui.hello in node-3's tail",
		`[...document.querySelectorAll('#tail li[data-name="ui.hello"][data-origin="node-1"]')].some(li => li.textContent.includes('["from the page",42]'))`,
		10*time.Second)
	// node-1's own tail shows it too, as emitted here; the filter hides others.
	poll(t, page1, "ui.hello in node-1's tail, local", `!!document.querySelector('#tail li.local[data-name="ui.hello"]')`, 10*time.Second)
	for i := range 20 {
		emitHTTP(t, agents[1], "order.created", fmt.Sprintf(`["A-%d", %d.5]`, 17+i, 90+i))
	}
	poll(t, page3, "node-2's events in node-3's tail", `document.querySelectorAll('#tail li[data-name="order.created"]').length === 20`, 10*time.Second)
	do(t, page3, "filter the tail", chromedp.SendKeys("#filter", "ui."))
	poll(t, page3, "the filter keeps ui.hello only",
		`[...document.querySelectorAll('#tail li')].filter(li => !li.hidden).every(li => li.dataset.name === "ui.hello")`, 5*time.Second)

	// node-3's broadcast tree: in a full mesh, its own star.
	do(t, page1, "choose node-3's tree", chromedp.Evaluate[chromedp.Void](
		`(() => { const s = document.querySelector('#origin'); s.value = "node-3"; s.dispatchEvent(new Event('change')); })()`))
	poll(t, page1, "node-3's tree: eager to the 4 others",
		`document.querySelectorAll('#tree line.eager-edge[data-from="node-3"]').length === 4 &&
		 document.querySelectorAll('#tree line.eager-edge').length === 4`, 10*time.Second)

	// Kill node-5: its 4 links turn down within seconds, the other 6 stay up;
	// then memberlist finds it failed.
	killed := time.Now()
	if err := agents[4].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	poll(t, page1, "node-5's 4 links down, the 6 others up",
		`document.querySelectorAll('#links line.link[data-state="down"]').length === 4 &&
		 [...document.querySelectorAll('#links line.link[data-state="down"]')].every(l => l.dataset.a === "node-5" || l.dataset.b === "node-5") &&
		 document.querySelectorAll('#links line.link[data-state="ok"]').length === 6`, 10*time.Second)
	t.Logf("FIGURES: node-5's links were shown down %v after its SIGKILL", time.Since(killed).Round(100*time.Millisecond))
	poll(t, page1, "node-5 shown failed or suspect",
		`["suspect", "dead"].includes(document.querySelector('#nodes-g .node[data-node="node-5"]').dataset.state)`, 20*time.Second)
	t.Logf("FIGURES: node-5 was shown %s %v after its SIGKILL",
		evaluate[string](t, page1, `document.querySelector('#nodes-g .node[data-node="node-5"]').dataset.state`), time.Since(killed).Round(100*time.Millisecond))

	if *screenshot != "" {
		do(t, page1, "choose node-1's tree", chromedp.Evaluate[chromedp.Void](
			`(() => { const s = document.querySelector('#origin'); s.value = "node-1"; s.dispatchEvent(new Event('change')); window.scrollTo(0, 0); })()`))
		poll(t, page1, "node-1's tree", `document.querySelectorAll('#tree line.eager-edge[data-from="node-1"]').length >= 3`, 10*time.Second)
		png, err := chromedp.Run(page1, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", *screenshot, len(png))
	}

	for name, c := range map[string]*consoleLog{"node-1": console1, "node-3": console3} {
		if msgs := c.errors(); len(msgs) > 0 {
			t.Errorf("%s's page logged errors:\n%s", name, strings.Join(msgs, "\n"))
		}
	}
}

// consoleLog collects the errors a page writes to its console: calls of
// console.error, uncaught exceptions, and the browser's error entries (a
// failed request).
type consoleLog struct {
	mu   sync.Mutex
	errs []string
	done chan struct{}
}

func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// openPage opens agent a's /ui in a new tab of parent's browser.
func openPage(t *testing.T, parent context.Context, a *agentProc) (context.Context, *consoleLog) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	c := &consoleLog{done: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		<-c.done
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser and the tab
		t.Fatalf("start Chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		defer close(c.done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				c.mu.Lock()
				c.errs = append(c.errs, m.String())
				c.mu.Unlock()
			}
		}
	}()
	do(t, ctx, "open "+a.id+"'s page", chromedp.Navigate("http://"+a.http+"/ui"))
	return ctx, c
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func evaluate[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits until the page's expression is true, failing the test with
// what was awaited (and the page's summary) at the deadline.
func poll(t *testing.T, ctx context.Context, what, expr string, d time.Duration) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := chromedp.Run(tctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#summary').textContent + " | links: " +
			[...document.querySelectorAll('#links line.link')].map(l => l.dataset.a + "-" + l.dataset.b + ":" + l.dataset.state).join(" ") +
			" | nodes: " + [...document.querySelectorAll('#nodes-g .node')].map(n => n.dataset.node + ":" + n.dataset.state + (n.dataset.stale === "true" ? "(stale)" : "")).join(" ")`))
		t.Fatalf("timed out after %v waiting for %s: %v\npage: %s", d, what, err, state)
	}
}

// buildMeshnode builds the agent from the repository this module sits in.
func buildMeshnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshnode")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meshnode")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/meshnode: %v\n%s", err, out)
	}
	return bin
}

var startedRE = regexp.MustCompile(`agent started: node=(\S+) gossip=(\S*) relay=(\S*) http=(\S*)`)

// agentProc is a meshnode agent process on loopback.
type agentProc struct {
	cmd              *exec.Cmd
	id, gossip, http string
	mu               sync.Mutex
	log              bytes.Buffer
	logDone          chan struct{}
}

func startAgent(t *testing.T, bin, id string, args ...string) *agentProc {
	t.Helper()
	args = append([]string{"agent", "--node-id", id, "--gossip", "127.0.0.1:0", "--relay", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--timeout", "5s"}, args...)
	p := &agentProc{cmd: exec.Command(bin, args...), id: id, logDone: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	started := make(chan []string, 1)
	go func() {
		defer close(p.logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			if m := startedRE.FindStringSubmatch(sc.Text()); m != nil {
				started <- m
			}
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-exited
		}
		<-p.logDone
		if t.Failed() {
			p.mu.Lock()
			t.Logf("%s's log:\n%s", id, p.log.String())
			p.mu.Unlock()
		}
	})
	select {
	case m := <-started:
		p.gossip, p.http = m[2], m[4]
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start within 20s", id)
	}
	return p
}

var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func waitReady(t *testing.T, a *agentProc, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := httpClient.Get("http://" + a.http + "/v1/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within %v (last: %v)", a.id, d, errors.Join(err))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func emitHTTP(t *testing.T, a *agentProc, name, args string) {
	t.Helper()
	resp, err := httpClient.Post("http://"+a.http+"/v1/emit", "application/json",
		strings.NewReader(fmt.Sprintf(`{"event":%q,"args":%s}`, name, args)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("emit through %s: %s", a.id, resp.Status)
	}
}
