package wire

import (
	"fmt"
	"strings"
	"testing"
)

func TestTreePayloadsDecode(t *testing.T) {
	most := make([]Notice, MaxNotices)
	for i := range most {
		most[i] = Notice{Origin: fmt.Sprint("n", i), Boot: 1, Upto: 1}
	}
	good := []TreeMessage{
		NewIHave([]Notice{{Origin: "a", Boot: 1, Upto: 5}}),
		NewGraft("a", 1, 3, false),
		NewPrune("a"),
		NewIHave(most),
		NewGrant([]Credit{{Origin: "a", Boot: 1, Upto: 1000}, {Origin: "b", Boot: 7, Upto: 3}}),
	}
	for _, m := range good {
		b, err := EncodeValue(m)
		if err != nil {
			t.Fatal(err)
		}
		if enc := m.Encode(); string(enc) != string(b) {
			t.Errorf("%T: Encode %x, go-msgpack %x", m, enc, b)
		}
		if err := decodeTreePayload(b); err != nil {
			t.Errorf("%T: %v", m, err)
		}
	}
	bad := []TreeMessage{
		NewIHave([]Notice{{Origin: "", Boot: 1, Upto: 5}}),
		NewIHave([]Notice{{Origin: "a", Boot: 5, Upto: 4}}),
		NewGraft("a", 0, 3, true),
		NewGraft("a", 4, 3, true),
		NewPrune(""),
		// Since the move: an origin over MaxOrigin, a batch over MaxNotices.
		NewIHave([]Notice{{Origin: strings.Repeat("o", MaxOrigin+1), Boot: 1, Upto: 5}}),
		NewGraft(strings.Repeat("o", MaxOrigin+1), 1, 3, true),
		NewPrune(strings.Repeat("o", MaxOrigin+1)),
		NewIHave(append(most, Notice{Origin: "a", Boot: 1, Upto: 1})),
		NewGrant([]Credit{{Origin: "", Boot: 1, Upto: 5}}),
		NewGrant([]Credit{{Origin: "a", Boot: 0, Upto: 5}}),
		NewGrant(make([]Credit, MaxGrants+1)),
	}
	for _, m := range bad {
		b, _ := EncodeValue(m)
		if err := decodeTreePayload(b); err == nil {
			t.Errorf("%+v accepted", m)
		}
	}
	for _, b := range [][]byte{nil, {0x80}, {0x90}, {0x91, 0xcc}, {0xdc, 0x00}} {
		if _, err := PayloadKind(b); err == nil {
			t.Errorf("PayloadKind(% x) accepted", b)
		}
	}
}

// decodeTreePayload decodes any tree payload by its kind.
func decodeTreePayload(b []byte) error {
	kind, err := PayloadKind(b)
	if err != nil {
		return err
	}
	switch kind {
	case KindIHave:
		_, err = DecodeIHave(b)
	case KindGraft:
		_, err = DecodeGraft(b)
	case KindPrune:
		_, err = DecodePrune(b)
	case KindGrant:
		_, err = DecodeGrant(b)
	default:
		_, err = decodeEnvelope(b)
	}
	return err
}

func FuzzTreePayload(f *testing.F) {
	for _, m := range []any{
		NewIHave([]Notice{{Origin: "a", Boot: 1, Upto: 5}, {Origin: "b", Boot: 9, Upto: 9}}),
		NewGraft("a", 1, 3, false),
		NewPrune("a"),
		NewGrant([]Credit{{Origin: "a", Boot: 1, Upto: 5}}),
		toGo(&Envelope{Origin: "a", Boot: 1, Seq: 1, Name: "x", Path: []string{"a"}, Args: []byte{0x90}}),
	} {
		b, _ := EncodeValue(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = decodeTreePayload(b) // never panics; errors are the link's to drop
	})
}

// GRAFT's stalled flag survives the round trip: the answerer's choice
// between a whole answer and none hangs on it.
func TestGraftStalledRoundTrip(t *testing.T) {
	for _, stalled := range []bool{false, true} {
		g, err := DecodeGraft(NewGraft("a", 1, 3, stalled).Encode())
		if err != nil {
			t.Fatal(err)
		}
		if g.Stalled != stalled || g.Origin != "a" || g.Boot != 1 || g.From != 3 {
			t.Fatalf("decoded %+v, want origin a, boot 1, from 3, stalled %v", g, stalled)
		}
	}
}
