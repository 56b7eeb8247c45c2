package wire

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The broadcast tree's messages. Like events they travel in relay DATA
// frames, reliable and in order with the events of the same link, which is
// what lets a cumulative notice be exact. They are rare next to events, so
// go-msgpack encodes them.

// MaxNotices bounds one IHAVE payload, so that a node that tracks many
// origins never writes a frame near MaxFrameSize: a longer batch is split.
const MaxNotices = 1024

// Notice is one entry of an IHAVE: "I have released (Origin, Boot) up to Upto".
type Notice struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Origin string
	Boot   uint64
	Upto   uint64
}

// IHave is [2, [[origin, boot, upto], ...]].
type IHave struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind    Kind
	Entries []Notice
}

// Graft is [3, origin, boot, from, stalled].
type Graft struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind   Kind
	Origin string
	Boot   uint64
	From   uint64
	// Stalled says that no eager path brings the grafter the origin's
	// events: it takes what the answerer still stores of the range, even
	// without its head (the rest is lost, and reported). Without it the
	// grafter's eager path is still bringing the events, only later than
	// the announcer had them: an answer that cannot start at From would
	// open a gap ahead of that path, so the answerer sends nothing and
	// stays lazy (PROTOCOL.md section 9).
	Stalled bool
}

// Prune is [4, origin].
type Prune struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind   Kind
	Origin string
}

// mustEncode encodes one of the tree's messages: plain structs of strings
// and integers, which go-msgpack cannot fail to encode.
func mustEncode(v any) []byte {
	b, err := EncodeValue(v)
	if err != nil {
		panic(fmt.Sprintf("wire: encoding %T: %v", v, err))
	}
	return b
}

func validOrigin(origin string, boot uint64) bool {
	return origin != "" && len(origin) <= MaxOrigin && boot != 0
}

// DecodeIHave decodes and validates an IHAVE payload.
func DecodeIHave(b []byte) (*IHave, error) {
	m := new(IHave)
	if err := codec.NewDecoderBytes(b, Handle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad notice payload: %w", err)
	}
	if len(m.Entries) > MaxNotices {
		return nil, fmt.Errorf("mesh: bad notice payload: %d entries, at most %d", len(m.Entries), MaxNotices)
	}
	for _, e := range m.Entries {
		if !validOrigin(e.Origin, e.Boot) || e.Upto < e.Boot {
			return nil, fmt.Errorf("mesh: bad notice (origin %q, boot %d, upto %d)", e.Origin, e.Boot, e.Upto)
		}
	}
	return m, nil
}

// DecodeGraft decodes and validates a GRAFT payload.
func DecodeGraft(b []byte) (*Graft, error) {
	m := new(Graft)
	if err := codec.NewDecoderBytes(b, Handle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad graft payload: %w", err)
	}
	if !validOrigin(m.Origin, m.Boot) || m.From < m.Boot {
		return nil, fmt.Errorf("mesh: bad graft (origin %q, boot %d, from %d)", m.Origin, m.Boot, m.From)
	}
	return m, nil
}

// DecodePrune decodes and validates a PRUNE payload.
func DecodePrune(b []byte) (*Prune, error) {
	m := new(Prune)
	if err := codec.NewDecoderBytes(b, Handle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad prune payload: %w", err)
	}
	if !validOrigin(m.Origin, 1) {
		return nil, fmt.Errorf("mesh: bad prune (origin %q)", m.Origin)
	}
	return m, nil
}

// TreeMessage is IHAVE, GRAFT or PRUNE, as the tree's machine asks for them.
type TreeMessage interface {
	Encode() []byte
}

// NewIHave returns an IHAVE of entries (at most MaxNotices).
func NewIHave(entries []Notice) *IHave { return &IHave{Kind: KindIHave, Entries: entries} }

// NewGraft returns a GRAFT.
func NewGraft(origin string, boot, from uint64, stalled bool) *Graft {
	return &Graft{Kind: KindGraft, Origin: origin, Boot: boot, From: from, Stalled: stalled}
}

// NewPrune returns a PRUNE.
func NewPrune(origin string) *Prune { return &Prune{Kind: KindPrune, Origin: origin} }

// Encode returns m's payload.
func (m *IHave) Encode() []byte { return mustEncode(m) }

// Encode returns m's payload.
func (m *Graft) Encode() []byte { return mustEncode(m) }

// Encode returns m's payload.
func (m *Prune) Encode() []byte { return mustEncode(m) }
