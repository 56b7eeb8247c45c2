package wire

import (
	"fmt"
	"math"

	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh/internal/slab"
)

// DecodeArgs decodes an args array into []any with the types go-msgpack
// gives (string, int64/uint64, float64, bool, nil, []byte, []any,
// map[string]any), cutting values from s (nil: allocate each). Anything
// unusual (extensions, non-string map keys, deep nesting) goes to
// go-msgpack, so results never differ from its own (FuzzDecodeArgs).
func DecodeArgs(raw []byte, s *slab.Args) ([]any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if args, ok := decodeArgsFast(raw, s); ok {
		return args, nil
	}
	var args []any
	if err := DecodeValue(raw, &args); err != nil {
		return nil, fmt.Errorf("mesh: bad event args: %w", err)
	}
	return args, nil
}

// DecodeAny decodes one msgpack value b as DecodeArgs decodes an arg; ok is
// false when go-msgpack must decide (or b is not exactly one value).
func DecodeAny(b []byte) (v any, ok bool) {
	r := reader{Reader: msgp.Reader{B: b}}
	v, ok = r.value(0)
	return v, ok && r.I == len(b)
}

// decodeArgsFast is DecodeArgs without the fallback: ok is false where
// go-msgpack must decide.
func decodeArgsFast(b []byte, s *slab.Args) (args []any, ok bool) {
	r := reader{Reader: msgp.Reader{B: b}, args: s}
	n := r.ArrayHeader()
	if r.Err != nil || n > len(b) {
		return nil, false
	}
	args = s.Vals(n)
	for i := range args {
		if args[i], ok = r.value(0); !ok {
			return nil, false
		}
	}
	return args, r.I == len(b)
}

func (r *reader) value(depth int) (any, bool) {
	if depth > 32 {
		return nil, false
	}
	c := r.Byte()
	if r.Err != nil {
		return nil, false
	}
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	case c&0xe0 == 0xa0, c >= 0xd9 && c <= 0xdb:
		n := r.StrLen(c)
		if !r.Need(n) {
			return nil, false
		}
		s := string(r.B[r.I : r.I+n])
		r.I += n
		return s, true
	case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
		r.I--
		return r.array(depth)
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		return r.mapValue(c, depth)
	}
	switch c {
	case 0xc0:
		return nil, true
	case 0xc2:
		return false, true
	case 0xc3:
		return true, true
	case 0xc4, 0xc5, 0xc6:
		n := int(r.BE(1 << (c - 0xc4)))
		if !r.Need(n) {
			return nil, false
		}
		bs := r.args.Bin(r.B[r.I : r.I+n])
		r.I += n
		return bs, true
	case 0xca:
		return float64(math.Float32frombits(uint32(r.BE(4)))), r.Err == nil
	case 0xcb:
		return math.Float64frombits(r.BE(8)), r.Err == nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		return r.BE(1 << (c - 0xcc)), r.Err == nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		v := r.Int(c)
		return v, r.Err == nil
	}
	return nil, false // extensions and the unused 0xc1: go-msgpack decides
}

func (r *reader) array(depth int) (any, bool) {
	n := r.ArrayHeader()
	if r.Err != nil || n > len(r.B)-r.I {
		return nil, false
	}
	a := make([]any, n)
	for i := range a {
		var ok bool
		if a[i], ok = r.value(depth + 1); !ok {
			return nil, false
		}
	}
	return a, true
}

func (r *reader) mapValue(c byte, depth int) (any, bool) {
	var n int
	switch {
	case c&0xf0 == 0x80:
		n = int(c & 0x0f)
	case c == 0xde:
		n = int(r.BE(2))
	default:
		n = int(r.BE(4))
	}
	if r.Err != nil || 2*n > len(r.B)-r.I {
		return nil, false
	}
	m := make(map[string]any, n)
	for range n {
		k, ok := r.value(depth + 1)
		ks, isStr := k.(string)
		if !ok || !isStr {
			return nil, false
		}
		if _, dup := m[ks]; dup { // go-msgpack's handling of repeats is its own
			return nil, false
		}
		if m[ks], ok = r.value(depth + 1); !ok {
			return nil, false
		}
	}
	return m, true
}
