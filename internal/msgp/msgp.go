// Package msgp is the msgpack subset verbose writes and reads by hand on
// the path of every event: relay's frames and mesh's event envelopes and
// args. It has no state; encoding appends to a caller's buffer, and Reader
// reads values from a byte slice with a sticky first error. The bytes it
// writes are go-msgpack's for the same values (relay's and mesh's codec
// tests hold both packages to that); go-msgpack itself serves everything
// else (control payloads, tree messages, the destinations Event.Scan does
// not decode by hand).
package msgp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrShort is the error of a value cut short.
var ErrShort = errors.New("truncated")

// AppendArrayHeader appends an array header of n elements.
func AppendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xdc), uint16(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

// AppendStr appends s as fixstr or str 8/16/32.
func AppendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

// AppendBin appends b as bin 8/16/32 (a nil b as an empty bin: callers
// that mean msgpack nil write 0xc0 themselves).
func AppendBin(dst, b []byte) []byte {
	switch n := len(b); {
	case n <= math.MaxUint8:
		dst = append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xc5), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
	}
	return append(dst, b...)
}

// AppendUint appends v in the smallest unsigned encoding.
func AppendUint(dst []byte, v uint64) []byte {
	switch {
	case v <= math.MaxInt8:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// AppendUint64 appends v as a uint 64 whatever its value, so that the
// encoding's size does not depend on it.
func AppendUint64(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

// AppendInt is go-msgpack's choice for a signed integer: a fixint when it
// fits, else the smallest signed width (never an unsigned type, even for
// positives).
func AppendInt(dst []byte, v int64) []byte {
	switch {
	case v >= -32 && v <= math.MaxInt8:
		return append(dst, byte(v))
	case v >= math.MinInt8 && v < 0:
		return append(dst, 0xd0, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(v))
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
}

// Reader reads msgpack values from B, from I on. The first error sticks in
// Err: after it every read returns zero values. Every length is checked
// against the bytes left before it is used, so a hostile length never
// causes an allocation or a long loop.
type Reader struct {
	B   []byte
	I   int
	Err error
}

// Take returns the next n bytes, capped to them (nil once Err is set).
func (r *Reader) Take(n int) []byte {
	if !r.Need(n) {
		return nil
	}
	p := r.B[r.I : r.I+n : r.I+n]
	r.I += n
	return p
}

// Need reports whether n more bytes are left, setting ErrShort if not.
func (r *Reader) Need(n int) bool {
	if r.Err != nil {
		return false
	}
	if n < 0 || len(r.B)-r.I < n {
		r.Err = ErrShort
		return false
	}
	return true
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if !r.Need(1) {
		return 0
	}
	c := r.B[r.I]
	r.I++
	return c
}

// BE reads an n-byte big-endian integer, n one of 1, 2, 4 or 8.
func (r *Reader) BE(n int) uint64 {
	if r.Err != nil || len(r.B)-r.I < n {
		if r.Err == nil {
			r.Err = ErrShort
		}
		return 0
	}
	b := r.B[r.I:]
	r.I += n
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

// Uint reads a non-negative integer of any msgpack width, at most max.
func (r *Reader) Uint(max uint64) uint64 {
	c := r.Byte()
	var v uint64
	switch {
	case r.Err != nil:
		return 0
	case c <= 0x7f:
		v = uint64(c)
	case c >= 0xcc && c <= 0xcf:
		v = r.BE(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v = r.BE(n)
		if r.Err == nil && v>>(8*n-1)&1 == 1 {
			r.Err = errors.New("a negative integer")
		}
	default:
		r.Err = fmt.Errorf("type 0x%02x, want an integer", c)
	}
	if r.Err == nil && v > max {
		r.Err = fmt.Errorf("integer %d out of range", v)
	}
	return v
}

// Bytes reads a str or a bin and returns its bytes, a capped region of B;
// msgpack nil reads as nil. Both kinds are taken: old-spec encoders
// (go-msgpack without WriteExt) write []byte as str.
func (r *Reader) Bytes() []byte {
	c := r.Byte()
	var n int
	switch {
	case r.Err != nil, c == 0xc0:
		return nil
	case c&0xe0 == 0xa0:
		n = int(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n = int(r.BE(1))
	case c == 0xda || c == 0xc5:
		n = int(r.BE(2))
	case c == 0xdb || c == 0xc6:
		n = int(r.BE(4))
	default:
		r.Err = fmt.Errorf("type 0x%02x, want a str or bin", c)
		return nil
	}
	return r.Take(n)
}

// Int reads the body of a signed integer whose type byte c (0xd0 to
// 0xd3: int 8, 16, 32, 64) was just read.
func (r *Reader) Int(c byte) int64 {
	n := 1 << (c - 0xd0)
	shift := 64 - 8*n
	return int64(r.BE(n)<<shift) >> shift
}

// StrLen reads the length of a str whose type byte c was just read.
func (r *Reader) StrLen(c byte) int {
	switch {
	case c&0xe0 == 0xa0:
		return int(c & 0x1f)
	case c == 0xd9:
		return int(r.BE(1))
	case c == 0xda:
		return int(r.BE(2))
	case c == 0xdb:
		return int(r.BE(4))
	}
	if r.Err == nil {
		r.Err = fmt.Errorf("type 0x%02x, want a string", c)
	}
	return 0
}

// ArrayHeader reads an array header and returns its element count.
func (r *Reader) ArrayHeader() int {
	c := r.Byte()
	switch {
	case r.Err != nil:
		return 0
	case c&0xf0 == 0x90:
		return int(c & 0x0f)
	case c == 0xdc:
		return int(r.BE(2))
	case c == 0xdd:
		return int(r.BE(4))
	}
	r.Err = fmt.Errorf("type 0x%02x, want an array", c)
	return 0
}

// Skip moves past one well-formed msgpack value.
//
// It is on the path of every event (the envelope's args are skipped, not
// decoded), so the values that hold no others and declare their size in
// their first byte or two (ints, floats, bools, nil, strs and bins of up to
// 255 bytes) are skipped through a table; the rest take skipValue.
func (r *Reader) Skip(depth int) {
	if r.I < len(r.B) {
		if end := fixedEnd(r.B, r.I); end >= 0 {
			r.I = end
			return
		}
	}
	r.skipValue(depth)
}

// SkipN skips n values, as n calls of Skip(0) do, in one loop: the
// envelope's args, on the path of every event, are mostly a few scalars.
func (r *Reader) SkipN(n int) {
	b, i := r.B, r.I
	for ; n > 0 && i < len(b); n-- {
		end := fixedEnd(b, i)
		if end < 0 {
			break
		}
		i = end
	}
	r.I = i
	for ; n > 0 && r.Err == nil; n-- {
		r.skipValue(0)
	}
}

// fixedEnd is where the value at b[i] ends when skipFixed knows its size
// and b holds all of it, else -1 (skipValue's case).
func fixedEnd(b []byte, i int) int {
	n := int(skipFixed[b[i]])
	if n == skipLen8 && i+1 < len(b) {
		n = 1 + int(b[i+1])
	}
	if n < 0 || n >= len(b)-i {
		return -1
	}
	return i + 1 + n
}

// skipFixed is, for a value's first byte, the bytes that follow it when
// that is known from the first byte (skipLen8: from the next one, str8 and
// bin8), or skipOther.
var skipFixed = func() (t [256]int8) {
	for c := range t {
		switch {
		case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
			t[c] = 0
		case c&0xe0 == 0xa0:
			t[c] = int8(c & 0x1f)
		case c == 0xcc || c == 0xd0:
			t[c] = 1
		case c == 0xcd || c == 0xd1:
			t[c] = 2
		case c == 0xca || c == 0xce || c == 0xd2:
			t[c] = 4
		case c == 0xcb || c == 0xcf || c == 0xd3:
			t[c] = 8
		case c == 0xc4 || c == 0xd9:
			t[c] = skipLen8
		default:
			t[c] = skipOther
		}
	}
	return t
}()

const (
	skipOther = -1
	skipLen8  = -2
)

// skipValue is Skip for any value, and for a value cut short.
func (r *Reader) skipValue(depth int) {
	if depth > 64 {
		r.Err = errors.New("nested more than 64 deep")
		return
	}
	c := r.Byte()
	if r.Err != nil {
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
		n = int(r.BE(1))
	case c == 0xc5 || c == 0xda:
		n = int(r.BE(2))
	case c == 0xc6 || c == 0xdb:
		n = int(r.BE(4))
	case c == 0xcc || c == 0xd0:
		n = 1
	case c == 0xcd || c == 0xd1:
		n = 2
	case c == 0xca || c == 0xce || c == 0xd2:
		n = 4
	case c == 0xcb || c == 0xcf || c == 0xd3:
		n = 8
	case c == 0xdc:
		elems = int(r.BE(2))
	case c == 0xdd:
		elems = int(r.BE(4))
	case c == 0xde:
		elems = 2 * int(r.BE(2))
	case c == 0xdf:
		elems = 2 * int(r.BE(4))
	case c >= 0xd4 && c <= 0xd8: // fixext 1, 2, 4, 8, 16
		n = 1 + 1<<(c-0xd4)
	case c == 0xc7:
		n = 1 + int(r.BE(1))
	case c == 0xc8:
		n = 1 + int(r.BE(2))
	case c == 0xc9:
		n = 1 + int(r.BE(4))
	default: // 0xc1 is never used
		r.Err = fmt.Errorf("type 0x%02x is not msgpack", c)
		return
	}
	if elems > len(r.B)-r.I { // each value takes at least one byte
		r.Err = ErrShort
		return
	}
	if r.Need(n) {
		r.I += n
	}
	for ; elems > 0 && r.Err == nil; elems-- {
		r.Skip(depth + 1)
	}
}
