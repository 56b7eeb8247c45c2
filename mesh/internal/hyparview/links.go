package hyparview

import (
	"slices"
	"time"
)

// maxQueued bounds the messages waiting for a link being opened: a request
// and a SHUFFLEREPLY or two. Past it a message is dropped; the request's
// timeout, or the next shuffle, recovers.
const maxQueued = 4

// maxReplyLinks bounds the links being opened only to carry a SHUFFLEREPLY;
// past it a reply is not sent (shuffling is best effort).
const maxReplyLinks = 2

// link is the machine's side of a link to a peer: asked for (Connect
// emitted, not yet up) or up.
type link struct {
	peer  string
	up    bool
	queue []Message // to send once up
	// expires is when Tick closes the link if no active view or request
	// needs it: NeighborTimeout after it was opened or last carried a message.
	expires time.Time
}

func (m *Machine) linkOf(peer string) *link {
	for _, l := range m.links {
		if l.peer == peer {
			return l
		}
	}
	return nil
}

// send sends msg to peer now if the link is up, or once it is, opening it
// if needed.
func (m *Machine) send(peer string, msg Message) {
	l := m.linkOf(peer)
	if l == nil {
		l = &link{peer: peer, expires: m.now.Add(m.cfg.NeighborTimeout)}
		m.links = append(m.links, l)
		m.emit(Connect{Peer: peer})
	}
	switch {
	case l.up:
		m.emit(Send{To: peer, Msg: msg})
	case len(l.queue) < maxQueued:
		l.queue = append(l.queue, msg)
	}
}

// needed reports whether the active view or a request needs the link to peer.
func (m *Machine) needed(peer string) bool { return m.active.has(peer) || m.isPending(peer) }

// releaseIfIdle closes the link to peer if nothing needs it and nothing
// waits to go over it.
func (m *Machine) releaseIfIdle(peer string) {
	if l := m.linkOf(peer); l != nil && len(l.queue) == 0 && !m.needed(peer) {
		m.closeLink(peer)
	}
}

// closeLink forgets the link to peer and asks the caller to close it.
func (m *Machine) closeLink(peer string) {
	m.dropLink(peer)
	m.emit(Disconnect{Peer: peer})
}

// dropLink forgets the link to peer, returning it (nil if there was none).
func (m *Machine) dropLink(peer string) *link {
	for i, l := range m.links {
		if l.peer == peer {
			m.links = slices.Delete(m.links, i, i+1)
			return l
		}
	}
	return nil
}

// expireLinks closes the links that nothing has needed for NeighborTimeout:
// one a peer opened and never used, or one opened for a reply that never
// came up.
func (m *Machine) expireLinks() {
	for i := 0; i < len(m.links); {
		if l := m.links[i]; !m.now.Before(l.expires) && !m.needed(l.peer) {
			m.closeLink(l.peer) // removes m.links[i]
			continue
		}
		i++
	}
}

// replyLinks counts the links being opened that nothing but queued replies need.
func (m *Machine) replyLinks() int {
	n := 0
	for _, l := range m.links {
		if !l.up && !m.needed(l.peer) {
			n++
		}
	}
	return n
}
