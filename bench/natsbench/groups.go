package main

import (
	"cmp"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/google/pprof/profile"
)

// Where a phase's CPU goes: each sample of the profile is put in one group
// by its stack, in this order of precedence:
//
//  1. The GC (anywhere under its workers, assists, write barriers), then
//     allocation (mallocgc and its entry points: newobject, growslice, ...).
//  2. Syscalls, by what called them: write (internal/poll's FD.Write),
//     read (FD.Read), other.
//  3. Lock contention: sync.Mutex's slow paths and the semaphores under them.
//  4. The component of the innermost frame of this project, NATS or the
//     benchmark (runtime, standard library and sync frames are passed over
//     upwards: a memmove or time.Now counts for whoever called it).
//  5. Scheduling (a stack with none of the above: park, findRunnable,
//     futex wake-ups, netpoll).
//
// Components: relay's link reader, writer and Send; mesh's router, emit and
// dispatch (by file); the wire codec (Args decoding under the dispatcher
// apart: On handlers' cost); dedup; internal/plumtree; store and slab;
// nats-server; the nats client; the benchmark's receiver bookkeeping.

const verbosePkg = "github.com/verbosemesh/verbose/"

// profileRep is a profile's time by group.
type profileRep struct {
	System         string      `json:"system"`
	Nodes          int         `json:"nodes"`
	TotalSeconds   float64     `json:"total_s"`
	CPUPerDelivery float64     `json:"cpu_ns_per_delivery"`
	Groups         []groupTime `json:"groups"`
}

type groupTime struct {
	Group   string   `json:"group"`
	Seconds float64  `json:"seconds"`
	Share   float64  `json:"share"`
	Top     []string `json:"top"` // the group's heaviest leaf functions
}

func groupProfile(r io.Reader) (*profileRep, error) {
	p, err := profile.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("natsbench: cpuprofile: %w", err)
	}
	vi := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			vi = i
		}
	}
	if vi < 0 {
		return nil, fmt.Errorf("natsbench: cpuprofile: no cpu sample type")
	}
	type acc struct {
		ns   int64
		leaf map[string]int64
	}
	groups := map[string]*acc{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		var frames []frame
		for _, loc := range s.Location {
			for _, l := range loc.Line { // innermost first, inlined frames included
				if l.Function != nil {
					frames = append(frames, frame{fn: l.Function.Name, file: l.Function.Filename})
				}
			}
		}
		g := classify(frames)
		a := groups[g]
		if a == nil {
			a = &acc{leaf: map[string]int64{}}
			groups[g] = a
		}
		a.ns += v
		if len(frames) > 0 {
			a.leaf[frames[0].fn] += v
		}
		total += v
	}
	rep := &profileRep{TotalSeconds: float64(total) / 1e9}
	for name, a := range groups {
		gt := groupTime{Group: name, Seconds: float64(a.ns) / 1e9}
		if total > 0 {
			gt.Share = float64(a.ns) / float64(total)
		}
		type fv struct {
			fn string
			ns int64
		}
		var leaves []fv
		for fn, ns := range a.leaf {
			leaves = append(leaves, fv{fn, ns})
		}
		slices.SortFunc(leaves, func(x, y fv) int { return cmp.Compare(y.ns, x.ns) })
		for _, l := range leaves[:min(3, len(leaves))] {
			gt.Top = append(gt.Top, fmt.Sprintf("%s %.0f%%", shortFn(l.fn), 100*float64(l.ns)/float64(a.ns)))
		}
		rep.Groups = append(rep.Groups, gt)
	}
	slices.SortFunc(rep.Groups, func(x, y groupTime) int { return cmp.Compare(y.Seconds, x.Seconds) })
	return rep, nil
}

type frame struct{ fn, file string }

func anyFrame(fs []frame, match func(string) bool) bool {
	return slices.ContainsFunc(fs, func(f frame) bool { return match(f.fn) })
}

func hasPrefix(prefixes ...string) func(string) bool {
	return func(fn string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(fn, p) {
				return true
			}
		}
		return false
	}
}

var (
	isGCWork = hasPrefix("runtime.gcBgMarkWorker", "runtime.gcDrain", "runtime.bgsweep", "runtime.bgscavenge",
		"runtime.gcAssistAlloc", "runtime.gcStart", "runtime.gcMarkDone", "runtime.gcMarkTermination",
		"runtime.markroot", "runtime.scanobject", "runtime.gcWriteBarrier", "gcWriteBarrier", "runtime.wbBufFlush", "runtime.bulkBarrierPreWrite")
	isAlloc = hasPrefix("runtime.mallocgc", "runtime.newobject", "runtime.growslice", "runtime.makeslice", "runtime.newarray",
		"runtime.concatstring", "runtime.slicebytetostring", "runtime.rawstring", "runtime.convT", "runtime.mapassign")
	isSyscall = hasPrefix("syscall.Syscall", "syscall.RawSyscall", "syscall.syscall", "syscall.rawsyscall",
		"internal/runtime/syscall", "runtime/internal/syscall")
	isPollWrite = hasPrefix("internal/poll.(*FD).Write")
	isPollRead  = hasPrefix("internal/poll.(*FD).Read")
	isLock      = hasPrefix("sync.(*Mutex).lockSlow", "sync.(*Mutex).unlockSlow", "sync.(*RWMutex).rUnlockSlow",
		"internal/sync.(*Mutex).lockSlow", "internal/sync.(*Mutex).unlockSlow", "runtime.semacquire", "runtime.semrelease")
	isWire = hasPrefix(verbosePkg+"mesh/internal/wire.", verbosePkg+"internal/msgp.", "github.com/hashicorp/go-msgpack/")
	// passed over upwards: their cost counts for their caller
	isNeutral = hasPrefix("runtime.", "sync.", "sync/atomic.", "internal/", "bufio.", "io.", "net.", "encoding/binary.",
		"bytes.", "time.", "slices.", "maps.", "math", "context.", "strings.", "strconv.", "unicode", "reflect.",
		"syscall.", "os.", "errors.", "fmt.", "cmp.", "sort.", "hash", "crypto", "container/", "iter.", "unique.", "weak.")
)

// classify names the group of one sample's frames, innermost first.
func classify(fs []frame) string {
	switch {
	case anyFrame(fs, isGCWork):
		return "GC: mark, sweep, assists"
	case anyFrame(fs, isAlloc):
		return "allocation (mallocgc)"
	case anyFrame(fs, isSyscall) && anyFrame(fs, isPollWrite):
		return "syscall write"
	case anyFrame(fs, isSyscall) && anyFrame(fs, isPollRead):
		return "syscall read"
	case anyFrame(fs, isSyscall):
		return "syscall other"
	case anyFrame(fs, isLock):
		return "lock contention"
	}
	for i, f := range fs {
		if isNeutral(f.fn) {
			continue
		}
		if c := component(f, fs[i:]); c != "" {
			return c
		}
	}
	return "scheduler and runtime"
}

// component is the group of f, a frame of this project, NATS or the
// benchmark; outer are f and the frames that called it.
func component(f frame, outer []frame) string {
	fn := f.fn
	under := func(prefix string) bool { return anyFrame(outer, hasPrefix(verbosePkg+prefix)) }
	switch {
	case strings.HasPrefix(fn, "github.com/nats-io/nats-server/"):
		return "nats-server"
	case strings.HasPrefix(fn, "github.com/nats-io/"):
		return "nats client"
	case isWire(fn) && under("mesh.(*dispatcher)"):
		return "dispatch: Args decode for On"
	case isWire(fn):
		return "wire: parse and encode"
	case strings.HasPrefix(fn, "main."):
		return "benchmark receiver bookkeeping"
	case !strings.HasPrefix(fn, verbosePkg):
		return "other: " + shortFn(fn)
	}
	rest := strings.TrimPrefix(fn, verbosePkg)
	switch {
	case strings.HasPrefix(rest, "relay."):
		switch {
		case under("relay.(*Link).write"):
			return "relay: link writer (framing)"
		case under("relay.(*Link).read"):
			return "relay: link reader (framing, acks)"
		}
		return "relay: Send (buffer append)"
	case strings.HasPrefix(rest, "dedup."):
		return "dedup: order"
	case strings.HasPrefix(rest, "mesh/internal/plumtree."):
		return "tree (plumtree)"
	case strings.HasPrefix(rest, "mesh/internal/store."), strings.HasPrefix(rest, "mesh/internal/slab."):
		return "store and slab (copies kept for GRAFTs)"
	case strings.HasPrefix(rest, "mesh."):
		switch path.Base(f.file) {
		case "router.go", "inbound.go", "receive.go", "clock.go":
			return "mesh: router"
		case "emit.go":
			return "mesh: emit"
		case "dispatch.go", "handlers.go", "scan.go", "event.go", "peerevents.go":
			return "mesh: dispatch and handler"
		}
		return "mesh: other (" + path.Base(f.file) + ")"
	}
	return "verbose: other (" + strings.SplitN(rest, ".", 2)[0] + ")"
}

// shortFn drops a function name's import path.
func shortFn(fn string) string {
	fn = strings.ReplaceAll(fn, "%2e", ".") // a profile's escaped dot in an import path
	if i := strings.LastIndex(fn, "/"); i >= 0 {
		return fn[i+1:]
	}
	return fn
}

func (p *profileRep) write(w io.Writer) {
	fmt.Fprintf(w, "\nCPU profile of %s", p.System)
	if p.Nodes > 0 {
		fmt.Fprintf(w, " at %d nodes", p.Nodes)
	}
	fmt.Fprintf(w, ": %.2f s of samples", p.TotalSeconds)
	if p.CPUPerDelivery > 0 {
		fmt.Fprintf(w, ", %.0f ns of CPU per delivery", p.CPUPerDelivery)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	per := p.CPUPerDelivery > 0
	if per {
		fmt.Fprintln(tw, "group\tshare\tns/delivery\theaviest leaf functions")
	} else {
		fmt.Fprintln(tw, "group\tshare\theaviest leaf functions")
	}
	for _, g := range p.Groups {
		if per {
			fmt.Fprintf(tw, "%s\t%4.1f%%\t%s\t%s\n", g.Group, 100*g.Share, fmtF(g.Share*p.CPUPerDelivery, 0), strings.Join(g.Top, ", "))
		} else {
			fmt.Fprintf(tw, "%s\t%4.1f%%\t%s\n", g.Group, 100*g.Share, strings.Join(g.Top, ", "))
		}
	}
	tw.Flush()
}
