package benchkit

import (
	"math"
	"os"
	"strings"
)

// Seen is a bitmap of the event indexes a receiver got: the benchmarks'
// exact loss and duplicate count. Not safe for concurrent use: one
// recording goroutine owns it.
type Seen struct{ bits []uint64 }

// Mark records index idx (non-negative) and reports whether it is new.
// It grows as needed, doubling, so that the steady state allocates nothing.
func (s *Seen) Mark(idx int64) bool {
	w := int(idx / 64)
	if w >= len(s.bits) {
		s.bits = append(s.bits, make([]uint64, w-len(s.bits)+1+len(s.bits))...)
	}
	bit := uint64(1) << (idx % 64)
	if s.bits[w]&bit != 0 {
		return false
	}
	s.bits[w] |= bit
	return true
}

// AsInt accepts the integer types msgpack decodes to.
func AsInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case uint64:
		if x > math.MaxInt64 {
			return 0, false
		}
		return int64(x), true
	}
	return 0, false
}

// LoadAvg is /proc/loadavg's three averages ("unknown" where there is
// none): other load skews every figure.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
