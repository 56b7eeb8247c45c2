package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

func TestRecentStoreIndexesBySeq(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRecent(8, time.Minute)
	ev := func(origin string, seq uint64) Key { return Key{Origin: origin, Boot: 1, Seq: seq} }
	for seq := uint64(1); seq <= 6; seq++ {
		s.Add(ev("a", seq), []byte{0x90}, false, t0)
		s.Add(ev("b", seq), []byte{0x90}, false, t0) // interleaved origins share the ring
	}
	// The ring holds the newest 8: a 3..6 and b 3..6.
	for seq := uint64(1); seq <= 6; seq++ {
		for _, o := range []string{"a", "b"} {
			got := s.Get(Key{o, 1, seq}, t0) != nil
			if want := seq >= 3; got != want {
				t.Fatalf("%s/%d stored=%v, want %v", o, seq, got, want)
			}
		}
	}
	s.Add(ev("a", 6), []byte{0x90}, false, t0) // a duplicate changes nothing
	if s.size != 8 {
		t.Fatalf("size %d after a duplicate", s.size)
	}
	// A far jump restarts a's index; its old entries are no longer served.
	s.Add(ev("a", 1000), []byte{0x90}, false, t0)
	if s.Get(Key{"a", 1, 1000}, t0) == nil || s.Get(Key{"a", 1, 6}, t0) != nil {
		t.Fatal("a far jump was not indexed afresh")
	}
	// Age: nothing older than maxAge is served, and it is evicted.
	later := t0.Add(2 * time.Minute)
	if s.Get(Key{"b", 1, 6}, later) != nil {
		t.Fatal("an entry past maxAge was served")
	}
	s.Add(ev("c", 1), []byte{0x90}, false, later)
	if s.size != 1 || len(s.byOrigin) != 1 {
		t.Fatalf("after expiry: size %d, indexes %d; want 1 and 1", s.size, len(s.byOrigin))
	}
}

// BenchmarkStoreAdd adds events of a few origins to a full store, as a
// node's release path does: each add evicts the oldest entry.
func BenchmarkStoreAdd(b *testing.B) {
	const capacity = 4 * 1000
	s := NewRecent(capacity, time.Minute)
	origins := []string{"node-a", "node-b", "node-c", "node-d"}
	keys := make([]Key, len(origins))
	for i, o := range origins {
		keys[i] = Key{Origin: o, Boot: 1}
	}
	payload := make([]byte, 120)
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := &keys[i%len(keys)]
		k.Seq++
		s.Add(*k, payload, true, now)
	}
}

// storeEvent is an event of origin for the store tests, with a payload of n
// bytes that says which event it is.
func storeEvent(origin string, seq uint64, n int) (Key, []byte) {
	k := Key{Origin: origin, Boot: 1, Seq: seq}
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seq, uint64(len(origin))+uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return k, b
}

// checkStore fails unless the store's accounting holds: the live bytes are
// its entries', laid out in ring order, and every index is in use or free.
func checkStore(t *testing.T, s *Recent) {
	t.Helper()
	live := 0
	for i := range s.size {
		e := &s.ring[(s.head+i)%len(s.ring)]
		if int(e.off)+int(e.n) > len(s.buf) {
			t.Fatalf("entry %d: bytes [%d, %d) past the ring's %d", i, e.off, e.off+e.n, len(s.buf))
		}
		live += int(e.n)
	}
	if live != s.live {
		t.Fatalf("live %d, entries hold %d", s.live, live)
	}
	if s.size > 0 && s.rd != int(s.ring[s.head].off) {
		t.Fatalf("rd %d, oldest entry at %d", s.rd, s.ring[s.head].off)
	}
	if len(s.byOrigin)+len(s.freeIxs) != len(s.ixs) {
		t.Fatalf("%d indexes in use + %d free != %d made", len(s.byOrigin), len(s.freeIxs), len(s.ixs))
	}
}

// The store keeps its own copy: the caller's buffer (a link's read buffer,
// reused for the next frame) may be overwritten as soon as add returns, and
// what get hands out is the caller's, unaffected by later adds.
func TestRecentStoreCopiesPayload(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRecent(4, time.Minute)
	buf := []byte("first event")
	s.Add(Key{"a", 1, 1}, buf, false, t0)
	copy(buf, "XXXXXXXXXXX")
	e := s.Get(Key{"a", 1, 1}, t0)
	if e == nil || string(e.Payload) != "first event" || e.Pathed {
		t.Fatalf("got %+v, want the payload as added", e)
	}
	copy(e.Payload, "YYYYY")
	for seq := uint64(2); seq <= 4; seq++ {
		s.Add(Key{"a", 1, seq}, []byte("later event"), true, t0)
	}
	if e := s.Get(Key{"a", 1, 1}, t0); e == nil || string(e.Payload) != "first event" {
		t.Fatalf("got %+v after changing a copy and adding more, want the payload as added", e)
	}
}

// Peek hands out the stored bytes without a copy: as added and with the
// pathed flag, not shared while they are the ring's; a repathed entry's
// re-encoding, shared; nothing once evicted or too old. Has agrees.
func TestRecentStorePeek(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRecent(2, time.Minute)
	s.Add(Key{"a", 1, 1}, []byte("one"), false, t0)
	s.Add(Key{"a", 1, 2}, []byte("two"), true, t0)
	if b, pathed, shared, ok := s.Peek(Key{"a", 1, 1}, t0); !ok || string(b) != "one" || pathed || shared || cap(b) != len(b) {
		t.Fatalf("Peek(1) = %q %v %v %v (cap %d)", b, pathed, shared, ok, cap(b))
	}
	if b, pathed, shared, ok := s.Peek(Key{"a", 1, 2}, t0); !ok || string(b) != "two" || !pathed || shared {
		t.Fatalf("Peek(2) = %q %v %v %v", b, pathed, shared, ok)
	}
	s.Repath(Key{"a", 1, 1}, []byte("one, via me"), t0)
	if b, pathed, shared, ok := s.Peek(Key{"a", 1, 1}, t0); !ok || string(b) != "one, via me" || !pathed || !shared {
		t.Fatalf("Peek(1) repathed = %q %v %v %v", b, pathed, shared, ok)
	}
	s.Add(Key{"a", 1, 3}, []byte("three"), true, t0) // evicts 1
	if _, _, _, ok := s.Peek(Key{"a", 1, 1}, t0); ok || s.Has(Key{"a", 1, 1}, t0) {
		t.Fatal("an evicted entry is still there")
	}
	if !s.Has(Key{"a", 1, 3}, t0) || s.Has(Key{"a", 1, 3}, t0.Add(2*time.Minute)) {
		t.Fatal("Has disagrees with the age bound")
	}
	if _, _, _, ok := s.Peek(Key{"a", 1, 3}, t0.Add(2*time.Minute)); ok {
		t.Fatal("an entry past the age bound was handed out")
	}
}

// Events of random sizes and origins, many times the byte ring over: every
// stored event reads back byte-exact, every evicted one is missing.
func TestRecentStoreWrapsMixedSizes(t *testing.T) {
	const capacity = 64
	t0 := time.Unix(1000, 0)
	s := NewRecent(capacity, time.Minute)
	r := rand.New(rand.NewPCG(1, 2))
	type added struct {
		k Key
		b []byte
	}
	var all []added
	next := map[string]uint64{}
	wraps, growths, wrappedGrowths := 0, 0, 0
	for i := range 5000 {
		origin := fmt.Sprintf("node-%d", r.IntN(40))
		if r.IntN(4) > 0 && len(all) > 0 { // mostly runs of one origin
			origin = all[len(all)-1].k.Origin
		}
		next[origin]++
		n := r.IntN(3000)
		if i >= 2500 {
			n = r.IntN(9000) // larger ones: the ring grows while wrapped
		}
		if r.IntN(10) == 0 {
			n = r.IntN(4) // tiny and empty ones too
		}
		k, b := storeEvent(origin, next[origin], n)
		wrapped, size := s.wr < s.rd, len(s.buf)
		s.Add(k, b, r.IntN(2) == 0, t0)
		if !wrapped && s.wr < s.rd {
			wraps++
		}
		if len(s.buf) != size {
			growths++
			if wrapped {
				wrappedGrowths++ // grow moves both parts of the ring
			}
		}
		all = append(all, added{k, b})
		if i%97 != 0 && i != 4999 {
			continue
		}
		checkStore(t, s)
		for j, a := range all {
			e := s.Get(a.k, t0)
			if stored := j >= len(all)-capacity; !stored {
				if e != nil {
					t.Fatalf("add %d: evicted %v served", i, a.k)
				}
				continue
			}
			if e == nil || !bytes.Equal(e.Payload, a.b) {
				t.Fatalf("add %d: %v not served as added (got %v)", i, a.k, e != nil)
			}
		}
	}
	if wraps < 10 || growths == 0 || wrappedGrowths == 0 || len(s.buf) > 4*capacity*9000 {
		t.Fatalf("%d wraps, %d growths (%d wrapped) to %d bytes: the test did not exercise the ring",
			wraps, growths, wrappedGrowths, len(s.buf))
	}
	if len(s.ixs) > 40 {
		t.Fatalf("%d indexes made for 40 origins", len(s.ixs))
	}
}

// The byte ring starts small and doubles to hold what the count bound lets
// the store keep, its entries' bytes intact.
func TestRecentStoreGrows(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRecent(100, time.Minute)
	if len(s.buf) != storeMinBytes {
		t.Fatalf("starts at %d bytes, want %d", len(s.buf), storeMinBytes)
	}
	var payloads [][]byte
	for seq := uint64(1); seq <= 100; seq++ {
		k, b := storeEvent("a", seq, 5000)
		s.Add(k, b, true, t0)
		payloads = append(payloads, b)
	}
	if len(s.buf) != 8*storeMinBytes { // 500 000 bytes: 64 KiB doubled thrice
		t.Fatalf("grew to %d bytes, want %d", len(s.buf), 8*storeMinBytes)
	}
	checkStore(t, s)
	for i, b := range payloads {
		if e := s.Get(Key{"a", 1, uint64(i + 1)}, t0); e == nil || !bytes.Equal(e.Payload, b) {
			t.Fatalf("seq %d not served as added", i+1)
		}
	}
}

// Past the byte bound the oldest entries are evicted to make room, however
// many the count bound allows; an event larger than the bound is not stored
// and evicts nothing.
func TestRecentStoreByteBound(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRecent(1000, time.Minute)
	s.maxBytes = 4 * storeMinBytes // 262 144
	for seq := uint64(1); seq <= 100; seq++ {
		k, b := storeEvent("a", seq, 10_000)
		s.Add(k, b, true, t0)
	}
	checkStore(t, s)
	if len(s.buf) != s.maxBytes || s.live > s.maxBytes || s.size < 20 || s.size > 26 {
		t.Fatalf("ring of %d bytes, %d live in %d entries; want the bound, %d at most, 20 to 26 entries",
			len(s.buf), s.live, s.size, s.maxBytes)
	}
	oldest := uint64(100 - s.size + 1)
	for seq := uint64(1); seq <= 100; seq++ {
		_, b := storeEvent("a", seq, 10_000)
		e := s.Get(Key{"a", 1, seq}, t0)
		if seq < oldest && e != nil || seq >= oldest && (e == nil || !bytes.Equal(e.Payload, b)) {
			t.Fatalf("seq %d: served %v, want only %d.. served, as added", seq, e != nil, oldest)
		}
	}
	size := s.size
	k, b := storeEvent("a", 101, s.maxBytes+1)
	s.Add(k, b, true, t0)
	if s.Get(Key{"a", 1, 101}, t0) != nil || s.size != size {
		t.Fatalf("an event over the bound: stored %v, size %d (was %d)", s.Get(Key{"a", 1, 101}, t0) != nil, s.size, size)
	}
	k, b = storeEvent("a", 102, s.maxBytes) // exactly the bound: evicts all else
	s.Add(k, b, true, t0)
	if e := s.Get(Key{"a", 1, 102}, t0); e == nil || !bytes.Equal(e.Payload, b) || s.size != 1 {
		t.Fatalf("an event of the bound: stored %v, size %d", e != nil, s.size)
	}
	checkStore(t, s)
}

// A GRAFT's re-encoding of an unpathed entry is served from then on, and
// leaves with its entry.
func TestRecentStoreRepath(t *testing.T) {
	t0 := time.Unix(1000, 0)
	s := NewRecent(2, time.Minute)
	s.Add(Key{"a", 1, 1}, []byte("as arrived"), false, t0)
	s.Repath(Key{"a", 1, 1}, []byte("with me on the path"), t0)
	s.Repath(Key{"a", 1, 9}, []byte("not stored"), t0) // ignored
	if e := s.Get(Key{"a", 1, 1}, t0); e == nil || !e.Pathed || string(e.Payload) != "with me on the path" {
		t.Fatalf("got %+v, want the re-encoding", e)
	}
	s.Add(Key{"a", 1, 2}, []byte("2"), false, t0)
	s.Add(Key{"a", 1, 3}, []byte("3"), false, t0)
	if s.Get(Key{"a", 1, 1}, t0) != nil || len(s.repathed) != 0 {
		t.Fatalf("evicted: still served, or %d re-encodings kept", len(s.repathed))
	}
	if e := s.Get(Key{"a", 1, 2}, t0); e == nil || e.Pathed || string(e.Payload) != "2" {
		t.Fatalf("got %+v for the entry that took the slot", e)
	}
}

// storeEntry must stay pointer-free: the ring of them is written on every
// event, and a pointer would bring back the GC's barriers and marking.
func TestStoreEntryHasNoPointers(t *testing.T) {
	var walk func(path string, typ reflect.Type)
	walk = func(path string, typ reflect.Type) {
		switch typ.Kind() {
		case reflect.Struct:
			for i := range typ.NumField() {
				f := typ.Field(i)
				walk(path+"."+f.Name, f.Type)
			}
		case reflect.Array:
			walk(path+"[]", typ.Elem())
		case reflect.Pointer, reflect.UnsafePointer, reflect.Slice, reflect.Map, reflect.String,
			reflect.Interface, reflect.Chan, reflect.Func:
			t.Errorf("%s is a %s: storeEntry must hold no pointers", path, typ.Kind())
		}
	}
	walk("storeEntry", reflect.TypeFor[storeEntry]())
}

// A warm store (ring full, byte ring grown, indexes sized) allocates nothing
// per event.
func TestRecentStoreAddAllocatesNothing(t *testing.T) {
	s := NewRecent(4000, time.Minute)
	keys := []*Key{{Origin: "a", Boot: 1}, {Origin: "b", Boot: 1}, {Origin: "c", Boot: 2}}
	payload := make([]byte, 300)
	now := time.Unix(1000, 0)
	i := 0
	add := func() {
		k := keys[i%len(keys)]
		if i%7 != 0 { // runs of one origin, as well as interleaving
			k = keys[0]
		}
		i++
		k.Seq++
		now = now.Add(time.Millisecond)
		s.Add(*k, payload, i%2 == 0, now)
	}
	for range 3 * 4000 {
		add()
	}
	// Not AllocsPerRun(n, add): its average rounds down, and would hide an
	// amortized growth.
	allocs := testing.AllocsPerRun(1, func() {
		for range 10_000 {
			add()
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations in 10 000 adds", allocs)
	}
}

// BenchmarkStoreAddBlast is the blast's shape: five nodes' stores in one
// process (meshbench's), each full at 4 × 4096 events of one origin,
// 178-byte payloads, added in turn: the stores' memory is far beyond the
// caches, as there.
func BenchmarkStoreAddBlast(b *testing.B) {
	const capacity = 4 * 4096
	stores := make([]*Recent, 5)
	keys := make([]Key, len(stores))
	for i := range stores {
		stores[i] = NewRecent(capacity, time.Minute)
		keys[i] = Key{Origin: "bench-00", Boot: 1}
	}
	payload := make([]byte, 178)
	now := time.Unix(1000, 0)
	for i := range 2 * capacity * len(stores) { // fill every store first
		k := &keys[i%len(stores)]
		k.Seq++
		stores[i%len(stores)].Add(*k, payload, false, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		k := &keys[i%len(stores)]
		k.Seq++
		stores[i%len(stores)].Add(*k, payload, false, now)
	}
}

// BenchmarkStoreWarmUp fills a fresh store to its capacity, as every node
// of a cluster does in its first seconds of traffic: the byte ring grows
// from its minimum, into fresh memory. Per event added.
func BenchmarkStoreWarmUp(b *testing.B) {
	const capacity = 4 * 4096
	payload := make([]byte, 178)
	now := time.Unix(1000, 0)
	b.ReportAllocs()
	for b.Loop() {
		s := NewRecent(capacity, time.Minute)
		for seq := range uint64(capacity) {
			s.Add(Key{Origin: "bench-00", Boot: 1, Seq: seq + 1}, payload, false, now)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*capacity), "ns/event")
}
