package wire

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// KindView is a partial-view (HyParView) message. It travels between
// members over membership's reliable messages, not over relay links.
const KindView Kind = 6

// Bounds of a View, checked by DecodeView (the overlay's own, tighter
// bounds are its Message.Validate's).
const (
	maxViewSample = 64
	maxViewID     = 256
)

// View is [6, from, boot, seq, msg, node, ttl, flags, [sample...]]: one
// HyParView message from node From (boot Boot), the Seq-th it sent in that
// boot, so that a receiver drops one that arrives after a later one.
// Msg, Node, TTL and Sample are the message's fields; Flags holds its
// booleans (ViewHigh, ViewAccept, ViewAlive).
type View struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind   Kind
	From   string
	Boot   uint64
	Seq    uint64
	Msg    uint8
	Node   string
	TTL    uint8
	Flags  uint8
	Sample []string
}

// The bits of View.Flags.
const (
	ViewHigh   = 1 << iota // NEIGHBOR: high priority
	ViewAccept             // NEIGHBORREPLY: accepted
	ViewAlive              // DISCONNECT: keep me in your passive view
)

// Encode returns v's payload, with its Kind set.
func (v *View) Encode() []byte {
	v.Kind = KindView
	return mustEncode(v)
}

// DecodeView decodes a View payload and checks its bounds.
func DecodeView(b []byte) (*View, error) {
	if k, err := PayloadKind(b); err != nil || k != KindView {
		return nil, fmt.Errorf("mesh: bad view payload: kind %v, %v", k, err)
	}
	v := new(View)
	if err := codec.NewDecoderBytes(b, Handle).Decode(v); err != nil {
		return nil, fmt.Errorf("mesh: bad view payload: %w", err)
	}
	switch {
	case !validOrigin(v.From, v.Boot):
		return nil, fmt.Errorf("mesh: bad view payload: sender %q, boot %d", v.From, v.Boot)
	case len(v.Node) > maxViewID, len(v.Sample) > maxViewSample:
		return nil, fmt.Errorf("mesh: bad view payload: %d-byte node, %d-id sample", len(v.Node), len(v.Sample))
	}
	for _, id := range v.Sample {
		if len(id) > maxViewID {
			return nil, fmt.Errorf("mesh: bad view payload: a %d-byte id in the sample", len(id))
		}
	}
	return v, nil
}
