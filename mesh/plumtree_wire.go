package mesh

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// The tree's payload kinds (PROTOCOL.md, "Mesh payloads"). Like events they
// travel in relay DATA frames: reliable and in order with the events of the
// same link, which is what lets a cumulative notice be exact.
const (
	kindIHave = 2 // batched "I have released (origin, boot) up to upto"
	kindGraft = 3 // "be eager for origin again; resend (origin, boot) from seq from"
	kindPrune = 4 // "send origin's events here as notices only"
)

// maxNoticeEntries bounds one IHAVE payload, so that a node that tracks many
// origins never writes a frame near MaxFrameSize: a longer batch is split.
const maxNoticeEntries = 1024

// notice is one entry of an IHAVE batch.
type notice struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Origin string
	Boot   uint64
	Upto   uint64
}

type ihaveMsg struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind    uint8
	Entries []notice
}

type graftMsg struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind   uint8
	Origin string
	Boot   uint64
	From   uint64
}

type pruneMsg struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind   uint8
	Origin string
}

// payloadKind reads the kind of a mesh payload, the first element of its
// msgpack array, without decoding the rest.
func payloadKind(b []byte) (uint8, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("mesh: empty payload")
	}
	i := 0
	switch c := b[0]; {
	case c >= 0x91 && c <= 0x9f: // fixarray of 1 to 15 elements
		i = 1
	case c == 0xdc:
		i = 3
	case c == 0xdd:
		i = 5
	default:
		return 0, fmt.Errorf("mesh: bad payload: not a msgpack array (0x%02x)", c)
	}
	if len(b) <= i || b[i] > 0x7f {
		return 0, fmt.Errorf("mesh: bad payload: no kind")
	}
	return b[i], nil
}

func validOrigin(origin string, boot uint64) bool {
	return origin != "" && len(origin) <= 256 && boot != 0
}

func decodeIHave(b []byte) (*ihaveMsg, error) {
	m := new(ihaveMsg)
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad notice payload: %w", err)
	}
	for _, e := range m.Entries {
		if !validOrigin(e.Origin, e.Boot) || e.Upto < e.Boot {
			return nil, fmt.Errorf("mesh: bad notice (origin %q, boot %d, upto %d)", e.Origin, e.Boot, e.Upto)
		}
	}
	return m, nil
}

func decodeGraft(b []byte) (*graftMsg, error) {
	m := new(graftMsg)
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad graft payload: %w", err)
	}
	if !validOrigin(m.Origin, m.Boot) || m.From < m.Boot {
		return nil, fmt.Errorf("mesh: bad graft (origin %q, boot %d, from %d)", m.Origin, m.Boot, m.From)
	}
	return m, nil
}

func decodePrune(b []byte) (*pruneMsg, error) {
	m := new(pruneMsg)
	if err := codec.NewDecoderBytes(b, wireHandle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad prune payload: %w", err)
	}
	if !validOrigin(m.Origin, 1) {
		return nil, fmt.Errorf("mesh: bad prune (origin %q)", m.Origin)
	}
	return m, nil
}
