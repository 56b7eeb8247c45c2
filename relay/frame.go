package relay

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/verbosemesh/verbose/internal/msgp"
)

// FrameType is the first element of every frame's msgpack array.
type FrameType uint8

// Frame types of protocol version 1 (PROTOCOL.md).
const (
	FrameHello  FrameType = 1 // [1, version, channel, nodeID, boot, ack, ackBoot, window, maxFrame]
	FrameReject FrameType = 2 // [2, reason]
	FrameData   FrameType = 3 // [3, seq, payload]
	FrameAck    FrameType = 4 // [4, seq]
	// Type 5 is reserved: it was an unsequenced CTRL frame that nothing
	// sent; it is malformed now, as any unknown type.
)

func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "HELLO"
	case FrameReject:
		return "REJECT"
	case FrameData:
		return "DATA"
	case FrameAck:
		return "ACK"
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// Frame is one decoded frame; only the fields of its Type are meaningful.
type Frame struct {
	Type    FrameType
	Hello   Hello  // HELLO
	Reason  string // REJECT
	Seq     uint64 // DATA, ACK
	Payload []byte // DATA
}

// frameFields is the msgpack array length of each type.
var frameFields = [...]int{FrameHello: 9, FrameReject: 2, FrameData: 3, FrameAck: 2}

// dataOverhead bounds the bytes a DATA body adds to its payload:
// fixarray + type + uint64 seq + bin32 header.
const dataOverhead = 1 + 1 + 9 + 5

// The codec is hand-rolled for the five fixed array shapes: go-msgpack's
// reflection costs several allocations per frame on the hot path (see
// BenchmarkDecodeDataCodec). The bytes are plain msgpack, smallest encodings
// first, and tests check both directions against go-msgpack's MsgpackHandle.

// AppendFrame appends f, length prefix included, to dst.
func AppendFrame(dst []byte, f Frame) []byte {
	if f.Type == FrameData {
		return appendData(dst, f.Seq, f.Payload)
	}
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	n := 0
	if int(f.Type) < len(frameFields) {
		n = frameFields[f.Type]
	}
	dst = append(dst, 0x90|byte(n))
	dst = append(dst, byte(f.Type))
	switch f.Type {
	case FrameHello:
		h := f.Hello
		dst = msgp.AppendUint(dst, uint64(max(h.Version, 0)))
		dst = msgp.AppendStr(dst, h.Channel)
		dst = msgp.AppendStr(dst, h.NodeID)
		dst = msgp.AppendUint(dst, h.Boot)
		dst = msgp.AppendUint(dst, h.Ack)
		dst = msgp.AppendUint(dst, h.AckBoot)
		dst = msgp.AppendUint(dst, uint64(max(h.Window, 0)))
		dst = msgp.AppendUint(dst, uint64(max(h.MaxFrame, 0)))
	case FrameReject:
		dst = msgp.AppendStr(dst, f.Reason)
	case FrameData:
		dst = msgp.AppendUint(dst, f.Seq)
		dst = msgp.AppendBin(dst, f.Payload)
	case FrameAck:
		dst = msgp.AppendUint(dst, f.Seq)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// appendData is AppendFrame of a DATA frame, the one a busy link writes
// per event: without building a Frame (a Hello's worth of fields) for it.
func appendData(dst []byte, seq uint64, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0x90|byte(frameFields[FrameData]), byte(FrameData))
	dst = msgp.AppendUint(dst, seq)
	dst = msgp.AppendBin(dst, payload)
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// ReadFrame reads one frame. A declared length over maxSize fails with
// ErrFrameTooLarge before anything is allocated; a body that is not a valid
// version-1 frame fails with ErrBadFrame. The returned Payload aliases a
// fresh buffer owned by the caller.
func ReadFrame(r io.Reader, maxSize int) (Frame, error) {
	n, err := readLength(r)
	if err != nil {
		return Frame{}, err
	}
	if uint64(n) > uint64(maxSize) {
		return Frame{}, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return DecodeFrame(body)
}

// readLength reads the 4-byte prefix; from a bufio.Reader (the handshake's case)
// without the allocation an escaping header array would cost per frame.
func readLength(r io.Reader) (uint32, error) {
	if br, ok := r.(*bufio.Reader); ok {
		p, err := br.Peek(4)
		if err != nil {
			if len(p) > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		n := binary.BigEndian.Uint32(p)
		_, _ = br.Discard(4)
		return n, nil
	}
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(hdr[:]), nil
}

// DecodeFrame decodes one frame body (without its length prefix). Payload
// and strings alias or copy from body; body must not be reused while the
// payload is in use.
func DecodeFrame(body []byte) (Frame, error) {
	d := decoder{msgp.Reader{B: body}}
	n := d.ArrayHeader()
	t := FrameType(d.uint())
	if d.Err != nil {
		return Frame{}, d.fail("frame header")
	}
	if t == 0 || int(t) >= len(frameFields) {
		return Frame{}, fmt.Errorf("%w: unknown frame type %d", ErrBadFrame, uint64(t))
	}
	if n != frameFields[t] {
		return Frame{}, fmt.Errorf("%w: %s has %d fields, want %d", ErrBadFrame, t, n, frameFields[t])
	}
	f := Frame{Type: t}
	switch t {
	case FrameHello:
		h := &f.Hello
		h.Version = d.int()
		h.Channel = d.str()
		h.NodeID = d.str()
		h.Boot = d.uint()
		h.Ack = d.uint()
		h.AckBoot = d.uint()
		h.Window = d.int()
		h.MaxFrame = d.int()
	case FrameReject:
		f.Reason = d.str()
	case FrameData:
		f.Seq = d.uint()
		f.Payload = d.bytes()
	case FrameAck:
		f.Seq = d.uint()
	}
	if d.Err != nil {
		return Frame{}, d.fail(t.String())
	}
	if left := len(d.B) - d.I; left != 0 {
		return Frame{}, fmt.Errorf("%w: %d trailing bytes after %s", ErrBadFrame, left, t)
	}
	return f, nil
}

// decodeData decodes a DATA frame body as DecodeFrame does, for the one
// shape a busy link reads per event (fixarray, fixint type), without
// building a Frame (a Hello's worth of fields, copied twice per frame). ok
// is false for anything else: the caller then takes DecodeFrame, which
// decodes the other shapes and says what is wrong with a bad one.
func decodeData(body []byte) (seq uint64, payload []byte, ok bool) {
	if len(body) < 2 || body[0] != 0x90|byte(frameFields[FrameData]) || body[1] != byte(FrameData) {
		return 0, nil, false
	}
	d := decoder{msgp.Reader{B: body, I: 2}}
	seq = d.uint()
	payload = d.bytes()
	if d.Err != nil || d.I != len(body) {
		return 0, nil, false
	}
	return seq, payload, true
}

// decoder reads the fields of a frame: msgp's reader, with the frames'
// rules for integers, strings and payloads.
type decoder struct{ msgp.Reader }

func (d *decoder) fail(what string) error {
	return fmt.Errorf("%w: %s: %v", ErrBadFrame, what, d.Err)
}

// uint accepts every msgpack integer encoding of a non-negative value.
func (d *decoder) uint() uint64 { return d.Uint(math.MaxUint64) }

func (d *decoder) int() int { return int(d.Uint(math.MaxInt32)) }

// str and bytes read a str or a bin (msgp's Bytes): old-spec encoders
// write []byte as str; nil is an empty value.
func (d *decoder) str() string { return string(d.Bytes()) }

func (d *decoder) bytes() []byte {
	p := d.Bytes()
	if p == nil && d.Err == nil {
		return []byte{}
	}
	return p
}
