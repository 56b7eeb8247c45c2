package wire

import (
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

// MaxGrants bounds one GRANT payload, as MaxNotices bounds an IHAVE.
const MaxGrants = 1024

// Credit is one entry of a GRANT: "you may send (Origin, Boot)'s events up
// to seq Upto here".
type Credit struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Origin string
	Boot   uint64
	Upto   uint64
}

// Grant is [5, [[origin, boot, upto], ...]]: flow control's credit (see
// mesh/internal/flow), batched per link like IHAVE.
type Grant struct {
	//lint:ignore U1000 read by the codec through reflection
	_struct bool `codec:",toarray"`

	Kind    Kind
	Entries []Credit
}

// NewGrant returns a GRANT of entries (at most MaxGrants).
func NewGrant(entries []Credit) *Grant { return &Grant{Kind: KindGrant, Entries: entries} }

// Encode returns m's payload.
func (m *Grant) Encode() []byte { return mustEncode(m) }

// DecodeGrant decodes and validates a GRANT payload.
func DecodeGrant(b []byte) (*Grant, error) {
	m := new(Grant)
	if err := codec.NewDecoderBytes(b, Handle).Decode(m); err != nil {
		return nil, fmt.Errorf("mesh: bad grant payload: %w", err)
	}
	if len(m.Entries) > MaxGrants {
		return nil, fmt.Errorf("mesh: bad grant payload: %d entries, at most %d", len(m.Entries), MaxGrants)
	}
	for _, e := range m.Entries {
		if !validOrigin(e.Origin, e.Boot) {
			return nil, fmt.Errorf("mesh: bad grant (origin %q, boot %d, upto %d)", e.Origin, e.Boot, e.Upto)
		}
	}
	return m, nil
}
