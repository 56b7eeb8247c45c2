package wire

import (
	"bytes"
	"strings"
	"testing"
)

// A VIEW round-trips, and one out of bounds is refused.
func TestViewDecode(t *testing.T) {
	v := &View{From: "node-1", Boot: 7, Seq: 3, Msg: 6, Node: "node-2", TTL: 4, Flags: ViewHigh, Sample: []string{"a", "b"}}
	got, err := DecodeView(v.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != KindView || got.From != v.From || got.Boot != 7 || got.Seq != 3 || got.Node != "node-2" || got.TTL != 4 || got.Flags != ViewHigh || len(got.Sample) != 2 {
		t.Fatalf("decoded %+v, want %+v", got, v)
	}
	for _, bad := range []*View{
		{From: "", Boot: 1},  // no sender
		{From: "a", Boot: 0}, // no boot
		{From: "a", Boot: 1, Node: strings.Repeat("x", 257)},          // over-long id
		{From: "a", Boot: 1, Sample: make([]string, maxViewSample+1)}, // over-long sample
	} {
		if _, err := DecodeView(bad.Encode()); err == nil {
			t.Fatalf("%+v decoded, want an error", bad)
		}
	}
	if _, err := DecodeView(NewGrant(nil).Encode()); err == nil {
		t.Fatal("a GRANT decoded as a VIEW")
	}
}

// Whatever the bytes, DecodeView returns a view within its bounds or an
// error, and never panics; what it accepts encodes to the same view.
func FuzzDecodeView(f *testing.F) {
	f.Add((&View{From: "a", Boot: 1, Seq: 1, Msg: 3, Flags: ViewHigh}).Encode())
	f.Add((&View{From: "a", Boot: 1, Seq: 2, Msg: 6, Node: "b", TTL: 3, Sample: []string{"c"}}).Encode())
	f.Add([]byte{0x99, 6, 0xa1, 'a'})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff, 6})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeView(b)
		if err != nil {
			return
		}
		if v.From == "" || v.Boot == 0 || len(v.Node) > maxViewID || len(v.Sample) > maxViewSample {
			t.Fatalf("accepted out of bounds: %+v", v)
		}
		again, err := DecodeView(v.Encode())
		if err != nil || again.From != v.From || again.Seq != v.Seq || !bytes.Equal([]byte(strings.Join(again.Sample, "\x00")), []byte(strings.Join(v.Sample, "\x00"))) {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", v, again, err)
		}
	})
}
