package wire

import "fmt"

// Kind is a payload's kind, the first element of its msgpack array.
type Kind uint8

// The payload kinds of protocol version 3.
const (
	KindEvent Kind = 1 // an event: Envelope
	KindIHave Kind = 2 // batched "I have released (origin, boot) up to upto": IHave
	KindGraft Kind = 3 // "be eager for origin again; resend (origin, boot) from seq from": Graft
	KindPrune Kind = 4 // "send origin's events here as notices only": Prune
	KindGrant Kind = 5 // batched "send (origin, boot) here up to upto": Grant
)

func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "EVENT"
	case KindIHave:
		return "IHAVE"
	case KindGraft:
		return "GRAFT"
	case KindPrune:
		return "PRUNE"
	case KindGrant:
		return "GRANT"
	case KindView:
		return "VIEW"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// eventHead is how every envelope starts: a fixarray of its fields, then
// its kind as a positive fixint.
var eventHead = [2]byte{0x90 | envelopeFields, byte(KindEvent)}

// IsEvent is a cheap look at a payload's first two bytes: true if it starts
// as an envelope does (Parse checks the rest).
func IsEvent(p []byte) bool {
	return len(p) > 1 && p[0] == eventHead[0] && p[1] == eventHead[1]
}

// PayloadKind reads the kind of a payload without decoding the rest.
func PayloadKind(b []byte) (Kind, error) {
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
	return Kind(b[i]), nil
}
