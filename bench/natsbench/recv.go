package main

import (
	"encoding/binary"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/verbosemesh/verbose/internal/benchkit"
)

// sampleEvery is how often a message carries its send time: every 64th
// index. Reading the clock for every message would cost each system the
// same ~2×25 ns, but would crowd the samples (and a large slice) for no
// better p99.
const sampleEvery = 64

// message fills b (at least 16 bytes) with message idx: index, send time
// (only for every sampleEvery-th index, else 0), padding left as is.
func message(b []byte, idx int64) {
	binary.BigEndian.PutUint64(b[0:8], uint64(idx))
	var ts int64
	if idx%sampleEvery == 0 {
		ts = time.Now().UnixNano()
	}
	binary.BigEndian.PutUint64(b[8:16], uint64(ts))
}

// stamp is the index and send time of message idx as verbose emits them
// (two int64 args before the padding).
func stamp(idx int64) (int64, int64) {
	if idx%sampleEvery == 0 {
		return idx, time.Now().UnixNano()
	}
	return idx, 0
}

// receiver is one receiver's bookkeeping. record runs on one goroutine at a
// time (a reader, a subscription's callback, a node's dispatcher); distinct
// is read while messages flow, the rest after the phase.
type receiver struct {
	distinct  atomic.Int64
	dups      atomic.Int64
	malformed atomic.Int64

	seen benchkit.Seen // the indexes that arrived; the recording goroutine's own

	mu      sync.Mutex
	samples []int64 // ns, send to receive, of the stamped messages
}

func newReceivers(n int) []*receiver {
	rs := make([]*receiver, n)
	for i := range rs {
		rs[i] = &receiver{}
	}
	return rs
}

// recordBytes records a message from its first 16 bytes.
func (r *receiver) recordBytes(b []byte) {
	if len(b) < 16 {
		r.malformed.Add(1)
		return
	}
	r.record(int64(binary.BigEndian.Uint64(b[0:8])), int64(binary.BigEndian.Uint64(b[8:16])))
}

// record counts message idx, sent at ts (UnixNano; 0: not stamped).
func (r *receiver) record(idx, ts int64) {
	if idx < 0 {
		r.malformed.Add(1)
		return
	}
	if !r.seen.Mark(idx) {
		r.dups.Add(1)
		return
	}
	if ts != 0 {
		d := time.Now().UnixNano() - ts
		r.mu.Lock()
		r.samples = append(r.samples, d)
		r.mu.Unlock()
	}
	r.distinct.Add(1)
}

func (r *receiver) latencies() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.samples)
}

// drain waits until every receiver has sent messages, or until none has
// made progress for stall, or limit. It returns when the last delivery was
// seen (to within the poll step) and whether all arrived.
func drain(rs []*receiver, sent int64, stall, limit time.Duration) (last time.Time, complete bool) {
	const step = 200 * time.Microsecond
	deadline := time.Now().Add(limit)
	total := func() int64 {
		var t int64
		for _, r := range rs {
			t += r.distinct.Load()
		}
		return t
	}
	want := sent * int64(len(rs))
	prev, last := int64(-1), time.Now()
	for {
		now := time.Now()
		t := total()
		if t != prev {
			prev, last = t, now
		}
		if t >= want {
			return last, true
		}
		if now.Sub(last) > stall || now.After(deadline) {
			return last, false
		}
		time.Sleep(step)
	}
}

// quantiles are latency percentiles in microseconds.
type quantiles struct {
	Samples int     `json:"samples"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	MaxUs   float64 `json:"max_us"`
}

func quantilesOf(rs []*receiver) quantiles {
	var s []int64
	for _, r := range rs {
		s = append(s, r.latencies()...)
	}
	if len(s) == 0 {
		return quantiles{}
	}
	slices.Sort(s)
	at := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		return float64(s[max(0, min(i, len(s)-1))]) / 1e3
	}
	return quantiles{Samples: len(s), P50us: at(0.50), P99us: at(0.99), MaxUs: at(1)}
}
