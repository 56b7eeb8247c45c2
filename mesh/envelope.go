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
	if strs != nil && strs.last.parseAgain(env, pathBuf, b) {
		return nil
	}
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
	seqStart := p.I
	env.Seq = p.Uint(math.MaxUint64)
	seqEnd := p.I
	env.Name = p.str()
	if n := p.ArrayHeader(); p.Err == nil {
		if n > len(p.B)-p.I { // each id takes at least one byte
			p.Err = fmt.Errorf("a path of %d ids in %d bytes", n, len(p.B)-p.I)
		} else {
			env.Path = pathIn(pathBuf, n)
			for i := range env.Path {
				env.Path[i] = p.strOr(env.Origin)
			}
		}
	}
	argsStart := p.I
	if p.Err == nil {
		p.Err = skipArgs(&p.Reader)
		env.Args = b[argsStart:p.I]
	}
	if p.Err != nil {
		return fmt.Errorf("mesh: bad event payload: %w", p.Err)
	}
	if env.Origin == "" || env.Boot == 0 || env.Seq < env.Boot {
		return fmt.Errorf("mesh: bad event identity (origin %q, boot %d, seq %d)", env.Origin, env.Boot, env.Seq)
	}
	if strs != nil {
		strs.last.remember(env, b, seqStart, seqEnd, argsStart)
	}
	return nil
}

// pathIn is a path of n ids in pathBuf, or allocated, with room for one more
// (the router's own id, when it forwards).
func pathIn(pathBuf []string, n int) []string {
	if n < cap(pathBuf) {
		return pathBuf[:n:cap(pathBuf)]
	}
	return make([]string, n, n+1)
}

// skipArgs moves r past the args array, which ends the envelope: it must be
// well formed, with nothing after it. Args are never decoded on the way
// through, only for a handler.
func skipArgs(r *msgp.Reader) error {
	n := r.ArrayHeader()
	if r.Err != nil {
		return r.Err
	}
	if n > len(r.B)-r.I { // each value takes at least one byte
		return msgp.ErrShort
	}
	r.SkipN(n)
	if r.Err == nil && r.I != len(r.B) {
		return fmt.Errorf("%d bytes after the args", len(r.B)-r.I)
	}
	return r.Err
}

// lastEnvelope is what the router's last full parse learnt: the bytes before
// the seq (array header, kind, origin, boot) and between the seq and the
// args (name, path), and what they parsed to. An origin's consecutive events
// mostly share both, and comparing ~40 bytes costs half of parsing them and
// interning three strings again. Parsing is a function of the bytes, so
// equal bytes parse to equal values; FuzzParseEnvelopeAgain holds the
// shortcut to the full parse.
type lastEnvelope struct {
	pre, mid     []byte
	origin, name string
	boot         uint64
	path         []string
}

// parseAgain parses b into env if b shares the last envelope's bytes around
// its seq and is valid; false sends the caller to the full parse (which
// also says what is wrong with a bad payload).
func (h *lastEnvelope) parseAgain(env *envelope, pathBuf []string, b []byte) bool {
	if len(h.pre) == 0 || len(b) <= len(h.pre) || string(b[:len(h.pre)]) != string(h.pre) {
		return false
	}
	r := msgp.Reader{B: b, I: len(h.pre)}
	seq := r.Uint(math.MaxUint64)
	if r.Err != nil || seq < h.boot || len(b)-r.I < len(h.mid) || string(b[r.I:r.I+len(h.mid)]) != string(h.mid) {
		return false
	}
	r.I += len(h.mid)
	start := r.I
	if skipArgs(&r) != nil {
		return false
	}
	env.Kind, env.Origin, env.Boot, env.Seq, env.Name = kindEvent, h.origin, h.boot, seq, h.name
	env.Path = pathIn(pathBuf, len(h.path))
	copy(env.Path, h.path)
	env.Args = b[start:]
	return true
}

// remember keeps what a full parse of b into env learnt, for parseAgain.
func (h *lastEnvelope) remember(env *envelope, b []byte, seqStart, seqEnd, argsStart int) {
	h.pre = append(h.pre[:0], b[:seqStart]...)
	h.mid = append(h.mid[:0], b[seqEnd:argsStart]...)
	h.origin, h.name, h.boot = env.Origin, env.Name, env.Boot
	h.path = append(h.path[:0], env.Path...)
}

// parser reads an envelope or args: msgp's reader, interning strings and
// cutting args from a slab.
type parser struct {
	msgp.Reader
	strs *interner
	slab *argSlab // where decoded args are cut from; nil: allocate each
}

func (p *parser) str() string { return p.strs.intern(p.Take(p.StrLen(p.Byte()))) }

// strOr is str for a string that is most often known: the path's first id
// is the origin's, compared without the interner's hashing.
func (p *parser) strOr(known string) string {
	b := p.Take(p.StrLen(p.Byte()))
	if string(b) == known {
		return known
	}
	return p.strs.intern(b)
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
	last  lastEnvelope // the parser's memory of the previous envelope
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
