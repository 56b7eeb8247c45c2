package hyparview

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// fuzzPeers are the ids a fuzzed machine "m" deals with: m itself and an
// empty id are there to be refused.
var fuzzPeers = []string{"a", "b", "c", "d", "e", "f", "g", "m", ""}

// opReader hands out the bytes of a fuzz input, zeros once exhausted.
type opReader struct{ data []byte }

func (r *opReader) byte() byte {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return b
}

func (r *opReader) peer() string { return fuzzPeers[int(r.byte())%len(fuzzPeers)] }

func (r *opReader) sample() []string {
	n := int(r.byte()) % 6
	var s []string
	for range n {
		s = append(s, r.peer())
	}
	return s
}

// message builds a message from the input: mostly well-formed with mode
// 0, anything at all otherwise.
func (r *opReader) message(wellFormed bool) Message {
	if !wellFormed {
		flags := r.byte()
		return Message{Kind: Kind(r.byte() % 9), Node: r.peer(), TTL: r.byte() % 20, Sample: r.sample(),
			High: flags&1 != 0, Accept: flags&2 != 0, Alive: flags&4 != 0}
	}
	k := Kind(1 + r.byte()%7)
	msg := Message{Kind: k}
	flag := r.byte()&1 != 0
	switch k {
	case KindForwardJoin, KindShuffle:
		msg.Node, msg.TTL = r.peer(), r.byte()%5
	case KindNeighbor:
		msg.High = flag
	case KindNeighborReply:
		msg.Accept = flag
	case KindDisconnect:
		msg.Alive = flag
	}
	if k == KindShuffle || k == KindShuffleReply {
		for _, id := range r.sample() {
			if id != "" && !slices.Contains(msg.Sample, id) {
				msg.Sample = append(msg.Sample, id)
			}
		}
	}
	return msg
}

// contract is the caller's side of the outbox contract: what the machine
// was told about links and what it asked for. It fails on any output the
// contract does not allow.
type contract struct {
	t      testing.TB
	links  map[string]string // peer -> "dialing" or "up"
	active map[string]bool
}

func (c *contract) check(m *Machine) {
	c.t.Helper()
	for _, o := range m.Drain() {
		switch o := o.(type) {
		case Connect:
			if c.links[o.Peer] != "" {
				c.t.Fatalf("Connect %s with the link %s", o.Peer, c.links[o.Peer])
			}
			c.links[o.Peer] = "dialing"
		case Send:
			if c.links[o.To] != "up" {
				c.t.Fatalf("Send %v to %s on a link %q", o.Msg, o.To, c.links[o.To])
			}
			if err := o.Msg.Validate(); err != nil {
				c.t.Fatalf("Send of a malformed message: %v", err)
			}
		case Disconnect:
			if c.links[o.Peer] == "" || c.active[o.Peer] {
				c.t.Fatalf("Disconnect %s: link %q, active %v", o.Peer, c.links[o.Peer], c.active[o.Peer])
			}
			delete(c.links, o.Peer)
		case Added:
			if c.active[o.Peer] || c.links[o.Peer] != "up" {
				c.t.Fatalf("Added %s: already active %v, link %q", o.Peer, c.active[o.Peer], c.links[o.Peer])
			}
			c.active[o.Peer] = true
		case Removed:
			if !c.active[o.Peer] {
				c.t.Fatalf("Removed %s, not active", o.Peer)
			}
			delete(c.active, o.Peer)
		}
	}
	if err := m.checkInvariants(); err != nil {
		c.t.Fatal(err)
	}
	got := sorted(m.Active())
	var model []string
	for p := range c.active {
		model = append(model, p)
	}
	if !slices.Equal(got, sorted(model)) {
		c.t.Fatalf("active view %v, but Added/Removed say %v", got, sorted(model))
	}
}

// runOps feeds machine "m" the operations data encodes, checking the
// invariants and the outbox contract after each.
func runOps(t testing.TB, data []byte) {
	r := &opReader{data: data}
	cfg := Config{ActiveSize: 3, PassiveSize: 5, ARWL: 3, PRWL: 2, ShuffleActive: 1, ShufflePassive: 2,
		ShuffleInterval: 2 * time.Second, NeighborTimeout: 3 * time.Second}
	m, err := New("m", cfg, rand.New(rand.NewPCG(uint64(r.byte()), 0)), t0)
	if err != nil {
		t.Fatal(err)
	}
	c := &contract{t: t, links: map[string]string{}, active: map[string]bool{}}
	now := t0
	for len(r.data) > 0 {
		switch op := r.byte() % 12; op {
		case 0:
			m.Join(r.peer())
		case 1:
			linkUp(m, c, r.peer())
		case 2:
			p := r.peer()
			m.LinkDown(p)
			delete(c.links, p)
			if c.active[p] && m.active.has(p) {
				t.Fatalf("LinkDown(%s) kept it active", p)
			}
		case 3, 4, 5: // a peer, often over a link it opens now, sends a well-formed message
			p := r.peer()
			if r.byte()&1 == 0 {
				linkUp(m, c, p)
				c.check(m)
			}
			receiveOp(t, m, c, p, r.message(true))
		case 6:
			receiveOp(t, m, c, r.peer(), r.message(false))
		case 7:
			now = now.Add(time.Duration(r.byte()) * 50 * time.Millisecond)
			m.Tick(now)
		case 8:
			m.Candidates(r.sample())
		case 9:
			m.Forget(r.peer())
		case 10:
			m.Tick(now.Add(-time.Second)) // a clock going back is taken as standing still
		case 11:
			if r.byte() < 16 {
				m.Leave()
			}
		}
		c.check(m)
	}
}

func linkUp(m *Machine, c *contract, p string) {
	if m.valid(p) {
		m.LinkUp(p)
		c.links[p] = "up"
	}
}

// receiveOp feeds one message; a refused one must change nothing.
func receiveOp(t testing.TB, m *Machine, c *contract, from string, msg Message) {
	active, passive, links := m.Active(), m.Passive(), len(m.links)
	err := m.Receive(from, msg)
	if err == nil {
		return
	}
	if !errors.Is(err, ErrBadMessage) && !errors.Is(err, ErrNotLinked) {
		t.Fatalf("Receive: unexpected error %v", err)
	}
	if errors.Is(err, ErrNotLinked) && c.links[from] == "up" {
		t.Fatalf("Receive from %s over an up link: %v", from, err)
	}
	if m.Ready() || !slices.Equal(active, m.Active()) || !slices.Equal(passive, m.Passive()) || links != len(m.links) {
		t.Fatalf("refused %v from %q (%v) but the machine changed", msg, from, err)
	}
}

func FuzzMachine(f *testing.F) {
	f.Add([]byte{1, 0, 0, 1, 0, 3, 0, 3, 1})                          // join a, link up, accepted
	f.Add([]byte{1, 1, 1, 3, 1, 2, 1, 1, 2, 1, 1, 2, 0, 5, 200})      // neighbours, then time passes
	f.Add([]byte{7, 6, 5, 0, 1, 2, 3, 4, 5, 3, 5, 0, 5, 200, 5, 100}) // candidates, ticks
	f.Add([]byte{2, 1, 0, 3, 0, 2, 1, 1, 1, 4, 1, 5, 3, 9, 1, 2, 0})  // a malformed message
	f.Fuzz(func(t *testing.T, data []byte) { runOps(t, data) })
}

// TestMachineRandomOps runs the fuzz target's checks on seeded random
// inputs, so that the default test run covers it.
func TestMachineRandomOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for range 2000 {
		data := make([]byte, 300)
		for i := range data {
			data[i] = byte(rng.UintN(256))
		}
		runOps(t, data)
	}
}
