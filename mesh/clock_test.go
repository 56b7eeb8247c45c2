package mesh

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The monotonic clock agrees with time.Now: each reading lies between two
// time.Now readings taken around it, by their monotonic parts and (to the
// nanosecond, the wall clock not being stepped in a test) by their walls.
func TestMonoClockAgreesWithNow(t *testing.T) {
	c := newMonoClock()
	prev := c.now()
	for range 1000 {
		before := time.Now()
		got := c.now()
		after := time.Now()
		if got.Before(before) || got.After(after) {
			t.Fatalf("clock %v outside [%v, %v]", got, before, after)
		}
		if got.Before(prev) {
			t.Fatalf("clock went back: %v after %v", got, prev)
		}
		prev = got
		// Sub uses the monotonic readings: against time.Now it is exact.
		if d := after.Sub(got); d < 0 || d > after.Sub(before) {
			t.Fatalf("after.Sub(clock) = %v, outside [0, %v]", d, after.Sub(before))
		}
	}
	if s := prev.String(); !strings.Contains(s, "m=+") {
		t.Fatalf("reading %q carries no monotonic clock", s)
	}
}

// Inside a synctest bubble the clock follows the bubble's fake time, as the
// router's timers (compared with the links' time.Now) need.
func TestMonoClockInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newMonoClock()
		start := time.Now()
		time.Sleep(15 * time.Minute)
		if got := c.now(); !got.Equal(time.Now()) || got.Sub(start) != 15*time.Minute {
			t.Fatalf("after 15 fake minutes: clock %v (%v since start), time.Now %v", got, got.Sub(start), time.Now())
		}
	})
}

// Payloads cut from the slab are what encodeEnvelope makes, capped to their
// length, and never written again: later events leave earlier ones intact,
// and appending to one copies instead of reaching its neighbour.
func TestPayloadSlab(t *testing.T) {
	var s payloadSlab
	env := &envelope{Kind: kindEvent, Origin: "node-a", Boot: 1 << 60, Name: "x", Path: []string{"node-a"}}
	var got, want [][]byte
	for i := range 1000 {
		env.Seq = uint64(i)
		env.Args = bytes.Repeat([]byte{byte(i)}, i%300)
		if i%97 == 0 {
			env.Args = bytes.Repeat([]byte{byte(i)}, payloadSlabMax+i) // its own allocation
		}
		p := s.envelope(env)
		if cap(p) != len(p) {
			t.Fatalf("event %d: payload of len %d, cap %d", i, len(p), cap(p))
		}
		got = append(got, p)
		want = append(want, encodeEnvelope(env))
		_ = append(p, 0xff) // must copy, not write into the slab
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("event %d: payload %x, want %x", i, got[i], want[i])
		}
	}
}

// One chunk serves many blast-sized events: Emit's encoding allocates
// nothing per event once a chunk is cut.
func TestPayloadSlabAllocs(t *testing.T) {
	var s payloadSlab
	env := &envelope{Kind: kindEvent, Origin: "node-a", Boot: 1 << 60, Seq: 1 << 60, Name: "bench",
		Path: []string{"node-a"}, Args: make([]byte, 130)}
	if a := testing.AllocsPerRun(1000, func() { s.envelope(env) }); a > 0.02 {
		t.Fatalf("%.3f allocations per payload, want one per chunk (~0.006)", a)
	}
}

// Emit's encoding of one blast event into the slab (compare
// BenchmarkEmitPayloadBlast, a buffer of its own per event).
func BenchmarkEmitPayloadSlabBlast(b *testing.B) {
	pad := make([]byte, 112)
	env := &envelope{Kind: kindEvent, Origin: "bench-0", Boot: 1 << 60, Seq: 1 << 60, Name: "bench", Path: []string{"bench-0"}}
	var s payloadSlab
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		raw, release, err := encodeArgs([]any{i, int64(1 << 60), pad})
		if err != nil {
			b.Fatal(err)
		}
		env.Args = raw
		payload := s.envelope(env)
		env.Args = payload[len(payload)-len(raw):]
		release()
		i++
	}
}

func BenchmarkMonoClock(b *testing.B) {
	c := newMonoClock()
	var t time.Time
	for b.Loop() {
		t = c.now()
	}
	_ = t
}

func BenchmarkTimeNow(b *testing.B) {
	var t time.Time
	for b.Loop() {
		t = time.Now()
	}
	_ = t
}
