package mesh

import (
	"fmt"
	"math"

	"github.com/verbosemesh/verbose/internal/msgp"
)

// The EVENT envelope is a msgpack array [kind, origin, boot, seq, name,
// path, args] (PROTOCOL.md). It is on the path of every event, received and
// forwarded, so it is encoded and parsed here by hand for its one fixed
// shape; tests check both directions against go-msgpack. args are the raw
// msgpack array the origin encoded once with go-msgpack: they are never
// decoded on the way through, only for a handler.

// appendEnvelope appends env's encoding to dst.
func appendEnvelope(dst []byte, env *envelope) []byte {
	dst = append(dst, 0x97, env.Kind) // fixarray(7), positive fixint kind
	dst = msgp.AppendStr(dst, env.Origin)
	dst = msgp.AppendUint64(dst, env.Boot)
	dst = msgp.AppendUint64(dst, env.Seq)
	dst = msgp.AppendStr(dst, env.Name)
	dst = msgp.AppendArrayHeader(dst, len(env.Path))
	for _, id := range env.Path {
		dst = msgp.AppendStr(dst, id)
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
	p := parser{Reader: msgp.Reader{B: b}, strs: strs}
	if n := p.ArrayHeader(); n != 7 && p.Err == nil {
		p.Err = fmt.Errorf("an array of %d elements, want 7", n)
	}
	env.Kind = uint8(p.Uint(math.MaxUint8))
	if p.Err == nil && env.Kind != kindEvent {
		return fmt.Errorf("mesh: payload kind %d is not an event", env.Kind)
	}
	env.Origin = p.str()
	env.Boot = p.Uint(math.MaxUint64)
	env.Seq = p.Uint(math.MaxUint64)
	env.Name = p.str()
	if n := p.ArrayHeader(); p.Err == nil {
		if n > len(p.B)-p.I { // each id takes at least one byte
			p.Err = fmt.Errorf("a path of %d ids in %d bytes", n, len(p.B)-p.I)
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
	if p.Err == nil {
		start := p.I
		if n := p.ArrayHeader(); p.Err == nil {
			if n > len(p.B)-p.I { // each value takes at least one byte
				p.Err = msgp.ErrShort
			}
			for ; n > 0 && p.Err == nil; n-- {
				p.Skip(0)
			}
		}
		if p.Err == nil && p.I != len(p.B) {
			p.Err = fmt.Errorf("%d bytes after the args", len(p.B)-p.I)
		}
		env.Args = b[start:p.I]
	}
	if p.Err != nil {
		return fmt.Errorf("mesh: bad event payload: %w", p.Err)
	}
	if env.Origin == "" || env.Boot == 0 || env.Seq < env.Boot {
		return fmt.Errorf("mesh: bad event identity (origin %q, boot %d, seq %d)", env.Origin, env.Boot, env.Seq)
	}
	return nil
}

// parser reads an envelope or args: msgp's reader, interning strings and
// cutting args from a slab.
type parser struct {
	msgp.Reader
	strs *interner
	slab *argSlab // where decoded args are cut from; nil: allocate each
}

func (p *parser) str() string {
	n := p.StrLen(p.Byte())
	if !p.Need(n) {
		return ""
	}
	s := p.strs.intern(p.B[p.I : p.I+n])
	p.I += n
	return s
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
