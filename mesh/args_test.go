package mesh

import (
	"fmt"
	"reflect"
	"testing"
)

// decodeArgsFast gives exactly what go-msgpack gives, whenever it answers;
// so does the dispatcher's path, which cuts from an argSlab, and what it
// decoded earlier is left as it was.
func FuzzDecodeArgs(f *testing.F) {
	var slab argSlab
	var prev, prevCopy []any
	for _, env := range sampleEnvelopes(f) {
		f.Add([]byte(env.Args))
	}
	b, _ := encodeValue([]any{1, -1, int64(-300), uint64(1 << 63), float32(1.5), 2.5, "s", []byte("b"), nil, true,
		[]any{1, []any{}}, map[string]any{"a": 1, "b": map[string]any{}}, []int{1, 2}, int8(-5), uint16(300)})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := decodeArgsFast(b, nil)
		if !ok {
			return
		}
		var ref []any
		if err := decodeWithCodec(b, &ref); err != nil {
			t.Fatalf("fast decoded %v where go-msgpack fails: %v", fast, err)
		}
		// %#v prints types, sorts map keys and prints NaN as NaN (which
		// DeepEqual would call unequal to itself).
		if !reflect.DeepEqual(fast, ref) && fmt.Sprintf("%#v", fast) != fmt.Sprintf("%#v", ref) {
			t.Fatalf("fast %#v, go-msgpack %#v", fast, ref)
		}
		cut, ok := decodeArgsFast(b, &slab)
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
		prev, _ = decodeArgsFast(b, &slab)
		prevCopy, _ = decodeArgsFast(b, nil)
	})
}

func BenchmarkDecodeArgs(b *testing.B) {
	raw := sampleEnvelopes(b)[1].Args
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeArgs(raw, nil); err != nil {
			b.Fatal(err)
		}
	}
}
