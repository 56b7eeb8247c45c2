package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"reflect"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/verbosemesh/verbose/internal/msgp"
)

// Handle is the msgpack configuration of every payload and args array that
// goes through go-msgpack: new-spec str/bin, raw passthrough of
// already-encoded args, maps as map[string]any.
var Handle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{WriteExt: true}
	h.Raw = true
	h.MapType = reflect.TypeOf(map[string]any(nil))
	return h
}()

var (
	encPool = sync.Pool{New: func() any { return codec.NewEncoderBytes(nil, Handle) }}
	decPool = sync.Pool{New: func() any { return codec.NewDecoderBytes(nil, Handle) }}
)

// EncodeValue is go-msgpack's encoding of v, with a pooled encoder.
func EncodeValue(v any) ([]byte, error) {
	var out []byte
	enc := encPool.Get().(*codec.Encoder)
	enc.ResetBytes(&out)
	err := enc.Encode(v)
	encPool.Put(enc)
	return out, err
}

// DecodeValue is go-msgpack's decoding of raw into v, with a pooled decoder.
func DecodeValue(raw []byte, v any) error {
	dec := decPool.Get().(*codec.Decoder)
	dec.ResetBytes(raw)
	err := dec.Decode(v)
	decPool.Put(dec)
	return err
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

// EncodeArgs encodes args into a pooled buffer; release returns it. Plain
// values are encoded by AppendArgs; anything else is first checked for what
// receivers could not decode (CheckArgs), then encoded by go-msgpack. The
// error names the arg, or says the encoder failed.
func EncodeArgs(args []any) (raw []byte, release func(), err error) {
	ab := argsPool.Get().(*argsBuf)
	var ok bool
	if ab.b, ok = AppendArgs(ab.b[:0], args); !ok {
		if err := CheckArgs(args); err != nil {
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

// AppendArgs appends the msgpack array of args to dst exactly as go-msgpack
// encodes it with Handle, when every arg is a plain value (nil, bool,
// string, []byte, a sized or unsized int or uint, float32, float64); ok is
// false, and dst's new bytes are garbage, for anything else.
// TestAppendArgsMatchesGoMsgpack holds it to go-msgpack's bytes.
func AppendArgs(dst []byte, args []any) (_ []byte, ok bool) {
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

// CheckArgs refuses what msgpack would encode wrongly or not at all:
// channels (the codec would drain them), functions, complex numbers and
// unsafe pointers, at any depth. Plain values take the fast path.
func CheckArgs(args []any) error {
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
	case reflect.Invalid:
		return nil
	case reflect.Chan, reflect.Func, reflect.UnsafePointer, reflect.Complex64, reflect.Complex128:
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
