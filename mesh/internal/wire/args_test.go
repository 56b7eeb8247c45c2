package wire

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/verbosemesh/verbose/mesh/internal/slab"
)

// decodeArgsFast gives exactly what go-msgpack gives, whenever it answers;
// so does the dispatcher's path, which cuts from a slab.Args, and what it
// decoded earlier is left as it was.
func FuzzDecodeArgs(f *testing.F) {
	var s slab.Args
	var prev, prevCopy []any
	for _, env := range sampleEnvelopes(f) {
		f.Add(env.Args)
	}
	b, _ := EncodeValue([]any{1, -1, int64(-300), uint64(1 << 63), float32(1.5), 2.5, "s", []byte("b"), nil, true,
		[]any{1, []any{}}, map[string]any{"a": 1, "b": map[string]any{}}, []int{1, 2}, int8(-5), uint16(300)})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeArgsFast(b, nil)
		if !ok {
			return
		}
		var ref []any
		if err := DecodeValue(b, &ref); err != nil {
			t.Fatalf("fast decoded %v where go-msgpack fails: %v", fast, err)
		}
		// %#v prints types, sorts map keys and prints NaN as NaN (which
		// DeepEqual would call unequal to itself).
		if !reflect.DeepEqual(fast, ref) && fmt.Sprintf("%#v", fast) != fmt.Sprintf("%#v", ref) {
			t.Fatalf("fast %#v, go-msgpack %#v", fast, ref)
		}
		cut, ok := decodeArgsFast(b, &s)
		if !ok || fmt.Sprintf("%#v", cut) != fmt.Sprintf("%#v", fast) {
			t.Fatalf("from the slab %#v (ok %v), fast %#v", cut, ok, fast)
		}
		for _, v := range cut { // a handler appending to or writing its []byte
			if bs, isBin := v.([]byte); isBin && len(bs) > 0 {
				bs[0]++
				_ = append(bs, 1, 2, 3)
			}
		}
		if prev != nil && fmt.Sprintf("%#v", prev) != fmt.Sprintf("%#v", prevCopy) {
			t.Fatalf("the previous args changed: %#v, were %#v", prev, prevCopy)
		}
		prev, _ = decodeArgsFast(b, &s)
		prevCopy, _ = decodeArgsFast(b, nil)
	})
}

func BenchmarkDecodeArgs(b *testing.B) {
	raw := sampleEnvelopes(b)[1].Args
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeArgs(raw, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// The blast's event shape: an index, a timestamp and 112 bytes of padding.
func BenchmarkDecodeArgsBlast(b *testing.B) {
	raw, release, err := EncodeArgs([]any{int64(1 << 40), int64(1 << 60), make([]byte, 112)})
	if err != nil {
		b.Fatal(err)
	}
	raw = append([]byte(nil), raw...)
	release()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeArgs(raw, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// AppendArgs writes the very bytes go-msgpack writes, for every type it
// takes, at every width boundary; what it refuses goes to go-msgpack.
func TestAppendArgsMatchesGoMsgpack(t *testing.T) {
	ints := []int64{0, 1, 31, 32, 127, 128, 255, 256, 32767, 32768, 65535, 65536, math.MaxInt32, math.MaxInt32 + 1,
		math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, -1, -31, -32, -33, -127, -128, -129, -32768, -32769,
		math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	var vals []any
	for _, i := range ints {
		vals = append(vals, i, int(i), int8(i), int16(i), int32(i), uint64(i), uint(i), uint8(i), uint16(i), uint32(i))
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		vals = append(vals, strings.Repeat("s", n), bytes.Repeat([]byte{7}, n))
	}
	vals = append(vals, nil, true, false, []byte(nil), []byte{}, float32(1.5), float32(math.Inf(-1)), 2.5,
		math.NaN(), math.Copysign(0, -1), math.MaxFloat64, uint64(math.MaxUint64))
	check := func(args []any) {
		t.Helper()
		want, err := EncodeValue(args)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := AppendArgs(nil, args)
		if !ok {
			t.Fatalf("AppendArgs refused %#v", args)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("AppendArgs(%#v) = %x, go-msgpack %x", args, got, want)
		}
		raw, release, err := EncodeArgs(args)
		if err != nil || !bytes.Equal(raw, want) {
			t.Fatalf("EncodeArgs(%#v) = %x, %v; want %x", args, raw, err, want)
		}
		release()
	}
	for _, v := range vals {
		check([]any{v})
	}
	check([]any{})
	check(vals) // a long array: a 16-bit header
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		args := make([]any, r.IntN(20))
		for i := range args {
			args[i] = vals[r.IntN(len(vals))]
		}
		check(args)
	}

	type named int
	for _, odd := range [][]any{{named(1)}, {[]any{1}}, {map[string]any{"a": 1}}, {1, []int{2}}, {struct{ A int }{3}}} {
		if _, ok := AppendArgs(nil, odd); ok {
			t.Errorf("AppendArgs took %#v; it is go-msgpack's", odd)
		}
		want, _ := EncodeValue(odd)
		raw, release, err := EncodeArgs(odd)
		if err != nil || !bytes.Equal(raw, want) {
			t.Errorf("EncodeArgs(%#v) = %x, %v; want %x", odd, raw, err, want)
		}
		release()
	}
}

// The blast's event shape: an index, a timestamp and 112 bytes of padding.
func BenchmarkEncodeArgsBlast(b *testing.B) {
	pad := make([]byte, 112)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		raw, release, err := EncodeArgs([]any{i, int64(1 << 60), pad})
		if err != nil || len(raw) == 0 {
			b.Fatal(err)
		}
		release()
		i++
	}
}

func BenchmarkEncodeArgsBlastGoMsgpack(b *testing.B) {
	pad := make([]byte, 112)
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		if _, err := EncodeValue([]any{i, int64(1 << 60), pad}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// The encoding of one blast event as Emit once made it: args, then the
// envelope around them in a buffer of its own (EncodeEnvelope).
func BenchmarkEmitPayloadBlast(b *testing.B) {
	pad := make([]byte, 112)
	env := &Envelope{Origin: "bench-0", Boot: 1 << 60, Seq: 1 << 60, Name: "bench", Path: []string{"bench-0"}}
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		raw, release, err := EncodeArgs([]any{i, int64(1 << 60), pad})
		if err != nil {
			b.Fatal(err)
		}
		env.Args = raw
		payload := EncodeEnvelope(env)
		env.Args = payload[len(payload)-len(raw):]
		release()
		i++
	}
}

// Emit's encoding of one blast event into the chunks, CutEnvelope (compare
// BenchmarkEmitPayloadBlast, a buffer of its own per event).
func BenchmarkEmitPayloadSlabBlast(b *testing.B) {
	pad := make([]byte, 112)
	env := &Envelope{Origin: "bench-0", Boot: 1 << 60, Seq: 1 << 60, Name: "bench", Path: []string{"bench-0"}}
	var c slab.Chunks
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		raw, release, err := EncodeArgs([]any{i, int64(1 << 60), pad})
		if err != nil {
			b.Fatal(err)
		}
		env.Args = raw
		payload := CutEnvelope(&c, env)
		env.Args = payload[len(payload)-len(raw):]
		release()
		i++
	}
}
