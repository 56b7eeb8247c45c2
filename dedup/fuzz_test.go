package dedup

import (
	"math/rand/v2"
	"testing"
	"time"
)

// model checks an Orderer against what exactly-once ordered delivery allows.
type model struct {
	t        testing.TB
	o        *Orderer[ev]
	now      time.Time
	accepted map[ev]bool      // offered with fresh=true
	arrived  map[ev]time.Time // when each accepted event was offered
	released map[ev]bool
	maxRel   map[ev]uint64 // per (origin, boot) (seq field zero): highest released seq
	fresh    int
	rel      int
	outOfOrd uint64 // releases below an already released seq of the same boot
}

func newModel(t testing.TB, cfg Config) *model {
	return &model{
		t: t, o: New[ev](cfg), now: t0,
		accepted: map[ev]bool{}, arrived: map[ev]time.Time{}, released: map[ev]bool{}, maxRel: map[ev]uint64{},
	}
}

func (m *model) offer(e ev) {
	m.t.Helper()
	before := m.o.Stats()
	ready, v := m.o.Offer(e.origin, e.boot, e.seq, e, m.now, nil)
	after := m.o.Stats()
	fresh := v == Fresh
	// The verdict is the counter that moved.
	switch {
	case v == Late && after.Late != before.Late+1,
		v == Stale && after.Stale != before.Stale+1,
		v == Duplicate && after.Duplicates != before.Duplicates+1:
		m.t.Fatalf("%v: verdict %v, counters %+v before %+v", e, v, after, before)
	}
	switch {
	case fresh && m.accepted[e]:
		m.t.Fatalf("%v accepted twice", e)
	case fresh:
		m.accepted[e] = true
		m.arrived[e] = m.now
		m.fresh++
	case !m.accepted[e] && after.Stale != before.Stale+1:
		// Never seen, yet dropped: only a counted stale drop is allowed.
		m.t.Fatalf("%v dropped unseen without counting it stale (%+v)", e, after)
	case m.accepted[e] && after.Stale+after.Duplicates != before.Stale+before.Duplicates+1:
		m.t.Fatalf("%v dropped without counting it (%+v)", e, after)
	}
	if !fresh && len(ready) != 0 {
		m.t.Fatalf("%v not fresh but released %v", e, ready)
	}
	m.release(ready)
}

func (m *model) tick() int {
	m.t.Helper()
	ready := m.o.Tick(m.now, nil)
	m.release(ready)
	// Whatever is still held has not waited Grace yet.
	for e := range m.accepted {
		if !m.released[e] && !m.arrived[e].Add(m.o.cfg.Grace).After(m.now) {
			m.t.Fatalf("%v held since %v, past Grace at %v", e, m.arrived[e], m.now)
		}
	}
	// An origin forgotten for idleness starts afresh; it must hold nothing.
	for e := range m.accepted {
		if _, ok := m.o.origins[e.origin]; !ok {
			if !m.released[e] {
				m.t.Fatalf("origin %s forgotten with %v unreleased", e.origin, e)
			}
			delete(m.accepted, e)
			delete(m.arrived, e)
			delete(m.released, e)
			delete(m.maxRel, ev{origin: e.origin, boot: e.boot})
		}
	}
	return len(ready)
}

func (m *model) release(ready []ev) {
	m.t.Helper()
	for _, r := range ready {
		if !m.accepted[r] {
			m.t.Fatalf("released %v that was never accepted", r)
		}
		if m.released[r] {
			m.t.Fatalf("released %v twice", r)
		}
		m.released[r] = true
		m.rel++
		k := ev{origin: r.origin, boot: r.boot}
		if max, ok := m.maxRel[k]; ok && r.seq < max {
			m.outOfOrd++
		} else {
			m.maxRel[k] = r.seq
		}
	}
}

// check verifies the counters and, per tracked boot, that every seq below next
// is accounted for: released, or declared skipped (and not since released).
func (m *model) check() {
	m.t.Helper()
	checkInvariants(m.t, m.o)
	s := m.o.Stats()
	if s.Held != m.fresh-m.rel {
		m.t.Fatalf("Held %d, but %d accepted and %d released", s.Held, m.fresh, m.rel)
	}
	if s.Fresh != uint64(m.fresh) {
		m.t.Fatalf("Fresh %d, model %d", s.Fresh, m.fresh)
	}
	// The next deadline is Grace after the earliest arrival still held.
	var first time.Time
	held := false
	for e := range m.accepted {
		if !m.released[e] && (!held || m.arrived[e].Before(first)) {
			first, held = m.arrived[e], true
		}
	}
	if d, ok := m.o.NextDeadline(); ok != held || (ok && !d.Equal(first.Add(m.o.cfg.Grace))) {
		m.t.Fatalf("NextDeadline %v %v, want %v %v", d, ok, first.Add(m.o.cfg.Grace), held)
	}
	if m.outOfOrd > s.Late || s.Late > s.Skipped {
		m.t.Fatalf("out of order %d, Late %d, Skipped %d", m.outOfOrd, s.Late, s.Skipped)
	}
	for name, os := range m.o.origins {
		for _, b := range os.boots {
			ri := 0
			for seq := b.boot; seq < b.next; seq++ {
				for ri < len(b.skipped) && b.skipped[ri].hi <= seq {
					ri++
				}
				inSkipped := ri < len(b.skipped) && b.skipped[ri].lo <= seq
				rel := m.released[ev{name, b.boot, seq}]
				if rel && inSkipped {
					m.t.Fatalf("%s/%d/%d released but still in skipped ranges", name, b.boot, seq)
				}
				if !rel && !inSkipped && seq >= b.forgottenBelow {
					m.t.Fatalf("%s/%d/%d below next %d neither released nor skipped", name, b.boot, seq, b.next)
				}
			}
		}
	}
}

// finish expires every gap and checks that everything accepted came out.
func (m *model) finish() {
	m.t.Helper()
	m.now = m.now.Add(100 * m.o.cfg.Grace)
	m.tick()
	m.check()
	for e := range m.accepted {
		if !m.released[e] {
			m.t.Fatalf("%v accepted but never released", e)
		}
	}
}

// play decodes data as a run: a config, then 2-byte operations.
func play(t testing.TB, data []byte) {
	if len(data) < 3 {
		return
	}
	// The model checks are linear in what it tracks, so bound the run.
	if len(data) > 1024 {
		data = data[:1024]
	}
	cfg := Config{
		Window:   1 + int(data[0]%12),
		MaxBoots: 1 + int(data[1]%3),
		Grace:    100 * time.Millisecond,
	}
	if data[2]&1 == 1 {
		cfg.IdleTimeout = 5 * cfg.Grace
	}
	m := newModel(t, cfg)
	m.o.maxSkip = 1 + int(data[2]>>1)%4 // small, so that forgetting is exercised
	origins := [...]string{"a", "b", "c"}
	for ops := data[3:]; len(ops) >= 2; ops = ops[2:] {
		op, arg := ops[0], ops[1]
		switch op % 8 {
		case 0, 1, 2, 3, 4:
			boot := 1000 * uint64(1+(op>>3)%4)
			m.offer(ev{origins[int(op>>5)%len(origins)], boot, boot + uint64(arg%40)})
		case 5:
			m.now = m.now.Add(time.Duration(arg%16) * cfg.Grace / 8)
			m.tick()
		case 6:
			// A tick just before the deadline releases nothing; at it, something.
			d, ok := m.o.NextDeadline()
			if !ok {
				continue
			}
			if d.Sub(m.now) > 1 {
				m.now = d.Add(-1)
				if n := m.tick(); n != 0 {
					t.Fatalf("tick before deadline released %d", n)
				}
			}
			if d.After(m.now) {
				m.now = d
			}
			if n := m.tick(); n == 0 {
				t.Fatalf("tick at deadline %v released nothing", d)
			}
		case 7:
			// A burst of one origin's next seqs, in order, behind any gap.
			boot := 1000 * uint64(1+(op>>3)%4)
			o := origins[int(op>>5)%len(origins)]
			for i := range uint64(arg % 8) {
				m.offer(ev{o, boot, boot + 40 + uint64(arg)/8 + i})
			}
		}
		m.check()
	}
	m.finish()
}

func FuzzOrderer(f *testing.F) {
	f.Add([]byte{8, 1, 0, 0, 0, 0, 1, 0, 2, 0, 2, 0, 1})
	f.Add([]byte{3, 0, 0, 0, 5, 0, 3, 0, 1, 5, 9, 6, 0, 0, 2, 0, 1, 0, 4})
	f.Add([]byte{1, 2, 1, 8, 0, 16, 0, 24, 0, 32, 0, 8, 3, 5, 15, 16, 2, 24, 1, 5, 15})
	f.Add([]byte{11, 1, 1, 0, 39, 0, 20, 6, 0, 0, 0, 0, 10, 7, 200, 4, 39, 6, 0})
	f.Add([]byte{5, 2, 0, 32, 0, 64, 0, 32, 3, 64, 9, 7, 255, 1, 1, 6, 0, 5, 15, 5, 15, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) { play(t, data) })
}

// TestOrdererRandom runs the fuzz model over seeded random runs, so that the
// plain test run covers far more than the seed corpus.
func TestOrdererRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	runs := 2000
	if testing.Short() {
		runs = 200
	}
	for range runs {
		data := make([]byte, 3+2*(10+rng.IntN(150)))
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		play(t, data)
		if t.Failed() {
			t.Logf("data: %v", data)
			return
		}
	}
}
