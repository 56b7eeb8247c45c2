package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The EVENT envelope is a msgpack array [kind, origin, boot, seq, name,
// path, args] (PROTOCOL.md). It is on the path of every event, received and
// forwarded, so it is encoded and parsed here by hand for its one fixed
// shape; tests check both directions against go-msgpack. args are the raw
// msgpack array the origin encoded once with go-msgpack: they are never
// decoded on the way through, only for a handler.

var errShort = errors.New("truncated")

// appendEnvelope appends env's encoding to dst.
func appendEnvelope(dst []byte, env *envelope) []byte {
	dst = append(dst, 0x97, env.Kind) // fixarray(7), positive fixint kind
	dst = appendStr(dst, env.Origin)
	dst = appendUint64(dst, env.Boot)
	dst = appendUint64(dst, env.Seq)
	dst = appendStr(dst, env.Name)
	dst = appendArrayHeader(dst, len(env.Path))
	for _, id := range env.Path {
		dst = appendStr(dst, id)
	}
	return append(dst, env.Args...)
}

// envelopeSize is an upper bound of appendEnvelope's output, to size buffers.
func envelopeSize(env *envelope) int {
	n := 2 + 5 + len(env.Origin) + 9 + 9 + 5 + len(env.Name) + 5 + len(env.Args)
	for _, id := range env.Path {
		n += 5 + len(id)
	}
	return n
}

func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb)
		dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	}
	return append(dst, s...)
}

func appendUint64(dst []byte, v uint64) []byte {
	dst = append(dst, 0xcf)
	return binary.BigEndian.AppendUint64(dst, v)
}

func appendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdd)
		return binary.BigEndian.AppendUint32(dst, uint32(n))
	}
}

// parseEnvelope decodes an EVENT payload. Strings are interned in strs (the
// router's, guarded by its lock) so that a steady stream allocates no new
// origin, name or path strings; Args aliases b, which the caller owns.
func parseEnvelope(b []byte, strs *interner) (*envelope, error) {
	env := new(envelope)
	if err := parseEnvelopeInto(env, nil, b, strs); err != nil {
		return nil, err
	}
	return env, nil
}

// parseEnvelopeInto is parseEnvelope into the caller's env, with the Path
// in pathBuf when it has room for the path and one more id (the router's
// own, when forwarding): the router allocates all three at once.
func parseEnvelopeInto(env *envelope, pathBuf []string, b []byte, strs *interner) error {
	p := parser{b: b, strs: strs}
	if n := p.arrayHeader(); n != 7 && p.err == nil {
		p.err = fmt.Errorf("an array of %d elements, want 7", n)
	}
	env.Kind = uint8(p.uint(math.MaxUint8))
	if p.err == nil && env.Kind != kindEvent {
		return fmt.Errorf("mesh: payload kind %d is not an event", env.Kind)
	}
	env.Origin = p.str()
	env.Boot = p.uint(math.MaxUint64)
	env.Seq = p.uint(math.MaxUint64)
	env.Name = p.str()
	if n := p.arrayHeader(); p.err == nil {
		if n > len(p.b)-p.i { // each id takes at least one byte
			p.err = fmt.Errorf("a path of %d ids in %d bytes", n, len(p.b)-p.i)
		} else {
			if n < cap(pathBuf) {
				env.Path = pathBuf[:n:cap(pathBuf)]
			} else {
				env.Path = make([]string, n, n+1) // room for our id when forwarding
			}
			for i := range env.Path {
				env.Path[i] = p.str()
			}
		}
	}
	if p.err == nil {
		start := p.i
		if n := p.arrayHeader(); p.err == nil {
			if n > len(p.b)-p.i { // each value takes at least one byte
				p.err = errShort
			}
			for ; n > 0 && p.err == nil; n-- {
				p.skip(0)
			}
		}
		if p.err == nil && p.i != len(p.b) {
			p.err = fmt.Errorf("%d bytes after the args", len(p.b)-p.i)
		}
		env.Args = b[start:p.i]
	}
	if p.err != nil {
		return fmt.Errorf("mesh: bad event payload: %w", p.err)
	}
	if env.Origin == "" || env.Boot == 0 || env.Seq < env.Boot {
		return fmt.Errorf("mesh: bad event identity (origin %q, boot %d, seq %d)", env.Origin, env.Boot, env.Seq)
	}
	return nil
}

// parser reads msgpack values from b; the first error sticks.
type parser struct {
	b    []byte
	i    int
	err  error
	strs *interner
	slab *argSlab // where decoded args are cut from; nil: allocate each
}

func (p *parser) need(n int) bool {
	if p.err != nil {
		return false
	}
	if n < 0 || len(p.b)-p.i < n {
		p.err = errShort
		return false
	}
	return true
}

func (p *parser) byte() byte {
	if !p.need(1) {
		return 0
	}
	c := p.b[p.i]
	p.i++
	return c
}

// be reads an n-byte big-endian integer, n one of 1, 2, 4 or 8.
func (p *parser) be(n int) uint64 {
	if p.err != nil || len(p.b)-p.i < n {
		if p.err == nil {
			p.err = errShort
		}
		return 0
	}
	b := p.b[p.i:]
	p.i += n
	switch n {
	case 1:
		return uint64(b[0])
	case 2:
		return uint64(binary.BigEndian.Uint16(b))
	case 4:
		return uint64(binary.BigEndian.Uint32(b))
	}
	return binary.BigEndian.Uint64(b)
}

// uint reads a non-negative integer of any msgpack width, at most max.
func (p *parser) uint(max uint64) uint64 {
	c := p.byte()
	var v uint64
	switch {
	case p.err != nil:
		return 0
	case c <= 0x7f:
		v = uint64(c)
	case c >= 0xcc && c <= 0xcf:
		v = p.be(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v = p.be(n)
		if p.err == nil && v>>(8*n-1)&1 == 1 {
			p.err = errors.New("a negative integer")
		}
	default:
		p.err = fmt.Errorf("type 0x%02x, want an integer", c)
	}
	if p.err == nil && v > max {
		p.err = fmt.Errorf("integer %d out of range", v)
	}
	return v
}

func (p *parser) strLen(c byte) int {
	switch {
	case c&0xe0 == 0xa0:
		return int(c & 0x1f)
	case c == 0xd9:
		return int(p.be(1))
	case c == 0xda:
		return int(p.be(2))
	case c == 0xdb:
		return int(p.be(4))
	}
	if p.err == nil {
		p.err = fmt.Errorf("type 0x%02x, want a string", c)
	}
	return 0
}

func (p *parser) str() string {
	n := p.strLen(p.byte())
	if !p.need(n) {
		return ""
	}
	s := p.strs.intern(p.b[p.i : p.i+n])
	p.i += n
	return s
}

func (p *parser) arrayHeader() int {
	c := p.byte()
	switch {
	case p.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == 0xdc:
		return int(p.be(2))
	case c == 0xdd:
		return int(p.be(4))
	}
	p.err = fmt.Errorf("type 0x%02x, want an array", c)
	return 0
}

// skip moves past one well-formed msgpack value.
func (p *parser) skip(depth int) {
	if depth > 64 {
		p.err = errors.New("nested more than 64 deep")
		return
	}
	c := p.byte()
	if p.err != nil {
		return
	}
	n, elems := 0, 0 // bytes of payload to skip, values to skip
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c&0xf0 == 0x90:
		elems = int(c & 0x0f)
	case c&0xf0 == 0x80:
		elems = 2 * int(c&0x0f)
	case c == 0xc4 || c == 0xd9:
		n = int(p.be(1))
	case c == 0xc5 || c == 0xda:
		n = int(p.be(2))
	case c == 0xc6 || c == 0xdb:
		n = int(p.be(4))
	case c == 0xcc || c == 0xd0:
		n = 1
	case c == 0xcd || c == 0xd1:
		n = 2
	case c == 0xca || c == 0xce || c == 0xd2:
		n = 4
	case c == 0xcb || c == 0xcf || c == 0xd3:
		n = 8
	case c == 0xdc:
		elems = int(p.be(2))
	case c == 0xdd:
		elems = int(p.be(4))
	case c == 0xde:
		elems = 2 * int(p.be(2))
	case c == 0xdf:
		elems = 2 * int(p.be(4))
	case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16
		n = 1 + 1<<(c-0xd4)
	case c == 0xc7:
		n = 1 + int(p.be(1))
	case c == 0xc8:
		n = 1 + int(p.be(2))
	case c == 0xc9:
		n = 1 + int(p.be(4))
	default: // 0xc1 is never used
		p.err = fmt.Errorf("type 0x%02x is not msgpack", c)
		return
	}
	if elems > len(p.b)-p.i { // each value takes at least one byte
		p.err = errShort
		return
	}
	if p.need(n) {
		p.i += n
	}
	for ; elems > 0 && p.err == nil; elems-- {
		p.skip(depth + 1)
	}
}

// interner keeps one copy of the strings that recur on the event path
// (origins, names, path ids). It is bounded: when full it is reset, which
// costs allocations for a while, never correctness.
//
// A small direct-mapped cache in front of the map answers the common case
// (the same few ids over and over) with one comparison instead of a hash.
type interner struct {
	m     map[string]string
	cache [internCache]string
}

const (
	maxInterned = 4096
	internCache = 64 // a power of two
)

func (t *interner) intern(b []byte) string {
	if t == nil {
		return string(b)
	}
	if len(b) == 0 {
		return ""
	}
	h := (len(b) + int(b[0])*3 + int(b[len(b)-1])*7) & (internCache - 1)
	if s := t.cache[h]; s == string(b) { // no allocation for the comparison
		return s
	}
	s, ok := t.m[string(b)] // nor for the lookup
	if !ok {
		if t.m == nil || len(t.m) >= maxInterned {
			t.m = make(map[string]string, 64)
		}
		s = string(b)
		t.m[s] = s
	}
	t.cache[h] = s
	return s
}
