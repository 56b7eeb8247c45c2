package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// processAlive reports whether pid runs (a zombie, dead but not yet reaped
// by whoever inherited it, does not count).
func processAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // no /proc: trust kill
	}
	// pid (comm) STATE ...: comm may hold spaces, so look after the last ')'.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds meshnode and runs agent processes")
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := filepath.Abs("../../testcluster/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := append(os.Environ(), "CLUSTER_DIR="+dir, "CLUSTER_START_TIMEOUT=30", "CLUSTER_STOP_TIMEOUT=10")
	sh := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bash, append([]string{script}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	pids := func() []int {
		var out []int
		files, _ := filepath.Glob(filepath.Join(dir, "node*", "pid"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				out = append(out, pid)
			}
		}
		return out
	}
	var started []int
	t.Cleanup(func() { // whatever happened, nothing outlives the test
		for _, pid := range append(started, pids()...) {
			if processAlive(pid) {
				t.Errorf("agent pid %d still running at cleanup; killing it", pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	out, err := sh("up", "3")
	started = pids()
	if err != nil {
		t.Fatalf("up 3: %v\n%s", err, out)
	}
	if len(started) != 3 {
		t.Fatalf("up 3 left %d pid files:\n%s", len(started), out)
	}
	for i := 1; i <= 3; i++ {
		if !strings.Contains(out, "node"+strconv.Itoa(i)+" pid=") || !strings.Contains(out, "http=127.0.0.1:") {
			t.Errorf("up does not print node%d's addresses:\n%s", i, out)
		}
	}
	if out, err := sh("up", "2"); err == nil || !strings.Contains(out, "already running") {
		t.Errorf("a second up over a running cluster: %v\n%s", err, out)
	}

	out, err = sh("status")
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if strings.Count(out, " yes ") != 3 || strings.Count(out, "2/2 connected") != 3 {
		t.Errorf("status does not show 3 alive, fully linked nodes:\n%s", out)
	}

	// tail node 2, emit through node 1 until tail has it.
	tail := exec.CommandContext(ctx, bash, script, "tail", "-n", "2", "scripted")
	tail.Env = env
	tailOut := &syncBuffer{}
	tail.Stdout, tail.Stderr = tailOut, tailOut
	if err := tail.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tail.Process.Kill(); _ = tail.Wait() }()
	waitFor(t, 15*time.Second, "node 1's event on node 2's tail", func() bool {
		if out, err := sh("emit", "-n", "1", "scripted", "7"); err != nil {
			t.Fatalf("emit: %v\n%s", err, out)
		}
		return strings.Contains(tailOut.String(), `{"event":"scripted","args":[7],"origin":"node1"`)
	})

	out, err = sh("down")
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	for _, pid := range started {
		if processAlive(pid) {
			t.Errorf("pid %d still running after down", pid)
		}
	}
	if left := pids(); len(left) != 0 {
		t.Errorf("down left pid files for %v", left)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "node*", "log"))
	for _, l := range logs {
		if b, _ := os.ReadFile(l); !strings.Contains(string(b), "meshnode: stopped") {
			t.Errorf("%s: no orderly stop logged", l)
		}
	}
}
