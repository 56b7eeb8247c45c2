package hyparview

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestJoinerSide(t *testing.T) {
	m := newMachine(t, "n", Config{})
	if err := m.Join("c"); err != nil {
		t.Fatal(err)
	}
	want(t, drain(t, m), "connect c")
	m.LinkUp("c")
	want(t, drain(t, m), "send c JOIN")
	want(t, receive(t, m, "c", Message{Kind: KindNeighborReply, Accept: true}), "added c")
	want(t, m.Active(), "c")
	for _, bad := range []string{"", "n"} {
		if err := m.Join(bad); err == nil {
			t.Errorf("Join(%q) accepted", bad)
		}
	}
}

func TestJoinFansOutForwardJoin(t *testing.T) {
	m := newMachine(t, "c", Config{})
	withActive(t, m, "a", "b")
	m.LinkUp("n")
	want(t, receive(t, m, "n", Message{Kind: KindJoin}),
		"added n",
		"send n NEIGHBORREPLY(accept)",
		"send a FORWARDJOIN(n, ttl 6)",
		"send b FORWARDJOIN(n, ttl 6)")
}

func TestJoinEvictsWhenFull(t *testing.T) {
	m := newMachine(t, "c", Config{ActiveSize: 3})
	withActive(t, m, "a", "b", "d")
	m.LinkUp("n")
	out := receive(t, m, "n", Message{Kind: KindJoin})
	if len(m.Active()) != 3 || !slices.Contains(m.Active(), "n") {
		t.Fatalf("active %v after a JOIN into a full view", m.Active())
	}
	evicted := only(out, "removed ")
	if len(evicted) != 1 {
		t.Fatalf("want one eviction, got %v", out)
	}
	e := evicted[0][len("removed "):]
	want(t, out[:4], "removed "+e, "send "+e+" DISCONNECT(alive)", "disconnect "+e, "added n")
	if !slices.Contains(m.Passive(), e) {
		t.Fatalf("evicted %s not kept in the passive view %v", e, m.Passive())
	}
	if fj := only(out, "send "); len(fj) != 4 { // the eviction, the reply, two walks
		t.Fatalf("sends %v", fj)
	}
}

func TestForwardJoin(t *testing.T) {
	tests := []struct {
		name        string
		active      []string
		ttl         uint8
		node        string
		wantOut     []string // exact, when the walk does not pick at random
		wantForward uint8    // else: forwarded with this TTL to someone other than "a"
		wantPassive bool
	}{
		{name: "ttl 0 ends the walk", active: []string{"a", "b"}, ttl: 0, node: "n",
			wantOut: []string{"connect n"}},
		{name: "only the sender as neighbour ends the walk", active: []string{"a"}, ttl: 5, node: "n",
			wantOut: []string{"connect n"}},
		{name: "at PRWL into the passive view and on", active: []string{"a", "b", "d"}, ttl: 3, node: "n",
			wantForward: 2, wantPassive: true},
		{name: "above PRWL only on", active: []string{"a", "b", "d"}, ttl: 5, node: "n", wantForward: 4},
		{name: "back at the joining node", active: []string{"a", "b"}, ttl: 2, node: "m", wantOut: nil},
		{name: "already a neighbour", active: []string{"a", "n"}, ttl: 0, node: "n", wantOut: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, "m", Config{})
			withActive(t, m, tt.active...)
			out := receive(t, m, "a", Message{Kind: KindForwardJoin, Node: tt.node, TTL: tt.ttl})
			if tt.wantForward == 0 {
				want(t, out, tt.wantOut...)
			} else {
				fj := fmt.Sprintf("FORWARDJOIN(n, ttl %d)", tt.wantForward)
				if len(out) != 1 || !strings.HasSuffix(out[0], fj) || strings.HasPrefix(out[0], "send a ") {
					t.Fatalf("outputs %v, want %s to a neighbour other than the sender", out, fj)
				}
			}
			if got := slices.Contains(m.Passive(), "n"); got != tt.wantPassive {
				t.Fatalf("n in the passive view: %v, want %v", got, tt.wantPassive)
			}
			if len(tt.wantOut) > 0 { // the walk ended: a high-priority request once the link is up
				m.LinkUp("n")
				want(t, drain(t, m), "send n NEIGHBOR(high)")
			}
		})
	}
}

func TestNeighborPriority(t *testing.T) {
	tests := []struct {
		name    string
		active  []string
		high    bool
		want    []string // exact, without eviction
		evicted bool
	}{
		{name: "low with room", active: []string{"a"}, high: false,
			want: []string{"added p", "send p NEIGHBORREPLY(accept)"}},
		{name: "low when full", active: []string{"a", "b", "c"}, high: false,
			want: []string{"send p NEIGHBORREPLY(reject)", "disconnect p"}},
		{name: "high with room", active: []string{"a"}, high: true,
			want: []string{"added p", "send p NEIGHBORREPLY(accept)"}},
		{name: "high when full", active: []string{"a", "b", "c"}, high: true, evicted: true},
		{name: "already a neighbour", active: []string{"p"}, high: false,
			want: []string{"send p NEIGHBORREPLY(accept)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, "m", Config{ActiveSize: 3})
			withActive(t, m, tt.active...)
			m.LinkUp("p")
			out := receive(t, m, "p", Message{Kind: KindNeighbor, High: tt.high})
			if !tt.evicted {
				want(t, out, tt.want...)
			} else if len(only(out, "removed ")) != 1 || len(m.Active()) != 3 {
				t.Fatalf("outputs %v, active %v", out, m.Active())
			}
			accepted := tt.name != "low when full"
			if slices.Contains(m.Active(), "p") != accepted || slices.Contains(m.Passive(), "p") == accepted {
				t.Fatalf("active %v passive %v", m.Active(), m.Passive())
			}
		})
	}
}

func TestNeighborReply(t *testing.T) {
	m := newMachine(t, "m", Config{ActiveSize: 3})
	withActive(t, m, "a")
	withPassive(m, "p", "q")
	m.Tick(t0.Add(time.Second))
	out := drain(t, m)
	want(t, sorted(out), "connect p", "connect q")
	m.LinkUp("p")
	m.LinkUp("q")
	want(t, sorted(drain(t, m)), "send p NEIGHBOR(low)", "send q NEIGHBOR(low)")

	want(t, receive(t, m, "p", Message{Kind: KindNeighborReply, Accept: true}), "added p")
	want(t, receive(t, m, "q", Message{Kind: KindNeighborReply}), "disconnect q")
	if !slices.Contains(m.Passive(), "q") {
		t.Fatalf("a rejecting peer is alive: keep it in the passive view, got %v", m.Passive())
	}
	// The rejection backs the low-priority requests off for a second.
	m.Tick(t0.Add(1500 * time.Millisecond))
	want(t, drain(t, m))
	m.Tick(t0.Add(2 * time.Second))
	want(t, drain(t, m), "connect q")

	// An accept nothing waits for is undone.
	m.LinkUp("z")
	want(t, receive(t, m, "z", Message{Kind: KindNeighborReply, Accept: true}),
		"send z DISCONNECT(alive)", "disconnect z")
	// A reject nothing waits for changes nothing.
	m.LinkUp("y")
	want(t, receive(t, m, "y", Message{Kind: KindNeighborReply}), "disconnect y")
}

func TestDisconnect(t *testing.T) {
	for _, alive := range []bool{true, false} {
		m := newMachine(t, "m", Config{})
		withActive(t, m, "a", "b")
		withPassive(m, "x")
		want(t, receive(t, m, "a", Message{Kind: KindDisconnect, Alive: alive}), "removed a", "disconnect a")
		if got := slices.Contains(m.Passive(), "a"); got != alive {
			t.Fatalf("alive %v: a in the passive view %v", alive, got)
		}
		want(t, m.Active(), "b")
	}
}

func TestLeave(t *testing.T) {
	m := newMachine(t, "m", Config{})
	withActive(t, m, "a", "b")
	withPassive(m, "x", "y")
	m.Join("c")
	drain(t, m)
	m.Leave()
	want(t, drain(t, m),
		"removed a", "send a DISCONNECT(gone)",
		"removed b", "send b DISCONNECT(gone)",
		"disconnect a", "disconnect b", "disconnect c")
	if len(m.Active())+len(m.Passive()) != 0 {
		t.Fatalf("views after Leave: %v %v", m.Active(), m.Passive())
	}
}

func TestShuffleSends(t *testing.T) {
	m := newMachine(t, "m", Config{ShuffleInterval: time.Second})
	withActive(t, m, "a", "b", "c", "d", "e")
	withPassive(m, "p1", "p2", "p3", "p4", "p5", "p6")
	m.Tick(t0.Add(time.Second)) // the first shuffle falls within one interval
	out := only(drain(t, m), "send ")
	if len(out) != 1 {
		t.Fatalf("want one SHUFFLE, got %v", out)
	}
	sample := m.shuffled
	if len(sample) != 1+3+4 || sample[0] != "m" {
		t.Fatalf("sample %v: want m, 3 active, 4 passive", sample)
	}
	for _, id := range sample[1:4] {
		if !slices.Contains(m.Active(), id) {
			t.Fatalf("sample %v: %s not active", sample, id)
		}
	}
	for _, id := range sample[4:] {
		if !slices.Contains(m.Passive(), id) {
			t.Fatalf("sample %v: %s not passive", sample, id)
		}
	}
}

func TestShuffleWalk(t *testing.T) {
	sample := []string{"o", "s1", "s2"}
	shuffle := Message{Kind: KindShuffle, Node: "o", TTL: 2, Sample: sample}

	// With TTL left and another neighbour, the walk goes on.
	m := newMachine(t, "m", Config{})
	withActive(t, m, "a", "b")
	want(t, receive(t, m, "a", shuffle), "send b SHUFFLE(o, ttl 1, [o s1 s2])")

	// At its end: reply to the origin over a link of its own, closed after
	// the reply, and keep the sample in place of what was sent.
	m = newMachine(t, "m", Config{PassiveSize: 4})
	withActive(t, m, "a")
	withPassive(m, "p1", "p2", "p3", "p4")
	out := receive(t, m, "a", shuffle)
	want(t, out, "connect o")
	m.LinkUp("o")
	out = drain(t, m)
	if len(out) != 2 || out[1] != "disconnect o" {
		t.Fatalf("outputs %v", out)
	}
	reply := m.linkOf("o") // closed
	if reply != nil {
		t.Fatal("reply link kept")
	}
	passive := m.Passive()
	for _, id := range sample {
		if !slices.Contains(passive, id) {
			t.Fatalf("passive %v lacks %s of the sample", passive, id)
		}
	}
	if len(passive) != 4 {
		t.Fatalf("passive %v beyond its size", passive)
	}
}

func TestShuffleReplyReplacesSent(t *testing.T) {
	m := newMachine(t, "m", Config{PassiveSize: 6, ShuffleInterval: time.Second, ShuffleActive: 1, ShufflePassive: 2})
	withActive(t, m, "a")
	withPassive(m, "p1", "p2", "p3", "p4", "p5", "p6")
	m.Tick(t0.Add(time.Second))
	drain(t, m)
	sent := slices.Clone(m.shuffled[1:]) // two passive ids (the lone neighbour is the target)
	m.LinkUp("r")
	out := receive(t, m, "r", Message{Kind: KindShuffleReply, Sample: []string{"r1", "r2"}})
	want(t, out, "disconnect r")
	passive := m.Passive()
	for _, id := range sent {
		if slices.Contains(passive, id) {
			t.Fatalf("passive %v still holds %s, sent in the shuffle", passive, id)
		}
	}
	if !slices.Contains(passive, "r1") || !slices.Contains(passive, "r2") {
		t.Fatalf("passive %v lacks the reply", passive)
	}
	// A second reply answers no shuffle.
	m.LinkUp("s")
	receive(t, m, "s", Message{Kind: KindShuffleReply, Sample: []string{"s1"}})
	if slices.Contains(m.Passive(), "s1") {
		t.Fatal("an unsolicited SHUFFLEREPLY was kept")
	}
}

func TestLinkDownRepairs(t *testing.T) {
	m := newMachine(t, "m", Config{ActiveSize: 2})
	withActive(t, m, "a", "b")
	withPassive(m, "p")
	m.LinkDown("a")
	want(t, drain(t, m), "removed a", "connect p")
	if slices.Contains(m.Passive(), "a") {
		t.Fatal("a failed peer kept in the passive view")
	}
	// The replacement fails too: it leaves the passive view, and with the
	// last neighbour gone the next request is of high priority.
	withPassive(m, "q")
	m.LinkDown("p")
	want(t, drain(t, m), "connect q")
	m.LinkDown("b")
	want(t, drain(t, m), "removed b")
	m.LinkUp("q")
	want(t, drain(t, m), "send q NEIGHBOR(low)")
	if slices.Contains(m.Passive(), "p") {
		t.Fatal("a peer that failed a request kept in the passive view")
	}
	withPassive(m, "r")
	m.Tick(t0.Add(time.Second))
	want(t, drain(t, m), "connect r")
	m.LinkUp("r")
	want(t, drain(t, m), "send r NEIGHBOR(high)")
}

func TestRequestTimesOut(t *testing.T) {
	m := newMachine(t, "m", Config{ActiveSize: 1})
	withPassive(m, "p")
	m.Candidates(nil)
	want(t, drain(t, m), "connect p")
	m.LinkUp("p")
	want(t, drain(t, m), "send p NEIGHBOR(high)")
	m.Tick(t0.Add(DefaultNeighborTimeout - time.Millisecond))
	want(t, drain(t, m))
	m.Tick(t0.Add(DefaultNeighborTimeout))
	want(t, drain(t, m), "disconnect p")
	if len(m.Passive()) != 0 {
		t.Fatalf("passive %v keeps a peer that did not answer", m.Passive())
	}
}

func TestIdleLinkCloses(t *testing.T) {
	m := newMachine(t, "m", Config{})
	m.LinkUp("p") // opened by p, which then says nothing
	m.Tick(t0.Add(DefaultNeighborTimeout - time.Millisecond))
	want(t, drain(t, m))
	m.Tick(t0.Add(DefaultNeighborTimeout))
	want(t, drain(t, m), "disconnect p")
}

func TestCandidatesBootstrap(t *testing.T) {
	m := newMachine(t, "m", Config{ActiveSize: 3, PassiveSize: 4})
	m.Candidates([]string{"a", "m", "", "b", "c", "d", "e", "f"})
	out := drain(t, m)
	if len(only(out, "connect ")) != 3 || len(out) != 3 {
		t.Fatalf("want three requests from an empty view, got %v", out)
	}
	if len(m.Passive()) != 4 || slices.Contains(m.Passive(), "m") || slices.Contains(m.Passive(), "") {
		t.Fatalf("passive %v", m.Passive())
	}
	for _, l := range m.links {
		m.LinkUp(l.peer)
	}
	high := 0
	for _, o := range drain(t, m) {
		if strings.HasSuffix(o, "NEIGHBOR(high)") {
			high++
		}
	}
	if high != 1 {
		t.Fatalf("want exactly one high-priority request among three, got %d", high)
	}
}

func TestForget(t *testing.T) {
	m := newMachine(t, "m", Config{ActiveSize: 2})
	withActive(t, m, "a", "b")
	withPassive(m, "x", "y")
	m.Forget("y")
	want(t, drain(t, m))
	m.Forget("a")
	want(t, drain(t, m), "removed a", "disconnect a", "connect x")
	if slices.Contains(m.Passive(), "y") {
		t.Fatal("forgotten y still passive")
	}
}

func TestMaxActiveBoundsHighPriority(t *testing.T) {
	m := newMachine(t, "m", Config{ActiveSize: 7, MaxActive: 2})
	withActive(t, m, "a", "b", "c", "d")
	if n := len(m.Active()); n != 2 {
		t.Fatalf("active view of %d with MaxActive 2", n)
	}
}

func TestReceiveRefuses(t *testing.T) {
	tests := []struct {
		name string
		from string
		msg  Message
		err  error
	}{
		{"from nobody", "", Message{Kind: KindJoin}, ErrBadMessage},
		{"from itself", "m", Message{Kind: KindJoin}, ErrBadMessage},
		{"without a link", "q", Message{Kind: KindJoin}, ErrNotLinked},
		{"malformed", "p", Message{Kind: KindJoin, TTL: 3}, ErrBadMessage},
		{"walk forwarded by its subject", "p", Message{Kind: KindForwardJoin, Node: "p", TTL: 1}, ErrBadMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, "m", Config{})
			m.LinkUp("p")
			if err := m.Receive(tt.from, tt.msg); !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			want(t, drain(t, m))
		})
	}
}

func TestNewRefuses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	if _, err := New("", Config{}, rng, t0); err == nil {
		t.Error("empty id accepted")
	}
	if _, err := New("m", Config{ActiveSize: -1}, rng, t0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("bad config: %v", err)
	}
	if _, err := New("m", Config{}, nil, t0); err == nil {
		t.Error("nil random source accepted")
	}
}
