package main

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseOptionsNamesTheBadFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--nodes", "1"}, "--nodes"},
		{[]string{"--nodes", "5,x"}, "--nodes"},
		{[]string{"--size", "8"}, "--size"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--runs", "0"}, "--runs"},
		{[]string{"--systems", "kafka"}, "--systems"},
		{[]string{"--handler", "maybe"}, "--handler"},
		{[]string{"--profile", "kafka"}, "--profile"},
		{[]string{"--systems", "tcp", "--cpuprofile", "x"}, "--profile"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := parseOptions(c.args, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseOptions(%q) = %v, want a usage error naming %s", c.args, err, c.want)
		}
	}
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Nodes) != 2 || o.Nodes[0] != 5 || o.Nodes[1] != 20 || o.Size != 128 || o.Runs != 3 || len(o.Systems) != 3 {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestReceiverCountsDistinctDupsAndSamples(t *testing.T) {
	r := &receiver{}
	b := make([]byte, 32)
	for _, idx := range []int64{0, 1, 1024, 1, 0} {
		message(b, idx)
		r.recordBytes(b)
	}
	r.recordBytes(b[:8])
	if d, dup, bad := r.distinct.Load(), r.dups.Load(), r.malformed.Load(); d != 3 || dup != 2 || bad != 1 {
		t.Fatalf("distinct %d dups %d malformed %d, want 3 2 1", d, dup, bad)
	}
	// 0 and 1024 are multiples of 64: stamped, one sample each.
	if n := len(r.latencies()); n != 2 {
		t.Fatalf("%d latency samples, want 2", n)
	}
	last, complete := drain([]*receiver{r}, 3, time.Second, time.Second)
	if !complete || last.IsZero() {
		t.Fatalf("drain of a complete receiver: complete=%v", complete)
	}
	if _, complete := drain([]*receiver{r}, 4, 50*time.Millisecond, time.Second); complete {
		t.Fatal("drain says complete with a message missing")
	}
}

func TestClassifyGroupsByStack(t *testing.T) {
	st := func(fns ...string) []frame {
		var fs []frame
		for _, f := range fns {
			fn, file, _ := strings.Cut(f, "@")
			fs = append(fs, frame{fn: fn, file: file})
		}
		return fs
	}
	const v = verbosePkg
	for _, c := range []struct {
		stack []frame
		want  string
	}{
		{st("internal/runtime/syscall/linux.Syscall6", "syscall.write", "internal/poll.(*FD).Write", "net.(*conn).Write", v+"relay.(*Link).write"), "syscall write"},
		{st("internal/runtime/syscall/linux.Syscall6", "internal/poll.(*FD).Read", v+"relay.(*Link).read"), "syscall read"},
		{st("runtime.memmove", "runtime.mallocgc", v+"mesh/internal/wire.DecodeArgs", v+"mesh.(*dispatcher).dispatch"), "allocation (mallocgc)"},
		{st("runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"), "GC: mark, sweep, assists"},
		{st("runtime.memmove", v+"mesh/internal/wire.DecodeArgs", v+"mesh.(*dispatcher).dispatch@/x/mesh/dispatch.go"), "dispatch: Args decode for On"},
		{st(v+"internal/msgp.(*Reader).Byte", v+"mesh/internal/wire.Parse", v+"mesh.(*router).receiveEvent@/x/mesh/router.go"), "wire: parse and encode"},
		{st("runtime.memequal", v+"dedup.(*Orderer[go.shape.*uint8]).Offer", v+"mesh.(*router).receiveEvent"), "dedup: order"},
		{st("time.runtimeNow", v+"mesh.(*router).receiveEvent@/x/mesh/router.go"), "mesh: router"},
		{st(v+"relay.appendData", v+"relay.(*machine).AppendPending", v+"relay.(*Link).write"), "relay: link writer (framing)"},
		{st(v+"relay.(*Link).Send", v+"mesh.(*router).release"), "relay: Send (buffer append)"},
		{st("runtime.procyield", "sync.(*Mutex).lockSlow", v+"mesh.(*router).release"), "lock contention"},
		{st(v + "mesh/internal/plumtree.(*Machine).advanced"), "tree (plumtree)"},
		{st("github.com/nats-io/nats-server/v2/server.(*client).deliverMsg"), "nats-server"},
		{st("github.com/nats-io/nats.go.(*Conn).processMsg"), "nats client"},
		{st("main.(*receiver).record"), "benchmark receiver bookkeeping"},
		{st("runtime.futex", "runtime.findRunnable", "runtime.schedule"), "scheduler and runtime"},
	} {
		if got := classify(c.stack); got != c.want {
			t.Errorf("classify(%v) = %q, want %q", c.stack, got, c.want)
		}
	}
}

// A short run of every system, profiled: each delivers everything (NATS
// may cut a slow consumer only under a long blast), and the profile's
// groups cover all its samples.
func TestRunAllSystemsShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts clusters and a nats-server")
	}
	prof := filepath.Join(t.TempDir(), "cpu.pprof")
	o, err := parseOptions([]string{"--nodes", "3", "--runs", "1", "--duration", "200ms", "--cpuprofile", prof}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := runJSON(t, o, &out); err != nil {
		t.Fatal(err)
	}
	rep := decodeReport(t, out.Bytes())
	if len(rep.Sizes) != 1 || len(rep.Sizes[0].Runs) != 1 {
		t.Fatalf("sizes %+v", rep.Sizes)
	}
	rp := rep.Sizes[0].Runs[0]
	if len(rp.TCPRuns) != 2 {
		t.Errorf("raw TCP ran %d times, want 2 (before and after)", len(rp.TCPRuns))
	}
	seen := map[string]bool{}
	for _, r := range rp.Results {
		seen[r.Key+" "+r.System] = true
		if r.Sent == 0 || r.Receivers != 2 || r.EvPerSec <= 0 || r.CPUPerDelivery <= 0 {
			t.Errorf("%s: %+v", r.System, r)
		}
		if r.Loss != 0 || r.Dups != 0 {
			t.Errorf("%s: loss %d dups %d (%s)", r.System, r.Loss, r.Dups, r.Note)
		}
		if r.Latency.Samples == 0 || r.Latency.P99us < r.Latency.P50us {
			t.Errorf("%s: latency %+v", r.System, r.Latency)
		}
		if r.OtherCores < 0 || r.OtherCores > float64(rep.Machine.CPUs) {
			t.Errorf("%s: others' CPU %v cores", r.System, r.OtherCores)
		}
		if r.System != "raw TCP" && (r.Ratio <= 0 || r.Ratio > 2) {
			t.Errorf("%s: ratio %v", r.System, r.Ratio)
		}
	}
	for _, s := range []string{"tcp raw TCP", "verbose verbose (on)", "nats NATS core"} {
		if !seen[s] {
			t.Errorf("no result for %s", s)
		}
	}
	if rep.Profile == nil || len(rep.Profile.Groups) == 0 {
		t.Fatalf("no profile groups: %+v", rep.Profile)
	}
	if rep.Profile.System != "verbose" || rep.Profile.CPUPerDelivery <= 0 {
		t.Errorf("profile of %q at %v ns per delivery, want verbose's", rep.Profile.System, rep.Profile.CPUPerDelivery)
	}
	var share float64
	for _, g := range rep.Profile.Groups {
		share += g.Share
	}
	if math.Abs(share-1) > 1e-9 {
		t.Errorf("group shares sum to %v", share)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("cpuprofile file: %v", err)
	}
	// --groups reads it back.
	var g bytes.Buffer
	if err := run(options{Groups: prof}, &g, io.Discard); err != nil || !strings.Contains(g.String(), "share") {
		t.Errorf("--groups: %v\n%s", err, g.String())
	}
}
