package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verbosemesh/verbose/mesh"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// parseResult reads the RESULT line's key=value fields.
func parseResult(t *testing.T, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "RESULT ") {
		t.Fatalf("last line is not the RESULT line: %q", last)
	}
	f := map[string]string{}
	for _, kv := range strings.Fields(last)[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("RESULT field %q is not key=value", kv)
		}
		f[k] = v
	}
	return f
}

// runArgs runs meshbench with args and returns its report, stdout and
// stderr; a parse or run error fails the test, with stderr.
func runArgs(t *testing.T, args ...string) (rep *report, stdout, stderr string) {
	t.Helper()
	o, err := parseOptions(args, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	rep, err = run(o, &out, &errOut)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errOut.String())
	}
	return rep, out.String(), errOut.String()
}

func TestTinyRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every phase twice, ~15 s under -race")
	}
	for _, network := range []string{"mem", "tcp"} {
		t.Run(network, func(t *testing.T) {
			start := time.Now()
			rep, stdout, stderr := runArgs(t, "--nodes=3", "--network="+network, "--duration=300ms", "--rate=2000", "--converge=3")
			f := parseResult(t, stdout)
			if f["nodes"] != "3" || f["size"] != "128" {
				t.Errorf("RESULT nodes=%s size=%s, want 3 and 128", f["nodes"], f["size"])
			}
			if f["loss"] != "0" || f["dups"] != "0" {
				t.Errorf("RESULT loss=%s dups=%s, want 0 and 0", f["loss"], f["dups"])
			}
			for _, k := range []string{"tcp_ev_s", "mesh_ev_s", "ratio", "p50_us", "p99_us", "tcp_p99_us", "redundancy", "heap_per_node_b"} {
				v, err := strconv.ParseFloat(f[k], 64)
				if err != nil || v <= 0 {
					t.Errorf("RESULT %s=%q, want a positive number", k, f[k])
				}
			}
			// Flooding a full mesh of 3: each receiver gets the event from
			// the origin and once more from the other receiver.
			if r := rep.Blast.Redundancy; r < 1 || r > 2.01 {
				t.Errorf("redundancy %.2f, want within [1, 2] on a full mesh of 3", r)
			}
			if rep.Line == nil || rep.Line.Samples == 0 || rep.Line.Loss != 0 {
				t.Errorf("line phase: %+v", rep.Line)
			}
			if m := rep.Memory; m == nil || m.Buffered < m.Events {
				t.Errorf("memory phase buffered %+v, want at least %d events held for the closed peer", m, 1000)
			}
			if len(rep.Converge) != 1 || rep.Converge[0].Seconds <= 0 {
				t.Errorf("converge: %+v", rep.Converge)
			}
			for _, p := range allPhases {
				if !strings.Contains(stderr, "phase "+p) {
					t.Errorf("no progress line for phase %s on stderr", p)
				}
			}
			t.Logf("%s in %v:\n%s", network, time.Since(start), stdout)
		})
	}
}

func TestJSONAndPhases(t *testing.T) {
	_, out, _ := runArgs(t, "--nodes=2", "--network=mem", "--phases=blast", "--duration=100ms", "--json")
	if !strings.HasPrefix(out, "{") || !strings.Contains(out, `"blast"`) || strings.Contains(out, `"tcp"`) {
		t.Errorf("--json --phases=blast printed:\n%s", out)
	}
	if !strings.Contains(out, `"result": "RESULT nodes=2 size=128 tcp_ev_s=- mesh_ev_s=`) {
		t.Errorf("JSON lacks the RESULT line with unmeasured fields as -:\n%s", out)
	}
}

// --warmup blasts first, unmeasured, and checks its events all the same:
// the measured blast's indexes start again at 0, so the warm-up's would
// show as duplicates if its trackers were not its own.
func TestWarmup(t *testing.T) {
	rep, stdout, _ := runArgs(t, "--nodes=3", "--network=mem", "--phases=blast", "--duration=100ms", "--warmup=100ms", "--json")
	b := rep.Blast
	if b == nil || b.WarmupSeconds < 0.1 || b.Events == 0 || b.Loss != 0 || b.Dups != 0 || b.Reordered != 0 {
		t.Fatalf("blast after a warm-up: %+v", b)
	}
	if !strings.Contains(stdout, `"warmup_s"`) {
		t.Errorf("JSON lacks warmup_s:\n%s", stdout)
	}
}

// Both handler kinds count every event, and the config line says which.
func TestHandlerKinds(t *testing.T) {
	for _, h := range []string{"raw", "args"} {
		rep, stdout, _ := runArgs(t, "--nodes=2", "--network=mem", "--phases=blast", "--duration=100ms", "--handler="+h)
		if !strings.Contains(rep.Config, "handler="+h) {
			t.Errorf("config line %q does not say handler=%s", rep.Config, h)
		}
		if f := parseResult(t, stdout); f["loss"] != "0" || f["dups"] != "0" {
			t.Errorf("--handler=%s: loss=%s dups=%s", h, f["loss"], f["dups"])
		}
	}
}

// A raw tracker counts an event whose args do not Scan as malformed.
func TestTrackerMalformed(t *testing.T) {
	tr := newTracker(false, 0)
	tr.onRaw(mesh.Event{Origin: "o", Seq: 1, Args: []any{int64(0), int64(5)}})
	tr.onRaw(mesh.Event{Origin: "o", Seq: 2, Args: []any{"not an index", int64(5)}})
	tr.onRaw(mesh.Event{Origin: "o", Seq: 3, Args: []any{int64(1)}})
	tr.on(mesh.Event{Origin: "o", Seq: 4, Args: []any{int64(1), int64(5)}})
	tr.on(mesh.Event{Origin: "o", Seq: 5, Args: []any{1.5, int64(5)}})
	if r := tr.result(2); r.Distinct != 2 || r.Malformed != 3 || r.Loss != 0 {
		t.Errorf("result %+v, want 2 distinct, 3 malformed", r)
	}
}

// Reorders are counted per origin, across changes of origin; a repeated
// index is a duplicate.
func TestTrackerReordersAndDups(t *testing.T) {
	tr := newTracker(false, 0)
	ev := func(origin string, seq uint64, idx int64) {
		tr.on(mesh.Event{Origin: origin, Seq: seq, Args: []any{idx, int64(0)}})
	}
	ev("a", 10, 0)
	ev("b", 5, 1)
	ev("a", 11, 2)
	ev("b", 4, 3) // b went back: a reorder, though a came in between
	ev("a", 12, 4)
	ev("a", 12, 4) // the same event again: a duplicate
	if r := tr.result(5); r.Distinct != 5 || r.Reordered != 1 || r.Dups != 1 || r.Loss != 0 {
		t.Errorf("result %+v, want 5 distinct, 1 reordered, 1 dup", r)
	}
}

// The ratio is taken against the faster of the two baselines, whichever
// came first; both are kept for the report.
func TestTCPBaselineKeepsTheFaster(t *testing.T) {
	before := &tcpResult{EvPerSec: 3e6, CPUPerDelivery: 120, Runs: []float64{3e6}}
	after := &tcpResult{EvPerSec: 4e6, CPUPerDelivery: 95, Runs: []float64{4e6}}
	for _, got := range []*tcpResult{before.faster(after), after.faster(before)} {
		if got.EvPerSec != 4e6 || got.CPUPerDelivery != 95 || len(got.Runs) != 2 {
			t.Errorf("kept %+v, want the 4e6 run with both runs listed", got)
		}
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, args := range [][]string{
		{"--nodes=1"}, {"--size=8"}, {"--topology=star"}, {"--network=udp"},
		{"--phases=tcp,bogus"}, {"--tree=maybe"}, {"--converge=1"}, {"--handler=json"},
		{"--duration=0s"}, {"--warmup=-1s"}, {"extra"},
	} {
		if _, err := parseOptions(args, &bytes.Buffer{}); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
}

func TestQuantiles(t *testing.T) {
	var ns []int64
	for i := 1; i <= 1000; i++ {
		ns = append(ns, int64(i)*1000) // 1..1000 µs
	}
	q := quantilesOf(ns)
	if q.P50us != 500 || q.P99us != 990 || q.P999us != 999 || q.MaxUs != 1000 || q.Samples != 1000 {
		t.Errorf("quantiles %+v", q)
	}
}
