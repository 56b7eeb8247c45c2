package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"reflect"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// Scan decodes the event's arguments into dst, in order, converting as
// go-msgpack does when it decodes the argument into that type (an integer
// into an *int if it fits, a map into a struct pointer). A nil dst skips
// its argument. It fails if there are fewer args than destinations, or if
// a destination is not a non-nil pointer.
//
//	var a string; var b int
//	err := e.Scan(&a, &b)
//
// Scan reads the args' msgpack bytes directly, without Args: it works in
// OnRaw handlers and costs no allocation for numbers, bools and a []byte
// into a destination with the capacity (its backing array is reused). A
// *string always gets a new string, and an *any a new value. The
// destinations escape (they may be handed to go-msgpack), so &local costs
// an allocation per call: a hot handler scans into variables that outlive
// it, such as its own struct's fields. What it decodes never shares the
// args' bytes, so it is the caller's to keep, also in an OnRaw handler
// (whose Event is valid only until the handler returns). For an Event with
// no wire bytes (built by hand, as in a test) it decodes from Args.
func (e Event) Scan(dst ...any) error {
	if len(e.raw) == 0 {
		return e.scanArgs(dst)
	}
	r := msgp.Reader{B: e.raw}
	n := r.ArrayHeader()
	if r.Err == nil && n > len(e.raw) {
		r.Err = msgp.ErrShort // each arg takes a byte at least
	}
	if r.Err != nil {
		return fmt.Errorf("mesh: scan %q: bad args: %w", e.Name, r.Err)
	}
	if len(dst) > n {
		return fmt.Errorf("mesh: scan %q: %d destinations for %d args", e.Name, len(dst), n)
	}
	for i, d := range dst {
		if p, ok := d.(*int64); ok && p != nil {
			// The commonest destination, read where it is: no Skip first.
			if x, n := int64At(e.raw[r.I:]); n > 0 {
				*p, r.I = x, r.I+n
				continue
			}
		}
		start := r.I
		if r.Skip(0); r.Err != nil {
			// Deeper than msgp allows (go-msgpack's limit is higher), or
			// malformed: let go-msgpack decide, as the dispatcher did.
			return e.scanCodec(dst, n)
		}
		if d == nil {
			continue
		}
		if err := scanValue(e.raw[start:r.I], d); err != nil {
			return e.scanError(i, d, err)
		}
	}
	return nil
}

// scanArgs is Scan of an Event without wire bytes: each arg is encoded and
// decoded into its destination by go-msgpack.
func (e Event) scanArgs(dst []any) error {
	if len(dst) > len(e.Args) {
		return fmt.Errorf("mesh: scan %q: %d destinations for %d args", e.Name, len(dst), len(e.Args))
	}
	var buf []byte
	for i, d := range dst {
		if d == nil {
			continue
		}
		if !isPointer(d) {
			return e.scanError(i, d, errNotPointer)
		}
		buf = buf[:0]
		if err := codec.NewEncoderBytes(&buf, wire.Handle).Encode(e.Args[i]); err != nil {
			return fmt.Errorf("mesh: scan %q arg %d: %w", e.Name, i, err)
		}
		if err := wire.DecodeValue(buf, d); err != nil {
			return e.scanError(i, d, err)
		}
	}
	return nil
}

// scanCodec is Scan for args msgp cannot split: go-msgpack splits them.
func (e Event) scanCodec(dst []any, n int) error {
	var args []codec.Raw
	if err := wire.DecodeValue(e.raw, &args); err != nil {
		return fmt.Errorf("mesh: scan %q: bad args: %w", e.Name, err)
	}
	if len(args) != n || len(dst) > n {
		return fmt.Errorf("mesh: scan %q: %d destinations for %d args", e.Name, len(dst), len(args))
	}
	for i, d := range dst {
		if d == nil {
			continue
		}
		if err := scanValue(args[i], d); err != nil {
			return e.scanError(i, d, err)
		}
	}
	return nil
}

// errNotPointer is scanValue's refusal of a destination it cannot set; the
// message Scan gives names the event and the index.
var errNotPointer = errors.New("mesh: not a non-nil pointer")

func (e Event) scanError(i int, d any, err error) error {
	if err == errNotPointer {
		return fmt.Errorf("mesh: scan %q: destination %d is not a non-nil pointer", e.Name, i)
	}
	return fmt.Errorf("mesh: scan %q arg %d into %T: %w", e.Name, i, d, err)
}

func isPointer(d any) bool {
	rv := reflect.ValueOf(d)
	return rv.Kind() == reflect.Pointer && !rv.IsNil()
}

// scanValue decodes one msgpack value b into d. The common destinations
// are decoded by hand when b is what go-msgpack would accept without
// question; everything else, errors included, is go-msgpack's decoding of
// b, so that results and errors are always its own (FuzzScan holds the
// hand-written part to that).
func scanValue(b []byte, d any) error {
	var ok bool // decoded by hand; a nil pointer is never ok
	switch v := d.(type) {
	case *int64:
		ok = setInt(v, b, 64)
	case *int:
		ok = setInt(v, b, bits.UintSize)
	case *int32:
		ok = setInt(v, b, 32)
	case *int16:
		ok = setInt(v, b, 16)
	case *int8:
		ok = setInt(v, b, 8)
	case *uint64:
		ok = setUint(v, b, 64)
	case *uint:
		ok = setUint(v, b, bits.UintSize)
	case *uint32:
		ok = setUint(v, b, 32)
	case *uint16:
		ok = setUint(v, b, 16)
	case *uint8:
		ok = setUint(v, b, 8)
	case *float64:
		var x float64
		if x, ok = scanFloat(b); ok && v != nil {
			*v = x
		}
	case *float32:
		// go-msgpack refuses a finite value beyond float32's range.
		x, isFloat := scanFloat(b)
		if ok = isFloat && (math.Abs(x) <= math.MaxFloat32 || math.IsInf(x, 0) || math.IsNaN(x)) && v != nil; ok {
			*v = float32(x)
		}
	case *bool:
		switch b[0] {
		case 0xc0, 0xc2, 0x00: // go-msgpack takes fixints 0 and 1 as bools
			ok = setBool(v, false)
		case 0xc3, 0x01:
			ok = setBool(v, true)
		}
	case *string:
		var s []byte
		if s, ok = scanBytes(b); ok && v != nil {
			*v = string(s)
		}
	case *[]byte:
		var s []byte
		if s, ok = scanBytes(b); ok && v != nil {
			switch {
			case b[0] == 0xc0:
				*v = nil
			case len(s) == 0:
				// go-msgpack gives an empty, non-nil slice.
				if *v = (*v)[:0]; *v == nil {
					*v = []byte{}
				}
			default:
				*v = append((*v)[:0], s...)
			}
		}
	case *any:
		// A non-nil *v is decoded into by go-msgpack, by its own rules.
		if v != nil && *v == nil {
			var x any
			if x, ok = wire.DecodeAny(b); ok {
				*v = x
			}
		}
	}
	switch {
	case ok:
		return nil
	case !isPointer(d):
		return errNotPointer
	}
	return wire.DecodeValue(b, d)
}

func setInt[T ~int | ~int8 | ~int16 | ~int32 | ~int64](p *T, b []byte, width uint) bool {
	x, ok := scanInt(b, width)
	if ok && p != nil {
		*p = T(x)
		return true
	}
	return false
}

func setUint[T ~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64](p *T, b []byte, width uint) bool {
	x, ok := scanUint(b, width)
	if ok && p != nil {
		*p = T(x)
		return true
	}
	return false
}

func setBool(p *bool, x bool) bool {
	if p == nil {
		return false
	}
	*p = x
	return true
}

// scanInt reads an integer as go-msgpack's DecodeInt64 does (a uint 64
// above MaxInt64 wraps, as there) and checks that it fits width bits; nil
// is the zero value, as go-msgpack sets it. ok is false for anything else.
func scanInt(b []byte, width uint) (int64, bool) {
	x, n := int64At(b)
	switch {
	case n == 0:
		return 0, len(b) > 0 && b[0] == 0xc0
	case width < 64 && x != x<<(64-width)>>(64-width):
		return 0, false // overflow: go-msgpack's error
	}
	return x, true
}

// int64At reads the integer at the start of b as go-msgpack's DecodeInt64
// does (a uint 64 above MaxInt64 wraps, as there), and returns its length;
// 0 for anything else (nil included). Scan reads an *int64 with it where
// the value stands, scanInt any integer destination.
func int64At(b []byte) (int64, int) {
	if len(b) == 0 {
		return 0, 0
	}
	switch c := b[0]; {
	case c <= 0x7f || c >= 0xe0:
		return int64(int8(c)), 1
	case (c == 0xcf || c == 0xd3) && len(b) >= 9:
		return int64(binary.BigEndian.Uint64(b[1:9])), 9
	case c == 0xcc && len(b) >= 2:
		return int64(b[1]), 2
	case c == 0xd0 && len(b) >= 2:
		return int64(int8(b[1])), 2
	case c == 0xcd && len(b) >= 3:
		return int64(binary.BigEndian.Uint16(b[1:3])), 3
	case c == 0xd1 && len(b) >= 3:
		return int64(int16(binary.BigEndian.Uint16(b[1:3]))), 3
	case c == 0xce && len(b) >= 5:
		return int64(binary.BigEndian.Uint32(b[1:5])), 5
	case c == 0xd2 && len(b) >= 5:
		return int64(int32(binary.BigEndian.Uint32(b[1:5]))), 5
	}
	return 0, 0
}

// scanUint reads an unsigned integer as go-msgpack's DecodeUint64 does
// (msgp's Uint: a negative signed value is refused); nil is zero.
func scanUint(b []byte, width uint) (uint64, bool) {
	if b[0] == 0xc0 {
		return 0, true
	}
	r := msgp.Reader{B: b}
	x := r.Uint(math.MaxUint64 >> (64 - width))
	return x, r.Err == nil
}

// scanFloat reads a float32, a float64 or, as go-msgpack does, an integer
// by DecodeInt64's rules.
func scanFloat(b []byte) (float64, bool) {
	r := msgp.Reader{B: b, I: 1}
	switch b[0] {
	case 0xca:
		return float64(math.Float32frombits(uint32(r.BE(4)))), true
	case 0xcb:
		return math.Float64frombits(r.BE(8)), true
	}
	x, ok := scanInt(b, 64)
	return float64(x), ok
}

// scanBytes returns the payload of a str or bin (nil for msgpack nil); ok
// is false for anything else (go-msgpack also reads an array of small
// integers as bytes: it decides those).
func scanBytes(b []byte) ([]byte, bool) {
	r := msgp.Reader{B: b}
	s := r.Bytes()
	return s, r.Err == nil
}
