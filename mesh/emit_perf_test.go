package mesh

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// appendArgs writes the very bytes go-msgpack writes, for every type it
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
		want, err := encodeValue(args)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendArgs(nil, args)
		if !ok {
			t.Fatalf("appendArgs refused %#v", args)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendArgs(%#v) = %x, go-msgpack %x", args, got, want)
		}
		raw, release, err := encodeArgs(args)
		if err != nil || !bytes.Equal(raw, want) {
			t.Fatalf("encodeArgs(%#v) = %x, %v; want %x", args, raw, err, want)
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
		if _, ok := appendArgs(nil, odd); ok {
			t.Errorf("appendArgs took %#v; it is go-msgpack's", odd)
		}
		want, _ := encodeValue(odd)
		raw, release, err := encodeArgs(odd)
		if err != nil || !bytes.Equal(raw, want) {
			t.Errorf("encodeArgs(%#v) = %x, %v; want %x", odd, raw, err, want)
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
		raw, release, err := encodeArgs([]any{i, int64(1 << 60), pad})
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
		if _, err := encodeValue([]any{i, int64(1 << 60), pad}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// Emit's encoding of one blast event: args, then the envelope around them.
func BenchmarkEmitPayloadBlast(b *testing.B) {
	pad := make([]byte, 112)
	env := &envelope{Kind: kindEvent, Origin: "bench-0", Boot: 1 << 60, Seq: 1 << 60, Name: "bench", Path: []string{"bench-0"}}
	b.ReportAllocs()
	var i int64
	for b.Loop() {
		raw, release, err := encodeArgs([]any{i, int64(1 << 60), pad})
		if err != nil {
			b.Fatal(err)
		}
		env.Args = raw
		payload := encodeEnvelope(env)
		env.Args = payload[len(payload)-len(raw):]
		release()
		i++
	}
}
