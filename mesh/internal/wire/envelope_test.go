package wire

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/verbosemesh/verbose/mesh/internal/slab"
)

// goEnvelope is an EVENT payload as go-msgpack reads and writes it, with
// its Kind (Envelope has none: it is always KindEvent): the reference the
// hand-written codec is tested and benchmarked against.
type goEnvelope struct {
	//lint:ignore U1000 the codec reads this field's tag: encode as an array
	_struct bool `codec:",toarray"`

	Kind   Kind
	Origin string
	Boot   uint64
	Seq    uint64
	Name   string
	Path   []string
	Args   codec.Raw
}

// toGo is env as go-msgpack's reference sees it.
func toGo(env *Envelope) *goEnvelope {
	return &goEnvelope{Kind: KindEvent, Origin: env.Origin, Boot: env.Boot, Seq: env.Seq, Name: env.Name,
		Path: env.Path, Args: codec.Raw(env.Args)}
}

func sampleEnvelopes(t testing.TB) []*Envelope {
	args := func(vs ...any) []byte {
		if vs == nil {
			vs = []any{}
		}
		b, err := EncodeValue(vs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return []*Envelope{
		{Origin: "a", Boot: 1, Seq: 1, Name: "x", Path: []string{"a"}, Args: args()},
		{Origin: "node-01", Boot: 1 << 60, Seq: 1<<60 + 5, Name: "order.created",
			Path: []string{"node-01", "node-02"}, Args: args("A-17", 99.5, int64(-3), uint64(7), true, nil, []byte("b"),
				map[string]any{"k": []any{1, "two"}})},
		// The longest origin (a str16, as the 300 bytes here were before
		// Parse enforced MaxOrigin) and a name beyond 64 KiB (a str32).
		{Origin: strings.Repeat("o", MaxOrigin), Boot: 7, Seq: 9, Name: strings.Repeat("n", 70000),
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
		ours := AppendEnvelope(nil, env)
		if len(ours) > EnvelopeSize(env) {
			t.Fatalf("EnvelopeSize %d under the %d bytes written", EnvelopeSize(env), len(ours))
		}
		var theirs goEnvelope
		if err := codec.NewDecoderBytes(ours, Handle).Decode(&theirs); err != nil {
			t.Fatalf("go-msgpack cannot read ours: %v", err)
		}
		if !reflect.DeepEqual(&theirs, toGo(env)) {
			t.Fatalf("go-msgpack read %+v, want %+v", theirs, *env)
		}
		ref, err := EncodeValue(toGo(env))
		if err != nil {
			t.Fatal(err)
		}
		var got Envelope
		if err := new(Parser).Parse(&got, nil, ref); err != nil {
			t.Fatalf("we cannot read go-msgpack's: %v", err)
		}
		if !reflect.DeepEqual(got.Path, env.Path) || got.Origin != env.Origin || got.Name != env.Name ||
			got.Boot != env.Boot || got.Seq != env.Seq || !bytes.Equal(got.Args, env.Args) {
			t.Fatalf("parsed %+v, want %+v", got, env)
		}
	}
}

func TestParseEnvelopeRejects(t *testing.T) {
	good := AppendEnvelope(nil, sampleEnvelopes(t)[1])
	cases := map[string][]byte{
		"empty":          {},
		"not an array":   {0xa1, 'x'},
		"short array":    {0x93, 1, 0xa1, 'a', 1},
		"wrong kind":     append([]byte{0x97, 9}, good[2:]...),
		"truncated":      good[:len(good)-3],
		"trailing bytes": append(append([]byte(nil), good...), 0xc0),
		"zero boot":      AppendEnvelope(nil, &Envelope{Origin: "a", Boot: 0, Seq: 1, Name: "x", Args: []byte{0x90}}),
		"seq below boot": AppendEnvelope(nil, &Envelope{Origin: "a", Boot: 5, Seq: 4, Name: "x", Args: []byte{0x90}}),
		"no origin":      AppendEnvelope(nil, &Envelope{Boot: 1, Seq: 1, Name: "x", Args: []byte{0x90}}),
		"args not array": AppendEnvelope(nil, &Envelope{Origin: "a", Boot: 1, Seq: 1, Name: "x", Args: []byte{0xc0}}),
		"huge path":      {0x97, 1, 0xa1, 'a', 1, 1, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff},
		"bad type":       AppendEnvelope(nil, &Envelope{Origin: "a", Boot: 1, Seq: 1, Name: "x", Args: []byte{0x91, 0xc1}}),
		"long origin": AppendEnvelope(nil, &Envelope{Origin: strings.Repeat("o", MaxOrigin+1), Boot: 1, Seq: 1,
			Name: "x", Args: []byte{0x90}}),
	}
	for name, b := range cases {
		var env Envelope
		if err := new(Parser).Parse(&env, nil, b); err == nil {
			t.Errorf("%s: accepted as %+v", name, env)
		}
		if err := (*Parser)(nil).Parse(&env, nil, b); err == nil {
			t.Errorf("%s: accepted without a parser as %+v", name, env)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	for _, env := range sampleEnvelopes(f) {
		f.Add(AppendEnvelope(nil, env))
	}
	f.Add([]byte{0x97, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		env := new(Envelope)
		if err := new(Parser).Parse(env, nil, b); err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses the same.
		// Decoding its args for a handler may fail (a map with int keys
		// cannot become map[string]any; Emit refuses those), never panic.
		again := new(Envelope)
		err := new(Parser).Parse(again, nil, AppendEnvelope(nil, env))
		if err != nil || !reflect.DeepEqual(again, env) {
			t.Fatalf("re-encoding changed %+v into %+v (%v)", env, again, err)
		}
		_, _ = DecodeArgs(env.Args, nil)
	})
}

// The router parses with a memory of the previous envelope (parseAgain):
// whatever came before, b parses to what a parser without that memory makes
// of it, or both fail.
func FuzzParseAgain(f *testing.F) {
	samples := sampleEnvelopes(f)[:2] // the third, ~70 KB, slows every mutation of it
	for i, env := range samples {
		a := AppendEnvelope(nil, env)
		next := *env
		next.Seq++
		f.Add(a, AppendEnvelope(nil, &next))
		next.Args = samples[(i+1)%len(samples)].Args
		f.Add(a, AppendEnvelope(nil, &next))
		next.Seq = env.Boot - 1 // below the boot: refused
		f.Add(a, AppendEnvelope(nil, &next))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ps := new(Parser)
		var env Envelope
		var path [3]string
		_ = ps.Parse(&env, path[:0], a)
		err := ps.Parse(&env, path[:0], b)
		var want Envelope
		werr := (*Parser)(nil).Parse(&want, nil, b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("after %x, %x: %v; without the memory: %v", a, b, err, werr)
		}
		if err == nil && (env.Origin != want.Origin || env.Boot != want.Boot || env.Seq != want.Seq ||
			env.Name != want.Name || !slices.Equal(env.Path, want.Path) || !bytes.Equal(env.Args, want.Args)) {
			t.Fatalf("after %x, %x: %+v; without the memory: %+v", a, b, env, want)
		}
	})
}

// The router's shortcut for an origin's next event.
func BenchmarkParseEnvelopeAgain(b *testing.B) {
	env := sampleEnvelopes(b)[1]
	bufs := [2][]byte{AppendEnvelope(nil, env), nil}
	env.Seq++
	bufs[1] = AppendEnvelope(nil, env)
	var (
		out  Envelope
		path [3]string
		ps   Parser
	)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := ps.Parse(&out, path[:0], bufs[i&1]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// As mesh's parseEnvelope(buf, strs) was: a new Envelope and path each
// time, from a parser that saw the same bytes before.
func BenchmarkParseEnvelope(b *testing.B) {
	buf := AppendEnvelope(nil, sampleEnvelopes(b)[1])
	ps := new(Parser)
	b.ReportAllocs()
	for b.Loop() {
		if err := ps.Parse(new(Envelope), nil, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEnvelopeGoMsgpack(b *testing.B) {
	buf := AppendEnvelope(nil, sampleEnvelopes(b)[1])
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
		buf := make([]byte, 0, EnvelopeSize(env))
		_ = AppendEnvelope(buf, env)
	}
}

// decodeEnvelope is go-msgpack's reading of an EVENT payload: the reference
// the hand-written Parse is tested and benchmarked against.
func decodeEnvelope(b []byte) (*goEnvelope, error) {
	env := new(goEnvelope)
	if err := codec.NewDecoderBytes(b, Handle).Decode(env); err != nil {
		return nil, fmt.Errorf("mesh: bad event payload: %w", err)
	}
	if env.Kind != KindEvent {
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
	args, release, err := EncodeArgs([]any{int64(1) << 40, int64(1) << 60, make([]byte, 112)})
	if err != nil {
		b.Fatal(err)
	}
	defer release()
	buf := AppendEnvelope(nil, &Envelope{Origin: "bench-00", Boot: 1 << 60, Seq: 1<<60 + 12345,
		Name: "blast", Path: []string{"bench-00"}, Args: args})
	var (
		env  Envelope
		path [3]string
		ps   Parser
	)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := ps.Parse(&env, path[:0], buf); err != nil {
			b.Fatal(err)
		}
	}
}

// Payloads cut from the chunks are what EncodeEnvelope makes, capped to
// their length, and never written again: later events leave earlier ones
// intact, and appending to one copies instead of reaching its neighbour.
func TestCutEnvelope(t *testing.T) {
	var c slab.Chunks
	env := &Envelope{Origin: "node-a", Boot: 1 << 60, Name: "x", Path: []string{"node-a"}}
	var got, want [][]byte
	for i := range 1000 {
		env.Seq = uint64(i)
		env.Args = bytes.Repeat([]byte{byte(i)}, i%300)
		if i%97 == 0 {
			env.Args = bytes.Repeat([]byte{byte(i)}, slab.MaxRegion+i) // its own allocation
		}
		p := CutEnvelope(&c, env)
		if cap(p) != len(p) {
			t.Fatalf("event %d: payload of len %d, cap %d", i, len(p), cap(p))
		}
		got = append(got, p)
		want = append(want, EncodeEnvelope(env))
		_ = append(p, 0xff) // must copy, not write into the chunk
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("event %d: payload %x, want %x", i, got[i], want[i])
		}
	}
}

// One chunk serves many blast-sized events: Emit's encoding allocates
// nothing per event once a chunk is cut.
func TestCutEnvelopeAllocs(t *testing.T) {
	var c slab.Chunks
	env := &Envelope{Origin: "node-a", Boot: 1 << 60, Seq: 1 << 60, Name: "bench",
		Path: []string{"node-a"}, Args: make([]byte, 130)}
	if a := testing.AllocsPerRun(1000, func() { CutEnvelope(&c, env) }); a > 0.02 {
		t.Fatalf("%.3f allocations per payload, want one per chunk (~0.006)", a)
	}
}
