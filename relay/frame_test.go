package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

var sampleFrames = []Frame{
	{Type: FrameHello, Hello: Hello{Version: 1, Channel: "default", NodeID: "node-a", Boot: 1<<63 + 5, Ack: 70000, AckBoot: 42, Window: 1000, MaxFrame: 1 << 20}},
	{Type: FrameHello, Hello: Hello{Version: 1, Channel: strings.Repeat("c", 40), NodeID: strings.Repeat("n", 300), Boot: 1, Window: 1, MaxFrame: 256}},
	{Type: FrameReject, Reason: `relay: channel mismatch: remote "x", local "y"`},
	{Type: FrameData, Seq: 1, Payload: []byte("hello")},
	{Type: FrameData, Seq: 1 << 40, Payload: bytes.Repeat([]byte{7}, 300)},
	{Type: FrameData, Seq: 200, Payload: bytes.Repeat([]byte{9}, 70000)},
	{Type: FrameData, Seq: 3, Payload: []byte{}},
	{Type: FrameAck, Seq: 0},
	{Type: FrameAck, Seq: 65536},
}

func TestFrameRoundTrip(t *testing.T) {
	var wire []byte
	for _, f := range sampleFrames {
		wire = AppendFrame(wire, f)
	}
	r := bytes.NewReader(wire)
	for i, want := range sampleFrames {
		got, err := ReadFrame(r, 1<<20)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := ReadFrame(r, 1<<20); err != io.EOF {
		t.Fatalf("after the last frame: got %v, want io.EOF", err)
	}
}

// msgpackFields is the frame as the generic msgpack array it is.
func msgpackFields(f Frame) []any {
	switch f.Type {
	case FrameHello:
		h := f.Hello
		return []any{uint64(1), uint64(h.Version), h.Channel, h.NodeID, h.Boot, h.Ack, h.AckBoot, uint64(h.Window), uint64(h.MaxFrame)}
	case FrameReject:
		return []any{uint64(2), f.Reason}
	case FrameData:
		return []any{uint64(3), f.Seq, f.Payload}
	case FrameAck:
		return []any{uint64(4), f.Seq}
	}
	return nil
}

// normalize maps go-msgpack's generic decoding (ints as int64 or uint64,
// strings as []byte or string) onto uint64 and string.
func normalize(v []any) []any {
	out := make([]any, len(v))
	for i, x := range v {
		switch x := x.(type) {
		case int64:
			out[i] = uint64(x)
		case []byte:
			out[i] = string(x)
		case string:
			out[i] = x
		default:
			out[i] = x
		}
	}
	return out
}

// The wire format is msgpack as go-msgpack reads and writes it: our bytes
// decode with go-msgpack, and go-msgpack's encoding decodes with ours.
func TestFrameMatchesGoMsgpack(t *testing.T) {
	for _, h := range []*codec.MsgpackHandle{{}, {WriteExt: true}} {
		for i, f := range sampleFrames {
			body := AppendFrame(nil, f)[4:]
			var generic []any
			if err := codec.NewDecoderBytes(body, h).Decode(&generic); err != nil {
				t.Fatalf("frame %d: go-msgpack cannot decode our bytes: %v", i, err)
			}
			if got, want := normalize(generic), normalize(msgpackFields(f)); !reflect.DeepEqual(got, want) {
				t.Fatalf("frame %d: go-msgpack read %v, want %v", i, got, want)
			}
			var enc []byte
			if err := codec.NewEncoderBytes(&enc, h).Encode(msgpackFields(f)); err != nil {
				t.Fatal(err)
			}
			got, err := DecodeFrame(enc)
			if err != nil {
				t.Fatalf("frame %d (WriteExt=%v): our decoder rejects go-msgpack bytes % x: %v", i, h.WriteExt, enc, err)
			}
			if f.Payload != nil && len(f.Payload) == 0 {
				got.Payload = []byte{} // go-msgpack may write an empty []byte as nil
			}
			if !reflect.DeepEqual(got, f) {
				t.Fatalf("frame %d: decoded %+v, want %+v", i, got, f)
			}
		}
	}
}

func TestReadFrameErrors(t *testing.T) {
	prefix := func(n uint32, body ...byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), body...)
	}
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"over the limit", prefix(1<<20 + 1), ErrFrameTooLarge},
		{"max uint32 length", prefix(0xffffffff), ErrFrameTooLarge},
		{"empty body", prefix(0), ErrBadFrame},
		{"not an array", prefix(1, 0x01), ErrBadFrame},
		{"unknown type", prefix(3, 0x92, 0x09, 0x00), ErrBadFrame},
		{"zero type", prefix(2, 0x91, 0x00), ErrBadFrame},
		{"wrong field count", prefix(4, 0x93, 0x04, 0x01, 0x02), ErrBadFrame},
		{"negative seq", prefix(3, 0x92, 0x04, 0xff), ErrBadFrame},
		{"negative int16 seq", prefix(5, 0x92, 0x04, 0xd1, 0x80, 0x00), ErrBadFrame},
		{"payload length past the end", prefix(7, 0x93, 0x03, 0x01, 0xc6, 0x7f, 0xff, 0xff), ErrBadFrame},
		{"trailing bytes", prefix(4, 0x92, 0x04, 0x01, 0x00), ErrBadFrame},
		{"truncated body", prefix(10, 0x92), io.ErrUnexpectedEOF},
		{"truncated prefix", []byte{0, 0}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bytes.NewReader(tt.wire), 1<<20)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			_, err = ReadFrame(bufio.NewReader(bytes.NewReader(tt.wire)), 1<<20)
			if !errors.Is(err, tt.want) {
				t.Fatalf("via bufio: got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(nil)), 1<<20); err != io.EOF {
		t.Fatalf("clean end via bufio: %v", err)
	}
}

// A hostile length prefix must not make ReadFrame allocate it.
func TestReadFrameTooLargeAllocatesNothing(t *testing.T) {
	wire := binary.BigEndian.AppendUint32(nil, 1<<30)
	if b := allocBytes(func() { _, _ = ReadFrame(bytes.NewReader(wire), 1<<20) }); b > 64<<10 { // noise from the runtime, far from the 1 GiB
		t.Fatalf("refusing a 1 GiB frame allocated %d bytes", b)
	}
}

func allocBytes(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func FuzzReadFrame(f *testing.F) {
	for _, fr := range sampleFrames {
		f.Add(AppendFrame(nil, fr))
	}
	f.Add([]byte{0, 0, 0, 3, 0x92, 0x04, 0xcf})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	const limit = 4096
	f.Fuzz(func(t *testing.T, wire []byte) {
		r := bytes.NewReader(wire)
		for {
			fr, err := ReadFrame(r, limit)
			if err != nil {
				return
			}
			// A frame that decodes re-encodes to a frame that decodes the same.
			again, err := ReadFrame(bytes.NewReader(AppendFrame(nil, fr)), limit+64)
			if err != nil {
				t.Fatalf("re-encoded %+v fails: %v", fr, err)
			}
			if !reflect.DeepEqual(normalizeFrame(again), normalizeFrame(fr)) {
				t.Fatalf("round trip: %+v != %+v", again, fr)
			}
		}
	})
}

func normalizeFrame(f Frame) Frame {
	if f.Payload != nil && len(f.Payload) == 0 {
		f.Payload = nil
	}
	return f
}

var benchPayload = bytes.Repeat([]byte("e"), 200)

func BenchmarkEncodeData(b *testing.B) {
	b.ReportAllocs()
	var buf []byte
	for i := 0; b.Loop(); i++ {
		buf = AppendFrame(buf[:0], Frame{Type: FrameData, Seq: uint64(i) + 1<<20, Payload: benchPayload})
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkDecodeData(b *testing.B) {
	wire := AppendFrame(nil, Frame{Type: FrameData, Seq: 1 << 20, Payload: benchPayload})
	r := bytes.NewReader(wire)
	br := bufio.NewReader(r) // as the link reads
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		r.Reset(wire)
		br.Reset(r)
		if _, err := ReadFrame(br, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// The link reader's decoding of a DATA body: the shortcut, and DecodeFrame.
func BenchmarkDecodeDataBody(b *testing.B) {
	body := appendData(nil, 1<<20, benchPayload)[4:]
	b.Run("decodeData", func(b *testing.B) {
		for b.Loop() {
			if _, _, ok := decodeData(body); !ok {
				b.Fatal("not a DATA body")
			}
		}
	})
	b.Run("DecodeFrame", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeFrame(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The go-msgpack baselines the hand-rolled codec is measured against.
func BenchmarkEncodeDataCodec(b *testing.B) {
	h := &codec.MsgpackHandle{WriteExt: true}
	var buf []byte
	enc := codec.NewEncoderBytes(&buf, h)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = buf[:0]
		enc.ResetBytes(&buf)
		if err := enc.Encode([]any{uint64(3), uint64(i) + 1<<20, benchPayload}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeDataCodec(b *testing.B) {
	body := AppendFrame(nil, Frame{Type: FrameData, Seq: 1 << 20, Payload: benchPayload})[4:]
	h := &codec.MsgpackHandle{WriteExt: true}
	dec := codec.NewDecoderBytes(body, h)
	b.ReportAllocs()
	for b.Loop() {
		var v []any
		dec.ResetBytes(body)
		if err := dec.Decode(&v); err != nil {
			b.Fatal(err)
		}
	}
}

// decodeData, the reader's shortcut for DATA frames, accepts only what
// DecodeFrame decodes as DATA, with the same seq and payload.
func FuzzDecodeData(f *testing.F) {
	f.Add(appendData(nil, 7, []byte("payload"))[4:])
	f.Add(appendData(nil, 1<<40, nil)[4:])
	f.Add(AppendFrame(nil, Frame{Type: FrameAck, Seq: 3})[4:])
	f.Add([]byte{0x93, 3, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xa1, 'x'}) // an old-spec str payload
	f.Fuzz(func(t *testing.T, body []byte) {
		seq, p, ok := decodeData(body)
		if !ok {
			return
		}
		fr, err := DecodeFrame(body)
		if err != nil || fr.Type != FrameData || fr.Seq != seq || !bytes.Equal(fr.Payload, p) || (fr.Payload == nil) != (p == nil) {
			t.Fatalf("% x: decodeData (%d, %x), DecodeFrame (%+v, %v)", body, seq, p, fr, err)
		}
	})
}
