package membership

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/memberlist"
)

// ErrUnknownMember is wrapped by Send for a name that is not a live member.
var ErrUnknownMember = errors.New("membership: no live member of that name")

// MaxMessage bounds a message Send takes: memberlist carries it whole in
// one stream, and a receiver gets at most this much from anyone.
const MaxMessage = 16 << 10

// Send delivers msg to the live member called name over memberlist's
// reliable stream (TCP, encrypted with the gossip key when one is set),
// where the receiver's Config.Messages gets it. It returns once the stream
// has taken msg, or the first error; it blocks for the connection and
// write, at most memberlist's TCPTimeout. Messages to one member sent one
// after the other usually arrive in order, but each goes on its own stream:
// a receiver that needs order numbers them.
func (m *Membership) Send(name string, msg []byte) error {
	if m.isClosed() {
		return ErrClosed
	}
	if len(msg) > MaxMessage {
		return fmt.Errorf("membership: message of %d bytes, the limit is %d", len(msg), MaxMessage)
	}
	// memberlist's own *Node records change under its lock while we would
	// read them: address a copy, made from what the delegate recorded.
	for _, mem := range m.del.members(time.Now()) {
		if mem.Name != name || mem.State != StateAlive {
			continue
		}
		host, port, err := splitIPPort(mem.Addr, false)
		if err != nil {
			return fmt.Errorf("membership: send to %q: %w", name, err)
		}
		return m.list.SendReliable(&memberlist.Node{Name: name, Addr: net.ParseIP(host), Port: uint16(port)}, msg)
	}
	return fmt.Errorf("%w: %q", ErrUnknownMember, name)
}
