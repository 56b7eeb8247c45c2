package mesh

import "sync"

// peerDispatcher runs OnPeer handlers on a goroutine of their own, in the
// order the events were queued. Peer events are few (a link's life, drops
// aggregated per interval): the queue is not bounded and never drops.
type peerDispatcher struct {
	table *handlerTable

	mu     sync.Mutex
	q      []PeerEvent
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

func newPeerDispatcher(t *handlerTable) *peerDispatcher {
	d := &peerDispatcher{table: t, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

// peerEvent queues pe for the OnPeer handlers; it never blocks.
func (d *peerDispatcher) peerEvent(pe PeerEvent) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.q = append(d.q, pe)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *peerDispatcher) run() {
	defer close(d.done)
	var evs []PeerEvent
	for {
		<-d.wake
		d.mu.Lock()
		closed := d.closed
		evs, d.q = d.q, evs[:0] // both keep their capacity
		d.mu.Unlock()
		for _, pe := range evs {
			for _, h := range d.table.snap.Load().peer {
				h.fn(pe)
			}
		}
		clear(evs)
		if closed {
			return
		}
	}
}

// close stops the dispatcher once the events queued so far are delivered
// (a closing node's last reports, such as what it could not deliver).
func (d *peerDispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	<-d.done
}
