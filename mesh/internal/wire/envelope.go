package wire

import (
	"fmt"
	"math"

	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh/internal/slab"
)

// Envelope is an event on the wire: [1, origin, boot, seq, name, path, args].
type Envelope struct {
	Origin string
	Boot   uint64
	Seq    uint64
	Name   string
	Path   []string // node ids the event has passed, origin first
	Args   []byte   // msgpack array, encoded once by the origin
}

const envelopeFields = 7

// MaxOrigin is the longest node id an origin may have.
const MaxOrigin = 256

// AppendEnvelope appends env's encoding to dst.
func AppendEnvelope(dst []byte, env *Envelope) []byte {
	dst = append(dst, eventHead[:]...)
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

// EnvelopeSize is an upper bound of AppendEnvelope's output, to size buffers.
func EnvelopeSize(env *Envelope) int {
	n := 2 + 5 + len(env.Origin) + 9 + 9 + 5 + len(env.Name) + 5 + len(env.Args)
	for _, id := range env.Path {
		n += 5 + len(id)
	}
	return n
}

// EncodeEnvelope encodes env into a buffer of its own.
func EncodeEnvelope(env *Envelope) []byte {
	return AppendEnvelope(make([]byte, 0, EnvelopeSize(env)), env)
}

// CutEnvelope encodes env into an owned region of c (a buffer of its own
// if it is large): this node's own events' payloads, shared by every link
// buffer until acknowledged, and never written again.
func CutEnvelope(c *slab.Chunks, env *Envelope) []byte {
	return c.Write(EnvelopeSize(env), func(dst []byte) []byte { return AppendEnvelope(dst, env) })
}

// Parser parses envelopes for the router. It interns the strings that recur
// (origins, names, path ids), so that a steady stream allocates none, and
// remembers the previous envelope's bytes around its seq: an origin's
// consecutive events mostly share them, and comparing ~40 bytes costs half
// of parsing them and interning three strings again. Parsing is a function
// of the bytes, so equal bytes parse to equal values; FuzzParseAgain holds
// the shortcut to the full parse. A nil *Parser parses without either.
type Parser struct {
	strs Interner
	last lastEnvelope
}

// Parse decodes an EVENT payload b into env, with the path in pathBuf when
// it has room for the path and one more id (the router's own, when it
// forwards). env.Args aliases b.
func (ps *Parser) Parse(env *Envelope, pathBuf []string, b []byte) error {
	var strs *Interner
	if ps != nil {
		if ps.last.parseAgain(env, pathBuf, b) {
			return nil
		}
		strs = &ps.strs
	}
	r := reader{Reader: msgp.Reader{B: b}, strs: strs}
	if n := r.ArrayHeader(); n != envelopeFields && r.Err == nil {
		r.Err = fmt.Errorf("an array of %d elements, want %d", n, envelopeFields)
	}
	kind := Kind(r.Uint(math.MaxUint8))
	if r.Err == nil && kind != KindEvent {
		return fmt.Errorf("mesh: payload kind %d is not an event", kind)
	}
	env.Origin = r.str()
	env.Boot = r.Uint(math.MaxUint64)
	seqStart := r.I
	env.Seq = r.Uint(math.MaxUint64)
	seqEnd := r.I
	env.Name = r.str()
	if n := r.ArrayHeader(); r.Err == nil {
		if n > len(r.B)-r.I { // each id takes at least one byte
			r.Err = fmt.Errorf("a path of %d ids in %d bytes", n, len(r.B)-r.I)
		} else {
			env.Path = pathIn(pathBuf, n)
			for i := range env.Path {
				env.Path[i] = r.strOr(env.Origin)
			}
		}
	}
	argsStart := r.I
	if r.Err == nil {
		r.Err = skipArgs(&r.Reader)
		env.Args = b[argsStart:r.I]
	}
	if r.Err != nil {
		return fmt.Errorf("mesh: bad event payload: %w", r.Err)
	}
	if env.Origin == "" || len(env.Origin) > MaxOrigin || env.Boot == 0 || env.Seq < env.Boot {
		return fmt.Errorf("mesh: bad event identity (origin %q, boot %d, seq %d)", env.Origin, env.Boot, env.Seq)
	}
	if ps != nil {
		ps.last.remember(env, b, seqStart, seqEnd, argsStart)
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
// well formed, with nothing after it.
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

// lastEnvelope is what the last full parse learnt: the bytes before the seq
// (array header, kind, origin, boot) and between the seq and the args
// (name, path), and what they parsed to.
type lastEnvelope struct {
	pre, mid     []byte
	origin, name string
	boot         uint64
	path         []string
}

// parseAgain parses b into env if b shares the last envelope's bytes around
// its seq and is valid; false sends the caller to the full parse (which
// also says what is wrong with a bad payload).
func (h *lastEnvelope) parseAgain(env *Envelope, pathBuf []string, b []byte) bool {
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
	env.Origin, env.Boot, env.Seq, env.Name = h.origin, h.boot, seq, h.name
	env.Path = pathIn(pathBuf, len(h.path))
	copy(env.Path, h.path)
	env.Args = b[start:]
	return true
}

// remember keeps what a full parse of b into env learnt, for parseAgain.
func (h *lastEnvelope) remember(env *Envelope, b []byte, seqStart, seqEnd, argsStart int) {
	h.pre = append(h.pre[:0], b[:seqStart]...)
	h.mid = append(h.mid[:0], b[seqEnd:argsStart]...)
	h.origin, h.name, h.boot = env.Origin, env.Name, env.Boot
	h.path = append(h.path[:0], env.Path...)
}
