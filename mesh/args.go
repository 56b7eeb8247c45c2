package mesh

import (
	"fmt"
	"math"
	"slices"

	"github.com/verbosemesh/verbose/internal/msgp"
)

// argSlab is where a dispatcher cuts the Args it decodes from: the args
// slices (up to 8 args, refilled 64 slots at a time) and the bytes of small
// []byte args (refilled 16 KiB at a time). Every piece is capped to its
// length, so a handler's append cannot reach a neighbour. One allocation
// serves many events instead of two per event; the cost is that a handler
// keeping e.Args (or a []byte arg) keeps its slab, and what the other events
// cut from it, alive.
type argSlab struct {
	vals  []any
	bytes chunks
}

const (
	argSlabVals   = 64
	argSlabMaxBin = 512 // larger []byte args get their own allocation
)

// decodeArgsFast decodes an args array into []any with the types go-msgpack
// gives (see Event.Args), without reflection. ok is false for anything
// unusual (extensions, non-string map keys, deep nesting): the caller then
// falls back on go-msgpack, so results never differ from it. The
// differential fuzz test in args_test.go holds it to that. Values are cut
// from slab (see argSlab); with a nil slab each is allocated.
func decodeArgsFast(b []byte, slab *argSlab) (args []any, ok bool) {
	p := parser{Reader: msgp.Reader{B: b}, slab: slab}
	n := p.ArrayHeader()
	if p.Err != nil || n > len(b) {
		return nil, false
	}
	if slab != nil && n > 0 && n <= 8 {
		if len(slab.vals) < n {
			slab.vals = make([]any, argSlabVals)
		}
		args, slab.vals = slab.vals[:n:n], slab.vals[n:]
	} else {
		args = make([]any, n)
	}
	for i := range args {
		if args[i], ok = p.value(0); !ok {
			return nil, false
		}
	}
	return args, p.I == len(b)
}

func (p *parser) value(depth int) (any, bool) {
	if depth > 32 {
		return nil, false
	}
	c := p.Byte()
	if p.Err != nil {
		return nil, false
	}
	switch {
	case c <= 0x7f:
		return int64(c), true
	case c >= 0xe0:
		return int64(int8(c)), true
	case c&0xe0 == 0xa0, c >= 0xd9 && c <= 0xdb:
		n := p.StrLen(c)
		if !p.Need(n) {
			return nil, false
		}
		s := string(p.B[p.I : p.I+n])
		p.I += n
		return s, true
	case c&0xf0 == 0x90, c == 0xdc, c == 0xdd:
		p.I--
		n := p.ArrayHeader()
		if p.Err != nil || n > len(p.B)-p.I {
			return nil, false
		}
		a := make([]any, n)
		for i := range a {
			var ok bool
			if a[i], ok = p.value(depth + 1); !ok {
				return nil, false
			}
		}
		return a, true
	case c&0xf0 == 0x80, c == 0xde, c == 0xdf:
		var n int
		switch {
		case c&0xf0 == 0x80:
			n = int(c & 0x0f)
		case c == 0xde:
			n = int(p.BE(2))
		default:
			n = int(p.BE(4))
		}
		if p.Err != nil || 2*n > len(p.B)-p.I {
			return nil, false
		}
		m := make(map[string]any, n)
		for range n {
			k, ok := p.value(depth + 1)
			ks, isStr := k.(string)
			if !ok || !isStr {
				return nil, false
			}
			if _, dup := m[ks]; dup { // go-msgpack's handling of repeats is its own
				return nil, false
			}
			if m[ks], ok = p.value(depth + 1); !ok {
				return nil, false
			}
		}
		return m, true
	}
	switch c {
	case 0xc0:
		return nil, true
	case 0xc2:
		return false, true
	case 0xc3:
		return true, true
	case 0xc4, 0xc5, 0xc6:
		n := int(p.BE(1 << (c - 0xc4)))
		if !p.Need(n) {
			return nil, false
		}
		var bs []byte
		if s := p.slab; s != nil && n > 0 && n <= argSlabMaxBin {
			bs = s.bytes.clone(p.B[p.I:p.I+n], argSlabMaxBin)
		} else {
			bs = append([]byte{}, p.B[p.I:p.I+n]...)
		}
		p.I += n
		return bs, true
	case 0xca:
		return float64(math.Float32frombits(uint32(p.BE(4)))), p.Err == nil
	case 0xcb:
		return math.Float64frombits(p.BE(8)), p.Err == nil
	case 0xcc, 0xcd, 0xce, 0xcf:
		return p.BE(1 << (c - 0xcc)), p.Err == nil
	case 0xd0, 0xd1, 0xd2, 0xd3:
		v := p.Int(c)
		return v, p.Err == nil
	}
	return nil, false // extensions and the unused 0xc1: go-msgpack decides
}

// decodeArgs decodes an event's args for its handlers.
func decodeArgs(raw []byte, slab *argSlab) ([]any, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	if args, ok := decodeArgsFast(raw, slab); ok {
		return args, nil
	}
	var args []any
	if err := decodeWithCodec(raw, &args); err != nil {
		return nil, fmt.Errorf("mesh: bad event args: %w", err)
	}
	return args, nil
}

// chunks hands out byte regions cut from 16 KiB chunks: each region capped
// to its length (an append copies rather than reach a neighbour) and never
// reused nor written again once cut; the garbage collector frees a chunk
// when nothing holds a region of it. One allocation serves many small
// pieces instead of one each. Chunks stay within the allocator's small size
// classes (up to 32 KiB less a header): a 32 KiB chunk took the
// large-object path, a span per chunk, and cost ~40% more per event
// (BenchmarkRawSlabClone).
type chunks struct{ chunk []byte }

const chunkSize = 16 << 10

// room returns the next n bytes of the current chunk, not handed out yet (a
// new chunk when it has fewer): a caller may write up to n bytes, then cut
// what it wrote.
func (c *chunks) room(n int) []byte {
	if len(c.chunk) < n {
		c.chunk = make([]byte, chunkSize)
	}
	return c.chunk[:n:n]
}

// cut hands out the next n bytes, capped to them.
func (c *chunks) cut(n int) []byte {
	r := c.room(n)
	c.chunk = c.chunk[n:]
	return r
}

// clone returns a copy of b (nil for an empty b), cut from the chunks, or an
// allocation of its own when b is longer than max.
func (c *chunks) clone(b []byte, max int) []byte {
	switch n := len(b); {
	case n == 0:
		return nil
	case n > max:
		return slices.Clip(append([]byte(nil), b...)) // capped, as a region of a chunk is
	default:
		r := c.cut(n)
		copy(r, b)
		return r
	}
}

// rawSlab holds the dispatcher's copies of queued args arrays (one chunk
// serves ~120 blast-sized events).
type rawSlab struct{ chunks }

const rawSlabMax = 4 << 10 // larger args get an allocation of their own

// clone returns a copy of b (nil for an empty b).
func (s *rawSlab) clone(b []byte) []byte { return s.chunks.clone(b, rawSlabMax) }

// payloadSlab cuts the payloads of this node's own events from chunks, in
// place of one allocation each (a blast-sized payload is ~180 bytes: one
// chunk serves ~90 events). Each link keeps a payload until the peer
// acknowledges it, so a payload is owned: a region never reused nor written
// again once cut, capped to its length so that no append can reach its
// neighbour. A chunk is freed by the collector once no link buffer holds any
// of its regions. Links free payloads in emit order and a link that is down
// gets every event, so the chunks pinned are those spanning the buffers'
// contents, plus one; only a connected link that skips our events (lazy)
// holds a sparse subset, and its acks free that within AckInterval. The
// own-event store (plumtree_own.go) keeps the payloads of this node's last
// events for GRAFTs, and so pins the chunks that hold them: as many bytes
// as it keeps, within its bounds.
type payloadSlab struct{ chunks }

const payloadSlabMax = 4 << 10 // larger payloads get an allocation of their own

// envelope encodes env into a region of the slab (or a buffer of its own).
func (s *payloadSlab) envelope(env *envelope) []byte {
	size := envelopeSize(env) // an upper bound
	if size > payloadSlabMax {
		p := appendEnvelope(make([]byte, 0, size), env)
		return p[:len(p):len(p)]
	}
	p := appendEnvelope(s.room(size)[:0], env)
	return s.cut(len(p)) // size is an upper bound: the slack stays in the chunk
}
