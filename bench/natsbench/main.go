package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/benchkit"
)

func main() {
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, errUsage) {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(2)
	}
	if err := run(o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

var errUsage = errors.New("natsbench: usage")

var allSystems = []string{"tcp", "verbose", "nats"}

type options struct {
	Nodes      []int
	Size       int
	Duration   time.Duration
	Runs       int
	Systems    map[string]bool
	Handler    string // on or raw
	CPUProfile string
	Profile    string // the system profiled
	JSON       bool
	LogLevel   string
	Groups     string // only group this profile's samples and print them
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("natsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.String("nodes", "5,20", "cluster sizes, comma list: one publisher and N-1 receivers each")
	fs.IntVar(&o.Size, "size", 128, "message bytes (index, send time, padding); at least 16")
	fs.DurationVar(&o.Duration, "duration", 3*time.Second, "publishing time of each phase")
	fs.IntVar(&o.Runs, "runs", 3, "repetitions per cluster size; the summary is the median of each figure")
	systems := fs.String("systems", strings.Join(allSystems, ","), "systems to measure, comma list of "+strings.Join(allSystems, ","))
	fs.StringVar(&o.Handler, "handler", "on", "verbose's receivers: on (On, Event.Args) or raw (OnRaw, Event.Scan)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of one phase (--profile's system, first run of the last --nodes) here, and print its time by group")
	fs.StringVar(&o.Profile, "profile", "verbose", "the system --cpuprofile profiles: tcp, verbose or nats")
	fs.StringVar(&o.Groups, "groups", "", "measure nothing: print the time by group of this CPU profile (one written by --cpuprofile, or any Go CPU profile)")
	fs.BoolVar(&o.JSON, "json", false, "print one JSON document instead of the tables")
	fs.StringVar(&o.LogLevel, "log-level", "error", "verbose nodes' log level")
	if err := fs.Parse(args); err != nil {
		return o, fmt.Errorf("%w: %w", errUsage, err)
	}
	bad := func(format string, args ...any) (options, error) {
		return o, fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	for s := range strings.SplitSeq(*nodes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 || n > 100 {
			return bad("--nodes: %q is not a cluster size from 2 to 100", s)
		}
		o.Nodes = append(o.Nodes, n)
	}
	if len(o.Nodes) == 0 {
		return bad("--nodes: no cluster size")
	}
	o.Systems = map[string]bool{}
	for s := range strings.SplitSeq(*systems, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if !slices.Contains(allSystems, s) {
			return bad("--systems: unknown system %q (have %s)", s, strings.Join(allSystems, ","))
		}
		o.Systems[s] = true
	}
	switch {
	case len(o.Systems) == 0:
		return bad("--systems: no system")
	case o.Size < 16 || o.Size > 512<<10:
		return bad("--size must be 16 to %d, got %d", 512<<10, o.Size)
	case o.Duration <= 0:
		return bad("--duration must be positive, got %v", o.Duration)
	case o.Runs < 1 || o.Runs > 100:
		return bad("--runs must be 1 to 100, got %d", o.Runs)
	case o.Handler != "on" && o.Handler != "raw":
		return bad("--handler must be on or raw, got %q", o.Handler)
	case !slices.Contains(allSystems, o.Profile):
		return bad("--profile must be one of %s, got %q", strings.Join(allSystems, ","), o.Profile)
	case o.CPUProfile != "" && !o.Systems[o.Profile]:
		return bad("--profile: system %q is not in --systems", o.Profile)
	case hclog.LevelFromString(o.LogLevel) == hclog.NoLevel:
		return bad("--log-level: unknown level %q", o.LogLevel)
	}
	return o, nil
}

// report is everything a run measured.
type report struct {
	Machine  machine     `json:"machine"`
	Size     int         `json:"size"`
	Duration string      `json:"duration"`
	Handler  string      `json:"handler"`
	Sizes    []sizeRuns  `json:"sizes"`
	Profile  *profileRep `json:"profile,omitempty"`
}

type machine struct {
	CPUs      int    `json:"cpus"`
	Model     string `json:"model"`
	GoVersion string `json:"go"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// sizeRuns are one cluster size's repetitions and their medians.
type sizeRuns struct {
	Nodes   int          `json:"nodes"`
	Runs    []repetition `json:"runs"`
	Medians []result     `json:"medians"` // per system, each figure's median over the runs
}

// repetition is one pass over the systems, in order, and the load average
// at its start.
type repetition struct {
	Load    string    `json:"loadavg"`
	Results []result  `json:"results"`
	TCPRuns []float64 `json:"tcp_runs,omitempty"` // raw TCP ev/s before and after the others
}

func run(o options, stdout, stderr io.Writer) error {
	if o.Groups != "" {
		f, err := os.Open(o.Groups)
		if err != nil {
			return fmt.Errorf("natsbench: --groups: %w", err)
		}
		defer f.Close()
		g, err := groupProfile(f)
		if err != nil {
			return err
		}
		g.System = o.Groups
		g.write(stdout)
		return nil
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "natsbench", Level: hclog.LevelFromString(o.LogLevel), Output: stderr})
	rep := &report{
		Machine:  machine{CPUs: runtime.NumCPU(), Model: cpuModel(), GoVersion: runtime.Version(), LoadStart: benchkit.LoadAvg()},
		Size:     o.Size,
		Duration: o.Duration.String(),
		Handler:  o.Handler,
	}
	progress := func(format string, args ...any) { fmt.Fprintf(stderr, "natsbench: "+format+"\n", args...) }
	var profBuf *bytes.Buffer
	for si, n := range o.Nodes {
		sr := sizeRuns{Nodes: n}
		for r := range o.Runs {
			rp := repetition{Load: benchkit.LoadAvg()}
			profile := func(system string) io.Writer {
				if o.CPUProfile == "" || system != o.Profile || r != 0 || si != len(o.Nodes)-1 {
					return nil
				}
				profBuf = &bytes.Buffer{}
				return profBuf
			}
			phase := func(system string, f func() (result, error)) error {
				progress("nodes=%d run %d/%d: %s (load %s)", n, r+1, o.Runs, system, benchkit.LoadAvg())
				res, err := f()
				if err != nil {
					return err
				}
				rp.Results = append(rp.Results, res)
				return nil
			}
			var tcp []result
			tcpPhase := func(prof io.Writer) error {
				if !o.Systems["tcp"] {
					return nil
				}
				res, err := runTCP(n-1, o.Size, o.Duration, prof)
				if err != nil {
					return err
				}
				progress("nodes=%d run %d/%d: raw TCP %.0f ev/s per receiver", n, r+1, o.Runs, res.EvPerSec)
				tcp = append(tcp, res)
				rp.TCPRuns = append(rp.TCPRuns, res.EvPerSec)
				return nil
			}
			if err := tcpPhase(profile("tcp")); err != nil {
				return err
			}
			if o.Systems["verbose"] {
				if err := phase("verbose", func() (result, error) {
					return runVerbose(n, o.Size, o.Duration, o.Handler, log, profile("verbose"))
				}); err != nil {
					return err
				}
			}
			if o.Systems["nats"] {
				if err := phase("nats", func() (result, error) {
					return runNATS(n-1, o.Size, o.Duration, profile("nats"))
				}); err != nil {
					return err
				}
			}
			if len(rp.Results) > 0 {
				// Again after the others: the machine's speed drifts, and
				// the ratio is against the faster baseline. Never profiled.
				if err := tcpPhase(nil); err != nil {
					return err
				}
			}
			if len(tcp) > 0 {
				best := tcp[0]
				for _, t := range tcp[1:] {
					if t.EvPerSec > best.EvPerSec {
						best = t
					}
				}
				for i := range rp.Results {
					if best.EvPerSec > 0 {
						rp.Results[i].Ratio = rp.Results[i].EvPerSec / best.EvPerSec
					}
				}
				best.Ratio = 1
				rp.Results = append([]result{best}, rp.Results...)
			}
			sr.Runs = append(sr.Runs, rp)
		}
		sr.Medians = medians(sr.Runs)
		rep.Sizes = append(rep.Sizes, sr)
	}
	rep.Machine.LoadEnd = benchkit.LoadAvg()
	if profBuf != nil {
		if err := os.WriteFile(o.CPUProfile, profBuf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("natsbench: cpuprofile: %w", err)
		}
		g, err := groupProfile(bytes.NewReader(profBuf.Bytes()))
		if err != nil {
			return err
		}
		g.System, g.Nodes = o.Profile, o.Nodes[len(o.Nodes)-1]
		for _, res := range rep.Sizes[len(rep.Sizes)-1].Runs[0].Results {
			if res.Key == o.Profile {
				g.CPUPerDelivery = res.CPUPerDelivery
			}
		}
		rep.Profile = g
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.write(stdout)
	return nil
}

// medians takes, per system, the median of each figure over the runs.
func medians(runs []repetition) []result {
	if len(runs) == 0 {
		return nil
	}
	var out []result
	for i, first := range runs[0].Results {
		var col []result
		for _, rp := range runs {
			if i < len(rp.Results) {
				col = append(col, rp.Results[i])
			}
		}
		med := func(f func(result) float64) float64 {
			v := make([]float64, len(col))
			for j, r := range col {
				v[j] = f(r)
			}
			slices.Sort(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		m := result{Key: first.Key, System: first.System, Receivers: first.Receivers}
		m.EvPerSec = med(func(r result) float64 { return r.EvPerSec })
		m.Ratio = med(func(r result) float64 { return r.Ratio })
		m.Latency.P50us = med(func(r result) float64 { return r.Latency.P50us })
		m.Latency.P99us = med(func(r result) float64 { return r.Latency.P99us })
		m.Latency.MaxUs = med(func(r result) float64 { return r.Latency.MaxUs })
		m.CPUPerDelivery = med(func(r result) float64 { return r.CPUPerDelivery })
		m.OtherCores = med(func(r result) float64 { return r.OtherCores })
		for _, r := range col {
			m.Loss += r.Loss // loss and dups are summed, not medians
			m.Dups += r.Dups
		}
		out = append(out, m)
	}
	return out
}

// na marks a figure not measured.
const na = "-"

func fmtF(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }

func (rep *report) write(w io.Writer) {
	m := rep.Machine
	fmt.Fprintf(w, "natsbench: %d CPUs (%s), %s, %d-byte messages, %s of publishing per phase, verbose handler %s\n",
		m.CPUs, m.Model, m.GoVersion, rep.Size, rep.Duration, rep.Handler)
	fmt.Fprintf(w, "load average at start %s, at end %s\n", m.LoadStart, m.LoadEnd)
	for _, sr := range rep.Sizes {
		fmt.Fprintf(w, "\n%d nodes: 1 publisher, %d receivers\n", sr.Nodes, sr.Nodes-1)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "run\tsystem\tev/s per receiver\t× raw TCP\tp50 ms\tp99 ms\tCPU ns/delivery\tloss\tdups\tothers' CPU (cores)\tload at start\t")
		row := func(run string, r result, load string) {
			ratio, others := na, na
			if r.Ratio > 0 {
				ratio = fmtF(r.Ratio, 3)
			}
			if r.OtherCores >= 0 {
				others = fmtF(r.OtherCores, 2)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", run, r.System, fmtF(r.EvPerSec, 0), ratio,
				fmtF(r.Latency.P50us/1e3, 2), fmtF(r.Latency.P99us/1e3, 2), fmtF(r.CPUPerDelivery, 0), r.Loss, r.Dups, others, load)
		}
		for i, rp := range sr.Runs {
			for _, r := range rp.Results {
				row(strconv.Itoa(i+1), r, rp.Load)
			}
		}
		if len(sr.Runs) > 1 {
			for _, r := range sr.Medians {
				row("median", r, "")
			}
		}
		tw.Flush()
		for i, rp := range sr.Runs {
			if len(rp.TCPRuns) > 1 {
				fmt.Fprintf(w, "  run %d: raw TCP %s ev/s before and after the others; the faster is the baseline\n", i+1, joinF(rp.TCPRuns))
			}
			for _, r := range rp.Results {
				if r.Note != "" {
					fmt.Fprintf(w, "  run %d, %s: %s\n", i+1, r.System, r.Note)
				}
			}
		}
	}
	for _, sr := range rep.Sizes {
		for _, r := range sr.Medians {
			ratio := na
			if r.Ratio > 0 {
				ratio = fmtF(r.Ratio, 3)
			}
			fmt.Fprintf(w, "RESULT nodes=%d system=%q ev_s=%s ratio=%s p50_us=%s p99_us=%s cpu_ns=%s loss=%d dups=%d other_cores=%s runs=%d\n",
				sr.Nodes, r.System, fmtF(r.EvPerSec, 0), ratio, fmtF(r.Latency.P50us, 0), fmtF(r.Latency.P99us, 0),
				fmtF(r.CPUPerDelivery, 0), r.Loss, r.Dups, fmtF(r.OtherCores, 2), len(sr.Runs))
		}
	}
	if rep.Profile != nil {
		rep.Profile.write(w)
	}
}

func joinF(v []float64) string {
	s := make([]string, len(v))
	for i, f := range v {
		s[i] = fmtF(f, 0)
	}
	return strings.Join(s, " and ")
}

// cpuModel is /proc/cpuinfo's first model name.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown model"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown model"
}
