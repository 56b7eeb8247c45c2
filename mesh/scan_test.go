package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/msgp"
	"github.com/verbosemesh/verbose/mesh/internal/slab"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// scanDests are the destination types FuzzScan and the tables try: every
// hand-decoded one, and a few that go-msgpack decodes.
var scanDests = []struct {
	name string
	new  func() any
}{
	{"int", func() any { return new(int) }},
	{"int8", func() any { return new(int8) }},
	{"int16", func() any { return new(int16) }},
	{"int32", func() any { return new(int32) }},
	{"int64", func() any { return new(int64) }},
	{"uint", func() any { return new(uint) }},
	{"uint8", func() any { return new(uint8) }},
	{"uint16", func() any { return new(uint16) }},
	{"uint32", func() any { return new(uint32) }},
	{"uint64", func() any { return new(uint64) }},
	{"float32", func() any { return new(float32) }},
	{"float64", func() any { return new(float64) }},
	{"bool", func() any { return new(bool) }},
	{"string", func() any { return new(string) }},
	{"bytes", func() any { return new([]byte) }},
	{"bytes with capacity", func() any { b := make([]byte, 3, 64); copy(b, "old"); return &b }},
	{"any", func() any { return new(any) }},
	{"any holding an int64", func() any { var v any = int64(7); return &v }},
	{"struct", func() any { return new(struct{ A, B int }) }},
	{"[]int", func() any { return new([]int) }},
	{"map", func() any { return new(map[string]any) }},
	{"*int", func() any { return new(*int) }},
}

// sameValue compares two decoded destinations; %#v also equates NaNs and
// prints map keys sorted.
func sameValue(a, b any) bool {
	return reflect.DeepEqual(a, b) || fmt.Sprintf("%#v", reflect.ValueOf(a).Elem()) == fmt.Sprintf("%#v", reflect.ValueOf(b).Elem())
}

// splitValues returns the arg array of the well-formed msgpack values that
// b starts with, and each value's bytes.
func splitValues(b []byte) (array []byte, vals [][]byte) {
	r := msgp.Reader{B: b}
	for r.I < len(b) && len(vals) < 16 {
		start := r.I
		if r.Skip(0); r.Err != nil {
			break
		}
		vals = append(vals, b[start:r.I])
	}
	array = msgp.AppendArrayHeader(nil, len(vals))
	for _, v := range vals {
		array = append(array, v...)
	}
	return array, vals
}

// FuzzScan: Scan of any args into any of scanDests gives what go-msgpack
// gives decoding the same argument's bytes into the same type: the value
// when both succeed, an error when it errs.
func FuzzScan(f *testing.F) {
	seed := func(vals ...any) {
		var b []byte
		for _, v := range vals {
			enc, err := wire.EncodeValue(v)
			if err != nil {
				f.Fatal(err)
			}
			b = append(b, enc...)
		}
		f.Add(b)
	}
	seed(0, 1, 2, -1, 127, 128, 255, 256, -32, -33, -128, -129, 1<<15, -1<<15-1, 1<<16, 1<<31, -1<<31-1, 1<<32)
	seed(int64(math.MaxInt64), int64(math.MinInt64), uint64(math.MaxUint64), uint64(1<<63), uint32(math.MaxUint32))
	seed(float32(1.5), float32(math.Copysign(0, -1)), float32(math.MaxFloat32), float32(math.Inf(1)), 2.5, 1e300, -1e300, math.NaN(), math.Inf(-1), 1e-320)
	seed("", "s", strings.Repeat("x", 40), strings.Repeat("y", 300), []byte{}, []byte("b"), make([]byte, 300), nil, true, false)
	seed([]any{1, 2}, []int{1, 255}, []any{"a", []any{}}, map[string]any{"A": 1, "B": -2}, map[string]any{"a": "b"}, []any{300})
	f.Add([]byte{0xcc, 0x01, 0xcc, 0x00, 0xd0, 0x05, 0xd0, 0xff, 0xd1, 0x00, 0x01, 0xcd, 0xff, 0xff, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0xd4, 0x01, 0x02, 0xc7, 0x01, 0x05, 0x00, 0xc4, 0x00, 0xd9, 0x01, 'a', 0xda, 0x00, 0x00, 0xc1})
	f.Add([]byte{0x81, 0x01, 0x02, 0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02, 0x91, 0x91, 0x91, 0x91, 0xc0})
	f.Fuzz(func(t *testing.T, b []byte) {
		array, vals := splitValues(b)
		e := Event{Name: "x", raw: array}
		for i, v := range vals {
			for _, d := range scanDests {
				want := d.new()
				werr := wire.DecodeValue(v, want)
				got := d.new()
				dst := make([]any, i+1)
				dst[i] = got
				gerr := e.Scan(dst...)
				if (gerr == nil) != (werr == nil) {
					t.Fatalf("arg %d % x into %s: Scan error %v, go-msgpack error %v", i, v, d.name, gerr, werr)
				}
				if gerr == nil && !sameValue(got, want) {
					t.Fatalf("arg %d % x into %s: Scan %#v, go-msgpack %#v", i, v, d.name,
						reflect.ValueOf(got).Elem(), reflect.ValueOf(want).Elem())
				}
			}
		}
		// The fuzzer's bytes as an args array, well-formed or not: no panic.
		dst := make([]any, 0, 4)
		for _, d := range scanDests[:4] {
			dst = append(dst, d.new())
		}
		_ = Event{raw: b}.Scan(dst...)
	})
}

// blastArgs is the meshbench event: an index, a timestamp, 112 bytes.
func blastArgs(t testing.TB) []byte {
	raw, release, err := wire.EncodeArgs([]any{int64(1 << 40), int64(1 << 60), bytes.Repeat([]byte{7}, 112)})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	return append([]byte(nil), raw...)
}

func TestScanFastPath(t *testing.T) {
	raw, err := wire.EncodeValue([]any{"s", int64(-3), uint64(7), 1.5, true, nil, []byte("bin"), int64(300), float32(0.25)})
	if err != nil {
		t.Fatal(err)
	}
	e := Event{Name: "x", raw: raw}
	var (
		s  string
		i  int
		u  uint32
		f  float64
		b  bool
		p  *int
		bs []byte
		i8 int8
		f4 float32
	)
	if err := e.Scan(&s, &i, &u, &f, &b, &p, &bs, nil, &f4); err != nil {
		t.Fatal(err)
	}
	if s != "s" || i != -3 || u != 7 || f != 1.5 || !b || p != nil || string(bs) != "bin" || f4 != 0.25 {
		t.Fatalf("scanned %q %d %d %v %v %v %q %v", s, i, u, f, b, p, bs, f4)
	}
	var a0, a6 any
	if err := e.Scan(&a0, nil, nil, nil, nil, nil, &a6); err != nil || a0 != "s" || !bytes.Equal(a6.([]byte), []byte("bin")) {
		t.Fatalf("into *any: %#v %#v %v", a0, a6, err)
	}
	// Conversions go-msgpack refuses, refused: overflow, sign, type.
	for _, c := range []struct {
		arg int
		dst any
	}{{7, &i8}, {1, &u}, {0, &i}, {1, &s}, {2, &b}, {6, &f}} {
		dst := make([]any, c.arg+1)
		dst[c.arg] = c.dst
		if err := e.Scan(dst...); err == nil {
			t.Errorf("arg %d into %T accepted", c.arg, c.dst)
		} else if !strings.Contains(err.Error(), fmt.Sprintf(`mesh: scan "x" arg %d into %T: `, c.arg, c.dst)) {
			t.Errorf("error %q does not name the event, arg and type", err)
		}
	}
	// A struct, by go-msgpack.
	raw, _ = wire.EncodeValue([]any{map[string]any{"X": 1, "Y": 2}})
	var pt struct{ X, Y int }
	if err := (Event{raw: raw}).Scan(&pt); err != nil || pt.X != 1 || pt.Y != 2 {
		t.Fatalf("struct: %+v %v", pt, err)
	}
}

func TestScanErrors(t *testing.T) {
	raw, _ := wire.EncodeValue([]any{"a", 1})
	for _, e := range []Event{{Name: "x", raw: raw}, {Name: "x", Args: []any{"a", int64(1)}}} {
		var s string
		var n int
		var np *int
		for _, c := range []struct {
			dst  []any
			want string
		}{
			{[]any{&s, &n, &n}, `mesh: scan "x": 3 destinations for 2 args`},
			{[]any{&s, n}, `mesh: scan "x": destination 1 is not a non-nil pointer`},
			{[]any{np}, `mesh: scan "x": destination 0 is not a non-nil pointer`},
			{[]any{nil, (*struct{})(nil)}, `mesh: scan "x": destination 1 is not a non-nil pointer`},
			{[]any{&n}, `mesh: scan "x" arg 0 into *int: `},
		} {
			err := e.Scan(c.dst...)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("raw %v: Scan(%T...) = %v, want %q", e.raw != nil, c.dst, err, c.want)
			}
		}
	}
	if err := (Event{Name: "x", raw: []byte{0x92, 0x01}}).Scan(nil, nil); err == nil {
		t.Error("truncated args accepted")
	}
	if err := (Event{Name: "x", raw: []byte{0xdd, 0xff, 0xff, 0xff, 0xff}}).Scan(nil); !errors.Is(err, msgp.ErrShort) {
		t.Errorf("a hostile count: %v", err)
	}
}

// Values nested deeper than msgp's Skip goes are split by go-msgpack.
func TestScanDeeplyNested(t *testing.T) {
	var deep any = "leaf"
	for range 80 {
		deep = []any{deep}
	}
	raw, err := wire.EncodeValue([]any{deep, int64(5)})
	if err != nil {
		t.Fatal(err)
	}
	var got any
	var n int64
	if err := (Event{Name: "x", raw: raw}).Scan(&got, &n); err != nil || n != 5 {
		t.Fatalf("Scan: %v, n %d", err, n)
	}
	for range 80 {
		got = got.([]any)[0]
	}
	if got != "leaf" {
		t.Fatalf("leaf %#v", got)
	}
}

func TestScanAllocatesNothingForNumbersAndBytes(t *testing.T) {
	e := Event{Name: "x", raw: blastArgs(t)}
	var idx, ts int64
	var u uint64
	var f float64
	pad := make([]byte, 0, 128)
	allocs := testing.AllocsPerRun(100, func() {
		if err := e.Scan(&idx, &ts, &pad); err != nil {
			t.Fatal(err)
		}
		if err := e.Scan(nil, &u); err != nil {
			t.Fatal(err)
		}
		if err := e.Scan(&f); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Scan", allocs)
	}
	if idx != 1<<40 || ts != 1<<60 || u != 1<<60 || f != 1<<40 || len(pad) != 112 || pad[0] != 7 || cap(pad) != 128 {
		t.Fatalf("scanned %d %d %d %v len %d cap %d", idx, ts, u, f, len(pad), cap(pad))
	}
}

// The blast event read as meshbench's raw handler does, then as an On
// handler would (decode into []any, then type switches), then with today's
// Scan of an Event built from Args.
func BenchmarkScan(b *testing.B) {
	raw := blastArgs(b)
	b.Run("raw", func(b *testing.B) {
		e := Event{Name: "x", raw: raw}
		var idx, ts int64
		b.ReportAllocs()
		for b.Loop() {
			if err := e.Scan(&idx, &ts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-with-bytes", func(b *testing.B) {
		e := Event{Name: "x", raw: raw}
		var idx, ts int64
		pad := make([]byte, 0, 128)
		b.ReportAllocs()
		for b.Loop() {
			if err := e.Scan(&idx, &ts, &pad); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-args", func(b *testing.B) {
		var s slab.Args
		b.ReportAllocs()
		for b.Loop() {
			args, err := wire.DecodeArgs(raw, &s)
			if err != nil || args[0].(int64) != 1<<40 || args[1].(int64) != 1<<60 {
				b.Fatal(err)
			}
		}
	})
	b.Run("from-args", func(b *testing.B) {
		args, _ := wire.DecodeArgs(raw, nil)
		e := Event{Name: "x", Args: args}
		var idx, ts int64
		b.ReportAllocs()
		for b.Loop() {
			if err := e.Scan(&idx, &ts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// An event that reaches raw handlers only is not decoded: args that do not
// decode draw no warning until an On handler wants them.
func TestDispatchDecodesOnlyForOnHandlers(t *testing.T) {
	var logged bytes.Buffer
	var mu sync.Mutex
	log := hclog.New(&hclog.LoggerOptions{Output: &lockedWriter{mu: &mu, w: &logged}, Level: hclog.Warn})
	tab := newHandlerTable()
	peers := newPeerDispatcher(tab)
	defer peers.close()
	losses := newLossReporter(log, peers)
	defer losses.close()
	events := newDispatcher(16, tab, log, losses)
	defer events.close()
	var raws, ons int
	var rawArgs []any
	tab.onRaw("x", func(e Event) { raws++; rawArgs = e.Args })
	it := item{name: "x", origin: "o", seq: 1, args: []byte{0x91, 0xc1}} // 0xc1: not msgpack
	events.dispatch(&it)
	mu.Lock()
	if raws != 1 || logged.Len() != 0 {
		t.Fatalf("raw only: %d calls, log %q", raws, logged.String())
	}
	mu.Unlock()
	tab.on("*", func(e Event) { ons++ })
	events.dispatch(&it)
	mu.Lock()
	defer mu.Unlock()
	if raws != 2 || ons != 1 || !strings.Contains(logged.String(), "undecodable event args") {
		t.Fatalf("with an On handler: %d raw calls, %d On calls, log %q", raws, ons, logged.String())
	}
	good, _ := wire.EncodeValue([]any{1})
	it.args = good
	events.dispatch(&it)
	if rawArgs != nil || ons != 2 {
		t.Fatalf("a raw handler got Args %v (On calls %d)", rawArgs, ons)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
