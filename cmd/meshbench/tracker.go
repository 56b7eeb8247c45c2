package main

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verbosemesh/verbose/internal/benchkit"
	"github.com/verbosemesh/verbose/mesh"
)

// tracker is one receiver's bookkeeping for a phase: which event indexes
// arrived (a bitmap: indexes of the one emitter are contiguous from 0, so a
// bit per event is exact and compact), duplicates, reorders against the
// origin's Seq, and latency samples.
//
// Its handler runs on the node's single dispatcher goroutine, and costs one
// atomic add per event: what only the handler reads (the bitmap, the
// origins' last seqs) is plain, the counts that result reads from another
// goroutine are atomic (all but distinct are rare), and the latency samples,
// taken at a paced rate only, are under a mutex. A receiver's bookkeeping
// is measurement, not delivery: the raw-TCP readers only count.
type tracker struct {
	distinct  atomic.Int64 // polled by the phase while events flow
	dups      atomic.Int64
	reordered atomic.Int64
	malformed atomic.Int64

	// The handler's own.
	seen    benchkit.Seen     // the indexes that arrived
	lastSeq map[string]uint64 // by origin, but for cur's
	cur     string            // the origin of the previous event (one hash per change of origin, not per event)
	curSeq  uint64
	curSeen bool
	latency bool
	scanIdx int64 // onRaw's Scan destinations
	scanTS  int64

	mu      sync.Mutex
	samples []int64 // ns, when latency is on
}

func newTracker(latency bool, expect int) *tracker {
	t := &tracker{lastSeq: map[string]uint64{}, latency: latency}
	if latency {
		t.samples = make([]int64, 0, expect)
	}
	return t
}

// on is the node's On("*") handler (--handler=args): the index and the
// timestamp from e.Args.
func (t *tracker) on(e mesh.Event) {
	var idx, ts int64
	ok := len(e.Args) >= 2
	if ok {
		var ok1, ok2 bool
		idx, ok1 = benchkit.AsInt(e.Args[0])
		ts, ok2 = benchkit.AsInt(e.Args[1])
		ok = ok1 && ok2
	}
	t.record(e, idx, ts, ok)
}

// onRaw is the node's OnRaw("*") handler (--handler=raw, the default): the
// index and the timestamp by Scan, without the []any of e.Args.
//
// Scan's destinations are the tracker's own fields: pointers to locals
// would escape (Scan hands them on) and cost two allocations per event.
// The handler runs on its node's one dispatcher goroutine only.
func (t *tracker) onRaw(e mesh.Event) {
	err := e.Scan(&t.scanIdx, &t.scanTS)
	t.record(e, t.scanIdx, t.scanTS, err == nil)
}

// record counts one event: cheap, no allocation in the steady state.
func (t *tracker) record(e mesh.Event, idx, ts int64, ok bool) {
	if !ok || idx < 0 {
		t.malformed.Add(1)
		return
	}
	if !t.seen.Mark(idx) {
		t.dups.Add(1)
		return
	}
	if e.Origin != t.cur {
		if t.curSeen {
			t.lastSeq[t.cur] = t.curSeq
		}
		t.cur = e.Origin
		t.curSeq, t.curSeen = t.lastSeq[e.Origin]
	}
	if t.curSeen && e.Seq <= t.curSeq {
		t.reordered.Add(1)
	} else {
		t.curSeq, t.curSeen = e.Seq, true
	}
	if t.latency {
		now := time.Now().UnixNano()
		t.mu.Lock()
		t.samples = append(t.samples, now-ts)
		t.mu.Unlock()
	}
	t.distinct.Add(1)
}

// result is a tracker's final figures for sent events (indexes 0..sent-1).
type trackerResult struct {
	Distinct, Loss, Dups, Reordered, Malformed int64
	Samples                                    []int64
}

func (t *tracker) result(sent int64) trackerResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.distinct.Load()
	return trackerResult{Distinct: d, Loss: sent - d, Dups: t.dups.Load(), Reordered: t.reordered.Load(),
		Malformed: t.malformed.Load(), Samples: slices.Clone(t.samples)}
}

// quantiles are latency percentiles in microseconds.
type quantiles struct {
	Samples int     `json:"samples"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	P999us  float64 `json:"p999_us"`
	MaxUs   float64 `json:"max_us"`
}

func quantilesOf(ns []int64) quantiles {
	if len(ns) == 0 {
		return quantiles{}
	}
	s := slices.Clone(ns)
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return float64(s[max(0, min(i, len(s)-1))]) / 1e3
	}
	return quantiles{Samples: len(s), P50us: at(0.50), P99us: at(0.99), P999us: at(0.999), MaxUs: at(1)}
}

// frame fills b (size bytes) with an event's application bytes: index,
// send time, padding. The baseline sends exactly these bytes.
func frame(b []byte, idx int64, ts int64) {
	binary.BigEndian.PutUint64(b[0:8], uint64(idx))
	binary.BigEndian.PutUint64(b[8:16], uint64(ts))
}

// pacer spreads count sends evenly from start at rate per second. It does
// not skip: a late send goes at once, so a stall shows as latency.
type pacer struct {
	start    time.Time
	interval time.Duration
}

func newPacer(rate int) pacer {
	return pacer{start: time.Now(), interval: time.Second / time.Duration(rate)}
}

// wait sleeps until send i is due.
func (p pacer) wait(i int) {
	if d := time.Until(p.start.Add(time.Duration(i) * p.interval)); d > 0 {
		time.Sleep(d)
	}
}
