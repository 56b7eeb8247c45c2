package mesh

import (
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/relay"
)

// lossKey is what drops are aggregated by: the link they happened on (nil
// for node-wide ones), the origin whose events they were (gaps only) and
// their cause.
type lossKey struct {
	link   *relay.Link
	origin string
	err    error // nil: a full retransmit buffer (BufferMax)
}

// lossReporter reports the events this node will never deliver, or never
// get to a peer: each drop is counted where it happens, and reported here,
// aggregated: one Overflow PeerEvent and one log line per key per interval,
// with Dropped counting the batch, never one per event. The first drop
// after a quiet interval is reported at once, later ones at the end of the
// interval. add never blocks and takes only the reporter's lock, so it is
// called under the router's; the reports go out from the reporter's timer.
type lossReporter struct {
	interval time.Duration
	log      hclog.Logger
	peers    *peerDispatcher

	mu      sync.Mutex
	pending map[lossKey]*loss
	order   []lossKey // pending's keys, in order of first drop
	last    time.Time // the last flush
	timer   *time.Timer
	armed   bool
	closed  bool
	flushes sync.WaitGroup
}

type loss struct {
	peer    *Peer
	dropped int
}

// lossInterval is how often each kind of drop is reported at most.
const lossInterval = time.Second

func newLossReporter(log hclog.Logger, peers *peerDispatcher) *lossReporter {
	return &lossReporter{interval: lossInterval, log: log, peers: peers, pending: make(map[lossKey]*loss)}
}

// add counts n drops under k; p is the Peer of k.link, if known.
func (r *lossReporter) add(k lossKey, p *Peer, n int) {
	if n <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	l := r.pending[k]
	if l == nil {
		l = &loss{}
		r.pending[k] = l
		r.order = append(r.order, k)
	}
	l.dropped += n
	if p != nil {
		l.peer = p
	}
	if r.armed {
		return
	}
	r.armed = true
	wait := max(r.interval-time.Since(r.last), 0)
	r.flushes.Add(1)
	if r.timer == nil {
		r.timer = time.AfterFunc(wait, r.flush)
	} else {
		r.timer.Reset(wait)
	}
}

// flush reports what is pending.
func (r *lossReporter) flush() {
	defer r.flushes.Done()
	r.mu.Lock()
	pending, order := r.pending, r.order
	r.pending, r.order = make(map[lossKey]*loss), nil
	r.last, r.armed = time.Now(), false
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return
	}
	for _, k := range order {
		r.report(k, pending[k])
	}
}

func (r *lossReporter) report(k lossKey, l *loss) {
	pe := PeerEvent{Kind: Overflow, Peer: l.peer, Dropped: l.dropped, Err: k.err}
	if k.link != nil {
		pe.PeerID, pe.Addr = k.link.RemoteID(), k.link.Addr()
	}
	msg := "events dropped"
	switch {
	case errors.Is(k.err, ErrSlowConsumer):
		msg = "handlers too slow: deliveries dropped"
	case errors.Is(k.err, ErrGap):
		msg = "events declared lost after ReorderTimeout"
		pe.PeerID = k.origin
	case errors.Is(k.err, ErrLate):
		msg = "events dropped: they arrived after ReorderTimeout had declared them lost"
	case k.err == nil:
		msg = "events dropped: a peer's retransmit buffer was full (BufferMax)"
	}
	r.log.Warn(msg, "dropped", l.dropped, "peer", pe.PeerID, "addr", pe.Addr, "error", k.err)
	r.peers.peerEvent(pe)
}

// close stops reporting; what is pending is dropped with the node.
func (r *lossReporter) close() {
	r.mu.Lock()
	r.closed = true
	stopped := r.timer != nil && r.armed && r.timer.Stop()
	r.mu.Unlock()
	if stopped {
		r.flushes.Done() // the flush that will not run
	}
	r.flushes.Wait()
}
