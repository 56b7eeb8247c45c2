package hyparview

import (
	"errors"
	"fmt"
)

// Bounds of a Message's fields, checked by Validate.
const (
	// MaxTTL is the largest TTL a walk may carry (Config.ARWL's bound).
	MaxTTL = 16
	// MaxSample is the most node ids a SHUFFLE or SHUFFLEREPLY carries.
	MaxSample = 32
	// MaxIDLen is the longest node id, in bytes (mesh's NodeID bound).
	MaxIDLen = 256
)

// ErrBadMessage is wrapped by the errors of Message.Validate and of
// Machine.Receive for a message it refuses.
var ErrBadMessage = errors.New("hyparview: bad message")

// Kind is a message's type.
type Kind uint8

// The kinds of message, named as in the paper.
const (
	// KindJoin asks the receiver, a contact, to take the sender into its
	// active view and to spread it by FORWARDJOIN walks. Always accepted,
	// with a NEIGHBORREPLY.
	KindJoin Kind = iota + 1
	// KindForwardJoin is one step of a random walk announcing the joining
	// node Node; TTL is how many more hops it may take.
	KindForwardJoin
	// KindNeighbor asks the receiver to take the sender into its active view,
	// with priority High (always accepted) or low (accepted only if there is
	// room). Answered by a NEIGHBORREPLY.
	KindNeighbor
	// KindNeighborReply answers a JOIN or NEIGHBOR: Accept or reject.
	KindNeighborReply
	// KindDisconnect tells the receiver that the sender dropped it from its
	// active view; Alive asks to be kept in the receiver's passive view.
	KindDisconnect
	// KindShuffle is one step of the random walk of Node's shuffle, carrying
	// Node's Sample; TTL is how many more hops it may take.
	KindShuffle
	// KindShuffleReply answers a SHUFFLE, to its origin, with a Sample of
	// the passive view of the walk's last node.
	KindShuffleReply
)

var kindNames = [...]string{
	KindJoin: "JOIN", KindForwardJoin: "FORWARDJOIN", KindNeighbor: "NEIGHBOR",
	KindNeighborReply: "NEIGHBORREPLY", KindDisconnect: "DISCONNECT",
	KindShuffle: "SHUFFLE", KindShuffleReply: "SHUFFLEREPLY",
}

func (k Kind) String() string {
	if k >= KindJoin && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Message is one HyParView message. The sender is not a field: it is the
// peer at the other end of the link the message came over. Each field
// belongs to the kinds its comment names and is zero in the others; Validate
// enforces it, so that a wire decoder can rely on it.
type Message struct {
	Kind Kind
	// Node is the subject of a random walk: the joining node (FORWARDJOIN)
	// or the shuffle's origin (SHUFFLE).
	Node string
	// TTL is how many more hops a walk may take (FORWARDJOIN, SHUFFLE),
	// at most MaxTTL.
	TTL uint8
	// Sample is a list of distinct node ids, at most MaxSample (SHUFFLE,
	// SHUFFLEREPLY).
	Sample []string
	// High is a NEIGHBOR's priority.
	High bool
	// Accept is a NEIGHBORREPLY's answer.
	Accept bool
	// Alive is a DISCONNECT's "keep me in your passive view".
	Alive bool
}

// Validate reports why m is malformed: an unknown kind, a field set that its
// kind does not use, an empty or over-long id, a TTL above MaxTTL, a sample
// above MaxSample or naming a node twice. What only the receiver can judge
// (a message from itself, a walk naming its sender) Machine.Receive checks.
func (m Message) Validate() error {
	if err := m.checkFields(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadMessage, m.Kind, err)
	}
	return nil
}

func (m Message) checkFields() error {
	walk := m.Kind == KindForwardJoin || m.Kind == KindShuffle
	sample := m.Kind == KindShuffle || m.Kind == KindShuffleReply
	switch {
	case m.Kind < KindJoin || m.Kind > KindShuffleReply:
		return errors.New("unknown kind")
	case !walk && (m.Node != "" || m.TTL != 0):
		return errors.New("walk fields set")
	case !sample && len(m.Sample) > 0:
		return errors.New("sample set")
	case m.High && m.Kind != KindNeighbor, m.Accept && m.Kind != KindNeighborReply, m.Alive && m.Kind != KindDisconnect:
		return errors.New("flag set")
	case m.TTL > MaxTTL:
		return fmt.Errorf("ttl %d above %d", m.TTL, MaxTTL)
	case len(m.Sample) > MaxSample:
		return fmt.Errorf("sample of %d above %d", len(m.Sample), MaxSample)
	}
	if walk {
		if err := checkID(m.Node); err != nil {
			return fmt.Errorf("node: %v", err)
		}
	}
	for i, id := range m.Sample {
		if err := checkID(id); err != nil {
			return fmt.Errorf("sample[%d]: %v", i, err)
		}
		for _, prev := range m.Sample[:i] {
			if prev == id {
				return fmt.Errorf("sample names %q twice", id)
			}
		}
	}
	return nil
}

// checkID reports whether id can name a node.
func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("empty id")
	case len(id) > MaxIDLen:
		return fmt.Errorf("id of %d bytes above %d", len(id), MaxIDLen)
	}
	return nil
}

// String renders m as in the paper, e.g. FORWARDJOIN(n7, ttl 5) or
// NEIGHBOR(high), for logs and tests.
func (m Message) String() string {
	switch m.Kind {
	case KindForwardJoin, KindShuffle:
		s := fmt.Sprintf("%s(%s, ttl %d", m.Kind, m.Node, m.TTL)
		if m.Kind == KindShuffle {
			s += fmt.Sprintf(", %v", m.Sample)
		}
		return s + ")"
	case KindNeighbor:
		return fmt.Sprintf("%s(%s)", m.Kind, choose(m.High, "high", "low"))
	case KindNeighborReply:
		return fmt.Sprintf("%s(%s)", m.Kind, choose(m.Accept, "accept", "reject"))
	case KindDisconnect:
		return fmt.Sprintf("%s(%s)", m.Kind, choose(m.Alive, "alive", "gone"))
	case KindShuffleReply:
		return fmt.Sprintf("%s(%v)", m.Kind, m.Sample)
	}
	return m.Kind.String()
}

func choose(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}
