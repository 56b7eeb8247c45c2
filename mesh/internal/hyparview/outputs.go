package hyparview

// Output is one thing the caller must carry out, in outbox order: a Send,
// Connect or Disconnect for the transport, an Added or Removed for the
// broadcast layer above. doc.go states the contract.
type Output interface{ isOutput() }

// Send asks the caller to deliver Msg to To's machine over the link to To.
// It is only emitted while that link is up (after LinkUp(To)). Msg.Sample may
// be shared with the machine: read it, do not modify it.
type Send struct {
	To  string
	Msg Message
}

// Connect asks the caller to open a link to Peer and to report LinkUp(Peer)
// once it is established, or LinkDown(Peer) if it cannot be. It is only
// emitted when the machine holds no link to Peer.
type Connect struct{ Peer string }

// Disconnect asks the caller to close the link to Peer for good, after
// delivering the Sends to Peer that precede it; the machine no longer needs
// the link and expects no LinkDown(Peer) for it.
type Disconnect struct{ Peer string }

// Added reports that Peer entered the active view: the link to Peer is up
// and is now one of the node's broadcast links.
type Added struct{ Peer string }

// Removed reports that Peer left the active view: the link stops being a
// broadcast link (it is closed by a Disconnect, or is already lost).
type Removed struct{ Peer string }

func (Send) isOutput()       {}
func (Connect) isOutput()    {}
func (Disconnect) isOutput() {}
func (Added) isOutput()      {}
func (Removed) isOutput()    {}
