package membership

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Member states, as reported in Member.State.
const (
	StateAlive   = "alive"
	StateSuspect = "suspect"
	StateDead    = "dead"
	StateLeft    = "left"
)

// Member is one node of the cluster as this node sees it.
type Member struct {
	Name      string // NodeID
	Addr      string // gossip host:port
	RelayAddr string
	Channel   string
	Version   int
	// ActiveView is the member's partial-view size, 0 when it links every
	// member, -1 when it does not say (Meta.ActiveView).
	ActiveView int
	State      string // StateAlive, StateSuspect, StateDead or StateLeft
}

// EventKind says what changed about a member.
type EventKind int

// Event kinds. MemberLeave covers both a graceful leave and a failure:
// Member.State says which, "left" (the member announced its departure) or
// "dead" (others stopped hearing from it).
const (
	MemberJoin EventKind = iota + 1
	MemberUpdate
	MemberLeave
	// MemberMoved: a member memberlist still knows at its old address
	// claims its name from a new one (a restart on a new address).
	// memberlist refuses the new address until the old record is dead;
	// Member carries the claimant's address and metadata, so that a caller
	// whose link to it is down can follow it at once. A MemberJoin or
	// MemberUpdate follows once memberlist takes the new address (see
	// reclaim.go).
	MemberMoved

	memberReclaim // internal: join a moved member's new address
)

func (k EventKind) String() string {
	switch k {
	case MemberJoin:
		return "join"
	case MemberUpdate:
		return "update"
	case MemberLeave:
		return "leave"
	case MemberMoved:
		return "moved"
	default:
		return fmt.Sprintf("EventKind(%d)", int(k))
	}
}

// Event is one change of a member, as handed to Config.Events.
type Event struct {
	Kind   EventKind
	Member Member
}

// entry is our record of another member. memberlist's own Members() hides
// dead and left nodes, and the *Node it returns is shared with its state
// (reading it races), so the view is kept here from the notifications.
type entry struct {
	member  Member
	leaving bool      // its last metadata announced a graceful leave
	goneAt  time.Time // when it became dead or left
}

// delegate is memberlist's Delegate and EventDelegate. memberlist calls the
// Notify* methods with its node lock held, one at a time, so they only
// update the view and append to the queue: they never block and never call
// back into memberlist.
type delegate struct {
	self    string
	channel string
	log     hclog.Logger
	reap    time.Duration // how long departed members stay listed

	messages func([]byte) // Config.Messages

	metaMu sync.Mutex
	meta   []byte // our encoded metadata, served by NodeMeta

	mu     sync.Mutex
	view   map[string]*entry
	queue  []Event
	closed bool
	wake   chan struct{} // capacity 1: "the queue is not empty"
	queued bool          // whether events are queued at all (Config.Events set)

	conflicts  map[string]string       // member name -> the new address claiming it (reclaim.go)
	reclaiming map[string]bool         // member names with a reclaim queued or in flight
	failed     map[string]failedMember // members seen dead, to reconnect (reconnect.go)
}

func newDelegate(cfg *Config, meta []byte) *delegate {
	return &delegate{
		self:    cfg.NodeID,
		channel: cfg.Channel,
		log:     cfg.Logger,
		meta:    meta,
		view:    make(map[string]*entry),
		wake:    make(chan struct{}, 1),
		queued:  cfg.Events != nil,

		messages:   cfg.Messages,
		conflicts:  make(map[string]string),
		reclaiming: make(map[string]bool),
		failed:     make(map[string]failedMember),
	}
}

func (d *delegate) setMeta(b []byte) {
	d.metaMu.Lock()
	d.meta = b
	d.metaMu.Unlock()
}

// NodeMeta implements memberlist.Delegate. The stored bytes were checked
// against MetaMaxSize when set (memberlist panics on longer metadata).
func (d *delegate) NodeMeta(limit int) []byte {
	d.metaMu.Lock()
	defer d.metaMu.Unlock()
	if len(d.meta) > limit {
		return nil
	}
	return append([]byte(nil), d.meta...)
}

// User messages carry Send's messages (mesh's overlay); no push/pull
// payload: relay carries the data.

// NotifyMsg implements memberlist.Delegate: it hands a copy of a user
// message to Config.Messages (memberlist reuses b after the call).
func (d *delegate) NotifyMsg(b []byte) {
	if d.messages != nil && len(b) > 0 && len(b) <= MaxMessage {
		d.messages(append([]byte(nil), b...))
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (d *delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (d *delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (d *delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d *delegate) NotifyJoin(n *memberlist.Node) { d.notify(n, MemberJoin, time.Now()) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.notify(n, MemberUpdate, time.Now()) }

// NotifyLeave implements memberlist.EventDelegate.
func (d *delegate) NotifyLeave(n *memberlist.Node) { d.notify(n, MemberLeave, time.Now()) }

// notify folds one memberlist notification into the view and queues the
// matching Event. The local node is not part of the view (Local covers it),
// and a node whose metadata is not ours or names another channel is ignored:
// the Label already keeps other channels out, this is the second fence.
func (d *delegate) notify(n *memberlist.Node, kind EventKind, now time.Time) {
	if n.Name == d.self {
		return
	}
	meta, leaving, err := decodeMeta(n.Meta)
	if err != nil || meta.Channel != d.channel {
		d.log.Warn("ignoring member of another kind or channel", "member", n.Name,
			"addr", n.Address(), "channel", meta.Channel, "error", err)
		return
	}
	m := Member{
		Name:       n.Name,
		Addr:       n.Address(),
		RelayAddr:  meta.RelayAddr,
		Channel:    meta.Channel,
		Version:    meta.Version,
		ActiveView: meta.ActiveView,
		State:      StateAlive,
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	old, known := d.view[n.Name]
	if kind != MemberLeave && d.conflicts[n.Name] == m.Addr {
		delete(d.conflicts, n.Name) // memberlist took the new address
	}
	switch kind {
	case MemberJoin:
		d.view[n.Name] = &entry{member: m, leaving: leaving}
	case MemberUpdate:
		if !known || old.member.State != StateAlive {
			kind = MemberJoin // an update is the first we hear of it
		}
		d.view[n.Name] = &entry{member: m, leaving: leaving}
		if leaving && known && old.member.State == StateAlive {
			// Our own leave signal, not a change the caller cares about;
			// the leave follows.
			return
		}
	case MemberLeave:
		if !known {
			return
		}
		// memberlist marks a node that announced its own death (Leave)
		// StateLeft, one declared dead by others StateDead; our metadata
		// flag says the same and covers a left state lost in gossip.
		m.State = StateDead
		if n.State == memberlist.StateLeft || leaving || old.leaving {
			m.State = StateLeft
		}
		d.view[n.Name] = &entry{member: m, leaving: leaving || old.leaving, goneAt: now}
		if m.State == StateLeft {
			delete(d.conflicts, n.Name)
		}
	}
	d.failedLocked(m.Name, m.Addr, m.State, now)
	d.enqueue(Event{Kind: kind, Member: m}, d.queued)
	if kind == MemberLeave {
		d.queueReclaimLocked(n.Name) // a conflict waited for the old record's death
	}
}

// members returns the view sorted by name, after dropping members that have
// been gone longer than the reap time (as memberlist forgets them too).
func (d *delegate) members(now time.Time) []Member {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Member, 0, len(d.view))
	for name, e := range d.view {
		if !e.goneAt.IsZero() && now.Sub(e.goneAt) > d.reap {
			delete(d.view, name)
			delete(d.conflicts, name)
			continue
		}
		out = append(out, e.member)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// take hands the queued events to the runner.
func (d *delegate) take() []Event {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queue
	d.queue = nil
	return q
}

// closeQueue stops queueing: notifications memberlist still makes while it
// winds down are dropped, and so are events not yet delivered.
func (d *delegate) closeQueue() {
	d.mu.Lock()
	d.closed = true
	d.queue = nil
	d.mu.Unlock()
}

// run delivers queued events to fn, in order, until done is closed.
func (d *delegate) run(fn func(Event), done <-chan struct{}) {
	for {
		select {
		case <-d.wake:
		case <-done:
			return
		}
		for batch := d.take(); len(batch) > 0; batch = d.take() {
			for _, e := range batch {
				select {
				case <-done:
					return
				default:
				}
				fn(e)
			}
		}
	}
}
