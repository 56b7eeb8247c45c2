package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildMeshnode builds the binary into a temporary directory.
func buildMeshnode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "meshnode")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var startedRE = regexp.MustCompile(`agent started: node=(\S+) gossip=(\S*) relay=(\S*) http=(\S*)`)

// agentProc is a meshnode agent process.
type agentProc struct {
	cmd                     *exec.Cmd
	log                     *syncBuffer
	logDone                 chan struct{}
	id, gossip, relay, http string
}

// startAgentProc starts `meshnode agent` with args and waits for its
// "agent started" line to learn its bound addresses.
func startAgentProc(t *testing.T, bin, id string, args ...string) *agentProc {
	t.Helper()
	args = append([]string{"agent", "--node-id", id, "--gossip", "127.0.0.1:0", "--relay", "127.0.0.1:0",
		"--http", "127.0.0.1:0", "--timeout", "5s"}, args...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", id, err)
	}
	p := &agentProc{cmd: cmd, log: &syncBuffer{}, logDone: make(chan struct{}), id: id}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", id, p.log.String())
		}
	})
	started := make(chan []string, 1)
	go func() {
		defer close(p.logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if m := startedRE.FindStringSubmatch(line); m != nil {
				select {
				case started <- m:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case m := <-started:
		p.gossip, p.relay, p.http = m[2], m[3], m[4]
	case <-p.logDone:
		_ = cmd.Wait()
		t.Fatalf("%s exited before starting:\n%s", id, p.log.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start within 20s:\n%s", id, p.log.String())
	}
	return p
}

// stop sends SIGTERM and returns the exit code, failing if it takes too long.
func (p *agentProc) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.id, err)
	}
	done := make(chan error, 1)
	go func() { <-p.logDone; done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("%s: %v", p.id, err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop within 20s of SIGTERM", p.id)
		return -1
	}
}

func TestAgentsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs agent processes")
	}
	bin := buildMeshnode(t)
	n1 := startAgentProc(t, bin, "e2e-1")
	n2 := startAgentProc(t, bin, "e2e-2", "--join", n1.gossip)
	n3 := startAgentProc(t, bin, "e2e-3", "--join", n1.gossip)
	nodes := []*agentProc{n1, n2, n3}

	waitFor(t, 20*time.Second, "3 alive members seen by node 1 and a full mesh of links", func() bool {
		var ms []memberJSON
		getJSON(t, "http://"+n1.http+"/v1/members", &ms)
		alive := 0
		for _, m := range ms {
			if m.State == "alive" {
				alive++
			}
		}
		if alive != 3 {
			return false
		}
		for _, n := range nodes {
			var h healthJSON
			getJSON(t, "http://"+n.http+"/v1/health", &h)
			if h.Connected != 2 {
				return false
			}
		}
		return true
	})

	// tail on node 3, emit on node 1 (again, until tail has subscribed).
	tail := exec.Command(bin, "tail", "--http", n3.http, "e2e")
	tailOut := &syncBuffer{}
	tail.Stdout, tail.Stderr = tailOut, tailOut
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if tail.ProcessState == nil {
			_ = tail.Process.Kill()
			_ = tail.Wait()
		}
	})
	want := `{"event":"e2e","args":[42,"hello"],"origin":"e2e-1"`
	waitFor(t, 15*time.Second, "node 1's event on node 3's tail", func() bool {
		out, err := exec.Command(bin, "emit", "--http", n1.http, "e2e", "42", "hello").CombinedOutput()
		if err != nil {
			t.Fatalf("emit: %v\n%s", err, out)
		}
		return strings.Contains(tailOut.String(), want)
	})

	code, body := httpDo(t, http.MethodGet, "http://"+n1.http+"/metrics", "", nil)
	if code != 200 || !strings.Contains(string(body), "verbose_events_emitted_total ") ||
		!strings.Contains(string(body), "\nverbose_memberlist_") || !strings.Contains(string(body), "verbose_peers 2\n") {
		t.Errorf("/metrics: %d\n%s", code, body)
	}

	for _, n := range []*agentProc{n2, n3, n1} {
		if code := n.stop(t); code != 0 {
			t.Errorf("%s exited %d after SIGTERM", n.id, code)
		}
		if !strings.Contains(n.log.String(), "stopped") {
			t.Errorf("%s did not log its orderly stop", n.id)
		}
	}
	// node 3 is gone: tail's stream ends and tail exits 0.
	tailDone := make(chan error, 1)
	go func() { tailDone <- tail.Wait() }()
	select {
	case err := <-tailDone:
		if err != nil {
			t.Errorf("tail: %v\n%s", err, tailOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("tail still running 10s after its agent stopped")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Error(err)
	}
}
