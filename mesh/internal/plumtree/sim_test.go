package plumtree

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/dedup"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// A seeded simulation: N machines over reliable FIFO links with random
// latency, each with an orderer and a store as mesh's router has, several
// origins emitting. Every node must get every event exactly once, in order,
// and once the tree has formed, each event must reach each node about once
// (a full mesh settles on each origin's star, a ring on a path around it).

type simEvent struct {
	origin    string
	boot, seq uint64
	path      []string
}

// simMsg is an event or a tree message on a link.
type simMsg struct {
	at    time.Duration
	event *simEvent
	tree  wire.TreeMessage
}

type simNode struct {
	id       string
	m        *Machine
	order    *dedup.Orderer[*simEvent]
	store    map[string]*simEvent // by origin/boot/seq, for GRAFTs
	peers    map[PeerID]int       // PeerID → the other node's index
	byNode   map[int]PeerID
	next     uint64 // own next seq
	received int    // event messages received
	released map[string]uint64
	dups     int
}

type sim struct {
	t     *testing.T
	rng   *rand.Rand
	now   time.Duration
	nodes []*simNode
	links map[[2]int][]simMsg // from, to → FIFO queue
}

const simBoot = 1000

func newSim(t *testing.T, seed uint64, n int, edges [][2]int) *sim {
	s := &sim{t: t, rng: rand.New(rand.NewPCG(seed, 1)), links: map[[2]int][]simMsg{}}
	for i := range n {
		nd := &simNode{id: fmt.Sprintf("n%d", i), store: map[string]*simEvent{}, peers: map[PeerID]int{},
			byNode: map[int]PeerID{}, next: simBoot, released: map[string]uint64{}}
		nd.order = dedup.New[*simEvent](dedup.Config{Grace: time.Second})
		nd.m = New(Config{Self: nd.id, SelfBoot: simBoot, GiveUp: time.Second, IdleTimeout: time.Hour, Released: nd.order})
		s.nodes = append(s.nodes, nd)
	}
	for _, e := range edges {
		for _, d := range [][2]int{{e[0], e[1]}, {e[1], e[0]}} {
			a := s.nodes[d[0]]
			p := a.m.AddPeer()
			a.peers[p], a.byNode[d[1]] = d[1], p
		}
	}
	for i, nd := range s.nodes {
		for p, j := range nd.peers {
			nd.m.PeerUp(p, s.nodes[j].id, 1)
		}
		s.carryOut(i)
	}
	return s
}

func (s *sim) time() time.Time { return time.Unix(0, 0).Add(s.now) }

// send queues msg from node i to its peer p, after a random latency, in
// order behind what the link already carries.
func (s *sim) send(i int, p PeerID, msg simMsg) {
	k := [2]int{i, s.nodes[i].peers[p]}
	q := s.links[k]
	msg.at = s.now + time.Duration(500+s.rng.IntN(2500))*time.Microsecond
	if n := len(q); n > 0 && q[n-1].at > msg.at {
		msg.at = q[n-1].at
	}
	s.links[k] = append(q, msg)
}

func (s *sim) emit(i int) {
	nd := s.nodes[i]
	ev := &simEvent{origin: nd.id, boot: simBoot, seq: nd.next, path: []string{nd.id}}
	nd.next++
	for _, p := range nd.m.Emit(ev.seq, s.time()) {
		s.send(i, p, simMsg{event: ev})
	}
	nd.store[key(ev.origin, ev.boot, ev.seq)] = ev
	s.carryOut(i)
}

func key(origin string, boot, seq uint64) string { return fmt.Sprint(origin, "/", boot, "/", seq) }

// receive is mesh's router in miniature.
func (s *sim) receive(i int, from PeerID, msg simMsg) {
	nd := s.nodes[i]
	now := s.time()
	switch m := msg.tree.(type) {
	case *wire.IHave:
		nd.m.IHave(from, m, now)
	case *wire.Graft:
		nd.m.Graft(from, m, now)
	case *wire.Prune:
		nd.m.Prune(from, m.Origin, now)
	case nil:
		ev := msg.event
		nd.received++
		if ev.origin == nd.id {
			nd.dups++
			break
		}
		ready, v := nd.order.Offer(ev.origin, ev.boot, ev.seq, ev, now, nil)
		switch v {
		case dedup.Fresh:
			nd.m.Fresh(ev.origin, from, now)
			s.release(i, ready, from)
		case dedup.Duplicate:
			nd.dups++
			nd.m.Duplicate(ev.origin, from, now)
		default:
			s.t.Fatalf("%s: %v arrival of %+v", nd.id, v, ev)
		}
	}
	s.carryOut(i)
}

func (s *sim) release(i int, ready []*simEvent, from PeerID) {
	nd := s.nodes[i]
	for _, ev := range ready {
		k := ev.origin + "/" + fmt.Sprint(ev.boot)
		if nd.released[k] != 0 && ev.seq != nd.released[k]+1 {
			s.t.Fatalf("%s released %s seq %d after %d", nd.id, k, ev.seq, nd.released[k])
		}
		nd.released[k] = ev.seq
		fwd := nd.m.Release(ev.origin, ev.boot, ev.seq, from, ev.path, s.time())
		out := &simEvent{origin: ev.origin, boot: ev.boot, seq: ev.seq, path: append(slices.Clone(ev.path), nd.id)}
		for _, p := range fwd {
			s.send(i, p, simMsg{event: out})
		}
		nd.store[key(ev.origin, ev.boot, ev.seq)] = out
		from = NoPeer // held events came from elsewhere
	}
}

func (s *sim) carryOut(i int) {
	nd := s.nodes[i]
	rd := nd.m.Ready()
	for _, snd := range rd.Sends {
		s.send(i, snd.To, simMsg{tree: snd.Msg})
	}
	for _, rs := range rd.Resends {
		for seq := rs.From; seq <= rs.Upto; seq++ {
			if ev := nd.store[key(rs.Origin, rs.Boot, seq)]; ev != nil {
				s.send(i, rs.To, simMsg{event: ev})
			}
		}
	}
	nd.m.TakeDue()
}

// advance runs the network and the nodes' rounds and ticks until d later.
func (s *sim) advance(d time.Duration) {
	end := s.now + d
	for s.now < end {
		step := min(RoundInterval, end-s.now)
		limit := s.now + step
		for {
			var first [2]int
			found := false
			for k, q := range s.links {
				if len(q) > 0 && q[0].at <= limit && (!found || q[0].at < s.links[first][0].at) {
					first, found = k, true
				}
			}
			if !found {
				break
			}
			msg := s.links[first][0]
			s.links[first] = s.links[first][1:]
			s.now = max(s.now, msg.at)
			to := s.nodes[first[1]]
			s.receive(first[1], to.byNode[first[0]], msg)
		}
		s.now = limit
		for i, nd := range s.nodes {
			nd.m.Round(s.time())
			s.release(i, nd.order.Tick(s.time(), nil), NoPeer)
			s.carryOut(i)
		}
	}
}

func (s *sim) totals() (received, delivered int) {
	for _, nd := range s.nodes {
		received += nd.received
		for _, seq := range nd.released {
			delivered += int(seq - simBoot + 1)
		}
	}
	return received, delivered
}

func fullMesh(n int) (e [][2]int) {
	for i := range n {
		for j := i + 1; j < n; j++ {
			e = append(e, [2]int{i, j})
		}
	}
	return e
}

func ring(n int) (e [][2]int) {
	for i := range n {
		e = append(e, [2]int{i, (i + 1) % n})
	}
	return e
}

// randomGraph is a ring plus up to n/2 random chords: connected, with
// cycles, one link per pair of nodes.
func randomGraph(n int, seed uint64) [][2]int {
	rng := rand.New(rand.NewPCG(seed, 2))
	e := ring(n)
	for range n / 2 {
		a, b := rng.IntN(n), rng.IntN(n)
		if a != b && !slices.Contains(e, [2]int{a, b}) && !slices.Contains(e, [2]int{b, a}) {
			e = append(e, [2]int{a, b})
		}
	}
	return e
}

func TestSimulatedTrees(t *testing.T) {
	const n, origins, rounds = 8, 3, 60
	topologies := map[string]func(seed uint64) [][2]int{
		"full mesh": func(uint64) [][2]int { return fullMesh(n) },
		"ring":      func(uint64) [][2]int { return ring(n) },
		"random":    func(seed uint64) [][2]int { return randomGraph(n, seed) },
	}
	for name, edges := range topologies {
		for seed := uint64(1); seed <= 5; seed++ {
			t.Run(fmt.Sprintf("%s/%d", name, seed), func(t *testing.T) {
				s := newSim(t, seed, n, edges(seed))
				var warmRecv, warmDeliv int
				for r := range rounds {
					for o := range origins {
						s.emit(o * n / origins)
					}
					s.advance(20 * time.Millisecond)
					if r == rounds/2 {
						warmRecv, warmDeliv = s.totals()
					}
				}
				s.advance(2 * time.Second) // let every graft and resend settle
				recv, deliv := s.totals()
				if want := origins * rounds * (n - 1); deliv != want {
					t.Fatalf("delivered %d, want %d (every event at every other node)", deliv, want)
				}
				for _, nd := range s.nodes {
					if st := nd.order.Stats(); st.Skipped != 0 || st.Late != 0 {
						t.Fatalf("%s: %+v", nd.id, st)
					}
				}
				// Each origin's eager links form a spanning tree: every other
				// node has one parent (the origin's own links are eager unmarked).
				for o := range origins {
					origin := s.nodes[o*n/origins].id
					edges := len(s.nodes[o*n/origins].peers)
					for _, nd := range s.nodes {
						if or := nd.m.origins[origin]; or != nil && nd.id != origin {
							edges += or.eagerN
						}
					}
					if edges != n-1 {
						t.Fatalf("origin %s's tree has %d edges, want %d", origin, edges, n-1)
					}
				}
				// Once the tree has formed: one event message per delivery,
				// give or take a repair.
				if red := float64(recv-warmRecv) / float64(deliv-warmDeliv); red > 1.05 {
					t.Fatalf("steady redundancy %.2f, want about 1", red)
				}
			})
		}
	}
}
