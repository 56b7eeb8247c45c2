package mesh

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/verbosemesh/verbose/internal/msgp"
)

// Event is one event as a handler sees it.
type Event struct {
	Name string
	// Args are the emitted arguments, decoded: string, int64/uint64,
	// float64, bool, nil, []byte, []any, map[string]any. Handlers of the
	// same event share them. The slice and small []byte values are regions
	// of buffers shared with neighbouring events (capped, so an append
	// copies): a handler that keeps them for long keeps up to 16 KiB alive,
	// and should copy what it keeps. Args is nil in an OnRaw handler, which
	// reads the arguments with Scan or RawArgs.
	Args []any
	// Origin is the NodeID of the emitter.
	Origin string
	// Seq is the origin's sequence number for this event; with Origin it is
	// the event's identity. It grows across restarts of the origin: a new
	// boot starts from the clock, above anything the previous boot used.
	Seq uint64

	raw codec.Raw // the msgpack array the args came from, for Scan and RawArgs
}

// RawArgs returns the msgpack array of the event's args exactly as the
// origin encoded it (nil for an Event built without one, as in a test).
// The bytes must not be modified: the handlers of the same event share
// them, and Scan reads them. In an On handler they are the handler's to
// keep (a region of a dispatcher buffer shared with neighbouring events, so
// keeping them keeps up to 16 KiB alive). In an OnRaw handler they are lent
// for the call: the node reuses them once the handler returns, so a handler
// that keeps them copies them (or keeps e.Clone()).
func (e Event) RawArgs() []byte {
	if len(e.raw) == 0 {
		return nil
	}
	return e.raw
}

// Clone returns a copy of e that owns its args' bytes: an OnRaw handler
// keeps an event past its return, to Scan it later, by keeping e.Clone().
func (e Event) Clone() Event {
	e.raw = slices.Clone(e.raw)
	return e
}

// wireHandle is the msgpack configuration of every mesh payload: new-spec
// str/bin, raw passthrough of already-encoded args, maps as map[string]any.
var wireHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.Raw = true
	h.MapType = reflect.TypeOf(map[string]any(nil))
	return h
}()

// Payload kinds carried in relay DATA frames; the tree's are in
// plumtree_wire.go.
const kindEvent = 1

// envelope is an event on the wire (PROTOCOL.md, "Mesh payloads").
type envelope struct {
	//lint:ignore U1000 the codec reads this field's tag: encode as an array
	_struct bool `codec:",toarray"`

	Kind   uint8
	Origin string
	Boot   uint64
	Seq    uint64
	Name   string
	Path   []string  // node ids the event has passed, origin first
	Args   codec.Raw // msgpack array, encoded once by the origin
}

var encPool = sync.Pool{New: func() any { return codec.NewEncoderBytes(nil, wireHandle) }}

func encodeValue(v any) ([]byte, error) {
	var out []byte
	enc := encPool.Get().(*codec.Encoder)
	enc.ResetBytes(&out)
	err := enc.Encode(v)
	encPool.Put(enc)
	return out, err
}

// argsBuf is one of Emit's scratch buffers for encoding args: the encoding
// is copied into the envelope's payload, so the buffer is reused at once.
// release is made once per buffer, so that handing it out costs nothing.
type argsBuf struct {
	b       []byte
	release func()
}

var argsPool sync.Pool

func init() {
	argsPool.New = func() any {
		ab := &argsBuf{b: make([]byte, 0, 512)}
		ab.release = func() {
			if cap(ab.b) <= 64<<10 { // do not pin a huge one-off buffer
				ab.b = ab.b[:0]
				argsPool.Put(ab)
			}
		}
		return ab
	}
}

// encodeArgs encodes args into a pooled buffer; release returns it. Plain
// values are encoded by appendArgs; anything else is first checked for what
// receivers could not decode (checkArgs), then encoded by go-msgpack. The
// error names the arg, or says the encoder failed.
func encodeArgs(args []any) (raw []byte, release func(), err error) {
	ab := argsPool.Get().(*argsBuf)
	var ok bool
	if ab.b, ok = appendArgs(ab.b[:0], args); !ok {
		if err := checkArgs(args); err != nil {
			return nil, ab.release, err
		}
		ab.b = ab.b[:0]
		enc := encPool.Get().(*codec.Encoder)
		enc.ResetBytes(&ab.b)
		// A copy, so that the caller's args slice (Emit's variadic one)
		// does not escape to the heap for the codec's sake.
		if err = enc.Encode(append([]any(nil), args...)); err != nil {
			err = fmt.Errorf("args: %v", err)
		}
		encPool.Put(enc)
	}
	return ab.b, ab.release, err
}

// appendArgs appends the msgpack array of args to dst exactly as go-msgpack
// encodes it with wireHandle, when every arg is a plain value (nil, bool,
// string, []byte, a sized or unsized int or uint, float32, float64); ok is
// false, and dst's new bytes are garbage, for anything else.
// TestAppendArgsMatchesGoMsgpack holds it to go-msgpack's bytes.
func appendArgs(dst []byte, args []any) (_ []byte, ok bool) {
	dst = msgp.AppendArrayHeader(dst, len(args))
	for _, a := range args {
		switch v := a.(type) {
		case nil:
			dst = append(dst, 0xc0)
		case bool:
			if v {
				dst = append(dst, 0xc3)
			} else {
				dst = append(dst, 0xc2)
			}
		case string:
			dst = msgp.AppendStr(dst, v)
		case []byte:
			if v == nil {
				dst = append(dst, 0xc0) // msgpack nil, as go-msgpack writes a nil slice
			} else {
				dst = msgp.AppendBin(dst, v)
			}
		case int:
			dst = msgp.AppendInt(dst, int64(v))
		case int8:
			dst = msgp.AppendInt(dst, int64(v))
		case int16:
			dst = msgp.AppendInt(dst, int64(v))
		case int32:
			dst = msgp.AppendInt(dst, int64(v))
		case int64:
			dst = msgp.AppendInt(dst, v)
		case uint:
			dst = msgp.AppendUint(dst, uint64(v))
		case uint8:
			dst = msgp.AppendUint(dst, uint64(v))
		case uint16:
			dst = msgp.AppendUint(dst, uint64(v))
		case uint32:
			dst = msgp.AppendUint(dst, uint64(v))
		case uint64:
			dst = msgp.AppendUint(dst, v)
		case float32:
			dst = binary.BigEndian.AppendUint32(append(dst, 0xca), math.Float32bits(v))
		case float64:
			dst = binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(v))
		default:
			return dst, false
		}
	}
	return dst, true
}

// encodeEnvelope encodes an EVENT payload (envelope.go) into a buffer of
// its own.
func encodeEnvelope(env *envelope) []byte {
	return appendEnvelope(make([]byte, 0, envelopeSize(env)), env)
}

var decPool = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, wireHandle) }}

// decodeWithCodec is go-msgpack's decoding of raw into v, with a pooled
// decoder (Scan takes it for every destination it does not decode by hand).
func decodeWithCodec(raw []byte, v any) error {
	dec := decPool.Get().(*codec.Decoder)
	dec.ResetBytes(raw)
	err := dec.Decode(v)
	decPool.Put(dec)
	return err
}

// checkArgs refuses what msgpack would encode wrongly or not at all:
// channels (the codec would drain them), functions, complex numbers and
// unsafe pointers, at any depth. Plain values take the fast path.
func checkArgs(args []any) error {
	for i, a := range args {
		switch a.(type) {
		case nil, string, []byte, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
			continue
		}
		if err := checkValue(reflect.ValueOf(a), 0); err != nil {
			return fmt.Errorf("arg %d: %w", i, err)
		}
	}
	return nil
}

func checkValue(v reflect.Value, depth int) error {
	if depth > 64 {
		return fmt.Errorf("nested more than 64 deep")
	}
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128, reflect.Invalid:
		if v.Kind() == reflect.Invalid {
			return nil
		}
		return fmt.Errorf("a %s cannot be sent", v.Type())
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return checkValue(v.Elem(), depth+1)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return nil
		}
		for i := range v.Len() {
			if err := checkValue(v.Index(i), depth+1); err != nil {
				return err
			}
		}
	case reflect.Map:
		if k := v.Type().Key().Kind(); k != reflect.String && k != reflect.Interface {
			return fmt.Errorf("a %s cannot be sent: map keys must be strings", v.Type())
		}
		it := v.MapRange()
		for it.Next() {
			if err := checkValue(it.Key(), depth+1); err != nil {
				return err
			}
			if err := checkValue(it.Value(), depth+1); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := checkValue(v.Field(i), depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
