package testcluster

import (
	"fmt"
	"sync"

	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh"
)

// Recorder counts the events one node's handlers receive and notes every
// violation of exactly-once or per-origin order.
type Recorder struct {
	mu         sync.Mutex
	byName     map[string]int
	byOrigin   map[string]int
	last       map[string]uint64 // origin → last seq delivered
	seen       map[string]map[uint64]bool
	events     []mesh.Event
	keep       bool
	violations []string
}

func newRecorder(keep bool) *Recorder {
	return &Recorder{
		byName:   map[string]int{},
		byOrigin: map[string]int{},
		last:     map[string]uint64{},
		seen:     map[string]map[uint64]bool{},
		keep:     keep,
	}
}

// recordRaw records an OnRaw handler's event: its args are decoded from the
// bytes lent for the call (Scan, one *any per arg), so what the Recorder
// keeps is what the handler read, and the event is the Recorder's to keep.
func (r *Recorder) recordRaw(e mesh.Event) {
	args := msgp.Reader{B: e.RawArgs()}
	n := args.ArrayHeader()
	err := args.Err
	if err == nil && n > len(args.B)-args.I {
		err = fmt.Errorf("%d args in %d bytes", n, len(args.B)-args.I) // each takes one at least
	}
	if err == nil {
		e.Args = make([]any, n)
		dst := make([]any, n)
		for i := range dst {
			dst[i] = &e.Args[i]
		}
		err = e.Scan(dst...)
	}
	if err != nil {
		r.mu.Lock()
		r.violations = append(r.violations, fmt.Sprintf("raw args of origin %s seq %d (%s): %v", e.Origin, e.Seq, e.Name, err))
		r.mu.Unlock()
		return
	}
	r.record(e.Clone())
}

func (r *Recorder) record(e mesh.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen[e.Origin]
	if s == nil {
		s = map[uint64]bool{}
		r.seen[e.Origin] = s
	}
	switch {
	case s[e.Seq]:
		r.violations = append(r.violations, fmt.Sprintf("duplicate: origin %s seq %d (%s)", e.Origin, e.Seq, e.Name))
	case e.Seq < r.last[e.Origin]:
		r.violations = append(r.violations, fmt.Sprintf("reorder: origin %s seq %d after %d (%s)", e.Origin, e.Seq, r.last[e.Origin], e.Name))
	}
	s[e.Seq] = true
	r.last[e.Origin] = max(r.last[e.Origin], e.Seq)
	r.byName[e.Name]++
	r.byOrigin[e.Origin]++
	if r.keep {
		r.events = append(r.events, e)
	}
}

// Count returns how many events named name were received ("*": all).
func (r *Recorder) Count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name == "*" {
		n := 0
		for _, c := range r.byName {
			n += c
		}
		return n
	}
	return r.byName[name]
}

// FromOrigin returns how many events from origin were received.
func (r *Recorder) FromOrigin(origin string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byOrigin[origin]
}

// Events returns the events received, in delivery order (only when the
// cluster was built with Options.KeepEvents).
func (r *Recorder) Events() []mesh.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mesh.Event(nil), r.events...)
}

// Violations returns every duplicate and reorder seen.
func (r *Recorder) Violations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.violations...)
}
