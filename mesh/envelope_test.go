package mesh

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

func sampleEnvelopes(t testing.TB) []*envelope {
	args := func(vs ...any) codec.Raw {
		if vs == nil {
			vs = []any{}
		}
		b, err := encodeValue(vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []*envelope{
		{Kind: kindEvent, Origin: "a", Boot: 1, Seq: 1, Name: "x", Path: []string{"a"}, Args: args()},
		{Kind: kindEvent, Origin: "node-01", Boot: 1 << 60, Seq: 1<<60 + 5, Name: "order.created",
			Path: []string{"node-01", "node-02"}, Args: args("A-17", 99.5, int64(-3), uint64(7), true, nil, []byte("b"),
				map[string]any{"k": []any{1, "two"}})},
		{Kind: kindEvent, Origin: strings.Repeat("o", 300), Boot: 7, Seq: 9, Name: strings.Repeat("n", 70000),
			Path: make([]string, 20), Args: args(strings.Repeat("s", 100))},
	}
}

// The hand-written codec and go-msgpack agree, both ways.
func TestEnvelopeCodecMatchesGoMsgpack(t *testing.T) {
	for _, env := range sampleEnvelopes(t) {
		for i := range env.Path {
			if env.Path[i] == "" {
				env.Path[i] = "id"
			}
		}
		ours := appendEnvelope(nil, env)
		if len(ours) > envelopeSize(env) {
			t.Fatalf("envelopeSize %d under the %d bytes written", envelopeSize(env), len(ours))
		}
		var theirs envelope
		if err := codec.NewDecoderBytes(ours, wireHandle).Decode(&theirs); err != nil {
			t.Fatalf("go-msgpack cannot read ours: %v", err)
		}
		if !reflect.DeepEqual(&theirs, env) {
			t.Fatalf("go-msgpack read %+v, want %+v", theirs, *env)
		}
		ref, err := encodeValue(env)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseEnvelope(ref, &interner{})
		if err != nil {
			t.Fatalf("we cannot read go-msgpack's: %v", err)
		}
		if !reflect.DeepEqual(got.Path, env.Path) || got.Origin != env.Origin || got.Name != env.Name ||
			got.Boot != env.Boot || got.Seq != env.Seq || !bytes.Equal(got.Args, env.Args) {
			t.Fatalf("parsed %+v, want %+v", got, env)
		}
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	good := appendEnvelope(nil, sampleEnvelopes(t)[1])
	cases := map[string][]byte{
		"empty":          {},
		"not an array":   {0xa1, 'x'},
		"short array":    {0x93, 1, 0xa1, 'a', 1},
		"wrong kind":     append([]byte{0x97, 9}, good[2:]...),
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(append([]byte(nil), good...), 0xc0),
		"zero boot":      appendEnvelope(nil, &envelope{Kind: kindEvent, Origin: "a", Boot: 0, Seq: 1, Name: "x", Args: []byte{0x90}}),
		"seq below boot": appendEnvelope(nil, &envelope{Kind: kindEvent, Origin: "a", Boot: 5, Seq: 4, Name: "x", Args: []byte{0x90}}),
		"no origin":      appendEnvelope(nil, &envelope{Kind: kindEvent, Boot: 1, Seq: 1, Name: "x", Args: []byte{0x90}}),
		"args not array": appendEnvelope(nil, &envelope{Kind: kindEvent, Origin: "a", Boot: 1, Seq: 1, Name: "x", Args: []byte{0xc0}}),
		"huge path":      {0x97, 1, 0xa1, 'a', 1, 1, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"bad type":       appendEnvelope(nil, &envelope{Kind: kindEvent, Origin: "a", Boot: 1, Seq: 1, Name: "x", Args: []byte{0x91, 0xc1}}),
	}
	for name, b := range cases {
		if env, err := parseEnvelope(b, &interner{}); err == nil {
			t.Errorf("%s: accepted as %+v", name, env)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, env := range sampleEnvelopes(f) {
		f.Add(appendEnvelope(nil, env))
	}
	f.Add([]byte{0x97, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := parseEnvelope(b, &interner{})
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		// Decoding its args for a handler may fail (a map with int keys
		// cannot become map[string]any; Emit refuses those), never panic.
		again, err := parseEnvelope(appendEnvelope(nil, env), &interner{})
		if err != nil || !reflect.DeepEqual(again, env) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", env, again, err)
		}
		_, _ = decodeArgs(env.Args, nil)
	})
}

// The router parses with a memory of the previous envelope (parseAgain):
// whatever came before, b parses to what a parser without that memory makes
// of it, or both fail.
func FuzzParseEnvelopeAgain(f *testing.F) {
	samples := sampleEnvelopes(f)[:2] // the third, ~70 KB, slows every mutation of it
	for i, env := range samples {
		a := appendEnvelope(nil, env)
		next := *env
		next.Seq++
		f.Add(a, appendEnvelope(nil, &next))
		next.Args = samples[(i+1)%len(samples)].Args
		f.Add(a, appendEnvelope(nil, &next))
		next.Seq = env.Boot - 1 // below the boot: refused
		f.Add(a, appendEnvelope(nil, &next))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		strs := &interner{}
		var env envelope
		var path [3]string
		_ = parseEnvelopeInto(&env, path[:0], a, strs)
		err := parseEnvelopeInto(&env, path[:0], b, strs)
		want, werr := parseEnvelope(b, nil)
		if (err == nil) != (werr == nil) {
			t.Fatalf("after %x, %x: %v; without the memory: %v", a, b, err, werr)
		}
		if err == nil && (env.Origin != want.Origin || env.Boot != want.Boot || env.Seq != want.Seq ||
			env.Name != want.Name || !slices.Equal(env.Path, want.Path) || !bytes.Equal(env.Args, want.Args) || env.Kind != want.Kind) {
			t.Fatalf("after %x, %x: %+v; without the memory: %+v", a, b, env, *want)
		}
	})
}

// The router's shortcut for an origin's next event.
func BenchmarkParseEnvelopeAgain(b *testing.B) {
	env := sampleEnvelopes(b)[1]
	bufs := [2][]byte{appendEnvelope(nil, env), nil}
	env.Seq++
	bufs[1] = appendEnvelope(nil, env)
	var (
		out  envelope
		path [3]string
		strs interner
	)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := parseEnvelopeInto(&out, path[:0], bufs[i&1], &strs); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkParseEnvelope(b *testing.B) {
	buf := appendEnvelope(nil, sampleEnvelopes(b)[1])
	strs := &interner{}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseEnvelope(buf, strs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEnvelopeGoMsgpack(b *testing.B) {
	buf := appendEnvelope(nil, sampleEnvelopes(b)[1])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeEnvelope(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendEnvelope(b *testing.B) {
	env := sampleEnvelopes(b)[1]
	b.ReportAllocs()
	for b.Loop() {
		buf := make([]byte, 0, envelopeSize(env))
		_ = appendEnvelope(buf, env)
	}
}

// decodeEnvelope is go-msgpack's reading of an EVENT payload: the reference
// the hand-written parseEnvelope is tested and benchmarked against.
func decodeEnvelope(b []byte) (*envelope, error) {
	env := new(envelope)
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(env); err != nil {
		return nil, fmt.Errorf("mesh: bad event payload: %w", err)
	}
	if env.Kind != kindEvent {
		return nil, fmt.Errorf("mesh: payload kind %d is not an event", env.Kind)
	}
	if env.Origin == "" || env.Seq < env.Boot || env.Boot == 0 {
		return nil, fmt.Errorf("mesh: bad event identity (origin %q, boot %d, seq %d)", env.Origin, env.Boot, env.Seq)
	}
	return env, nil
}

// The envelope of meshbench's blast, parsed as the router does: into a
// reused envelope and path, strings interned.
func BenchmarkParseEnvelopeBlast(b *testing.B) {
	args, release, err := encodeArgs([]any{int64(1) << 40, int64(1) << 60, make([]byte, 112)})
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	buf := appendEnvelope(nil, &envelope{Kind: kindEvent, Origin: "bench-00", Boot: 1 << 60, Seq: 1<<60 + 12345,
		Name: "blast", Path: []string{"bench-00"}, Args: args})
	var (
		env  envelope
		path [3]string
		strs interner
	)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := parseEnvelopeInto(&env, path[:0], buf, &strs); err != nil {
			b.Fatal(err)
		}
	}
}
