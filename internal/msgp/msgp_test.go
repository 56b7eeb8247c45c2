package msgp

import (
	"bytes"
	"errors"
	"testing"
)

// What each encoder writes is checked against go-msgpack by the codec tests
// of relay (frames) and mesh (envelopes, args); these are the Reader's own
// rules.
func TestReaderRefusesWhatWouldRunAway(t *testing.T) {
	// A declared length beyond the bytes left: ErrShort, nothing taken.
	r := Reader{B: []byte{0xc6, 0xff, 0xff, 0xff, 0xff, 1}}
	if r.Skip(0); !errors.Is(r.Err, ErrShort) {
		t.Fatalf("bin 32 of 4 GiB in 6 bytes: %v", r.Err)
	}
	// An array claiming more elements than bytes left.
	r = Reader{B: []byte{0xdd, 0, 1, 0, 0}}
	if r.Skip(0); !errors.Is(r.Err, ErrShort) {
		t.Fatalf("array of 65536 in 5 bytes: %v", r.Err)
	}
	// Nesting deeper than 64.
	r = Reader{B: append(bytes.Repeat([]byte{0x91}, 70), 0)}
	if r.Skip(0); r.Err == nil {
		t.Fatal("70 nested arrays accepted")
	}
	// After the first error every read is zero and the error stays.
	r = Reader{B: []byte{0xcd, 1}}
	if v := r.Uint(1 << 16); v != 0 || !errors.Is(r.Err, ErrShort) {
		t.Fatalf("uint 16 cut short: %d, %v", v, r.Err)
	}
	if r.Byte() != 0 || r.Take(0) != nil || !errors.Is(r.Err, ErrShort) {
		t.Fatal("reads after an error")
	}
	// A value in range and one beyond max.
	r = Reader{B: AppendUint(AppendUint(nil, 300), 70000)}
	if v := r.Uint(1000); v != 300 || r.Err != nil {
		t.Fatalf("300: %d, %v", v, r.Err)
	}
	if r.Uint(1000); r.Err == nil {
		t.Fatal("70000 accepted with max 1000")
	}
}

// Skip's table takes the scalars; skipValue, the switch it replaced on the
// hot path, is the reference: both end at the same place, or both fail.
func FuzzSkip(f *testing.F) {
	f.Add([]byte{0xc4, 3, 1, 2, 3, 0x01})
	f.Add([]byte{0xd9, 2, 'a'})
	f.Add([]byte{0x93, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1, 0xa1, 'x', 0xc4, 0})
	f.Add([]byte{0xcb, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, slow := Reader{B: b}, Reader{B: b}
		for fast.Err == nil && fast.I < len(b) {
			fast.Skip(0)
			slow.skipValue(0)
			if (fast.Err == nil) != (slow.Err == nil) || fast.Err == nil && fast.I != slow.I {
				t.Fatalf("% x: Skip at %d (%v), skipValue at %d (%v)", b, fast.I, fast.Err, slow.I, slow.Err)
			}
		}
	})
}

// SkipN's loop is n calls of skipValue: the same place, or both fail.
func FuzzSkipN(f *testing.F) {
	f.Add(uint8(3), []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0x05, 0xc4, 2, 1, 2})
	f.Add(uint8(2), []byte{0x91, 0x01, 0xd9, 2, 'a'})
	f.Add(uint8(1), []byte{0xc4, 200, 1})
	f.Fuzz(func(t *testing.T, n uint8, b []byte) {
		fast, slow := Reader{B: b}, Reader{B: b}
		fast.SkipN(int(n % 16))
		for range n % 16 {
			if slow.Err == nil {
				slow.skipValue(0)
			}
		}
		if (fast.Err == nil) != (slow.Err == nil) || fast.Err == nil && fast.I != slow.I {
			t.Fatalf("%d of % x: SkipN at %d (%v), skipValue at %d (%v)", n%16, b, fast.I, fast.Err, slow.I, slow.Err)
		}
	})
}
