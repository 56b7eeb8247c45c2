package mesh

import (
	"time"

	"github.com/verbosemesh/verbose/mesh/internal/flow"
	"github.com/verbosemesh/verbose/mesh/internal/store"
)

// A GRAFT's answer is taken out of the stores when the GRAFT is answered,
// and flow control sends it from there as the grafter's credit and its
// link's room allow. Taken lazily, one event at a time as flow sent it, an
// answer lost its tail whenever sending was slower than the stores moved
// on: they are shared by every origin, and four origins blasting at once
// pushed a range out within 250ms while the answer waited for room. The
// answerer then went on with the origin's live events, the grafter held
// them behind the hole, and its next GRAFT was refused (the head was gone)
// while it waited for an eager path that was the answerer itself: the
// range was declared lost after ReorderTimeout (16 nodes, views of 4, 4
// origins × 8,000 events: 249 to 14,494 deliveries lost, run to run).

// answer is a GRAFT's range of one origin's boot, from seq from: each
// payload is nil once sent (or if the stores no longer held it).
type answer struct {
	boot, from uint64
	payloads   [][]byte
}

type answerKey struct {
	to     flow.Peer
	origin string
}

// takeAnswer takes the range [lo, hi] of (origin, boot) out of the stores
// for peer to, in place of any earlier answer of the origin to it (flow's
// catchup is replaced the same way). Called with mu held.
func (r *router) takeAnswer(to flow.Peer, origin string, boot, lo, hi uint64, now time.Time) {
	a := &answer{boot: boot, from: lo, payloads: make([][]byte, 0, hi-lo+1)}
	for seq := lo; seq <= hi; seq++ {
		a.payloads = append(a.payloads, r.resendable(store.Key{Origin: origin, Boot: boot, Seq: seq}, now))
	}
	if r.answers == nil {
		r.answers = make(map[answerKey]*answer)
	}
	r.answers[answerKey{to, origin}] = a
}

// answered returns the payload of a resend flow asked for, and whether an
// answer covers it (it may be nil: a miss). The answer is let go after its
// last event. Called with mu held.
func (r *router) answered(rs flow.Resend) (p []byte, ok bool) {
	k := answerKey{rs.To, rs.Origin}
	a := r.answers[k]
	if a == nil || a.boot != rs.Boot || rs.Seq < a.from || rs.Seq-a.from >= uint64(len(a.payloads)) {
		return nil, false
	}
	i := rs.Seq - a.from
	p, a.payloads[i] = a.payloads[i], nil
	if i == uint64(len(a.payloads))-1 {
		delete(r.answers, k)
	}
	return p, true
}

// dropAnswers lets go of p's answers: its link went down or away, which
// ends flow's catchups (the remote grafts again what it still lacks).
// Called with mu held.
func (r *router) dropAnswers(p flow.Peer) {
	for k := range r.answers {
		if k.to == p {
			delete(r.answers, k)
		}
	}
}
