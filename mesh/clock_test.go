package mesh

import (
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
