package membership

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

const converge = 10 * time.Second

func TestFiveMembersJoinThroughOneSeed(t *testing.T) {
	const n = 5
	nodes := make([]*Membership, n)
	recs := make([]*recorder, n)
	for i := range n {
		nodes[i], recs[i] = newNode(t, nodeName(i), nil)
	}
	for i := 1; i < n; i++ {
		got, err := nodes[i].Join(nodes[0].Addr())
		if err != nil || got != 1 {
			t.Fatalf("node %d Join = %d, %v; want 1, nil", i, got, err)
		}
	}
	for i, m := range nodes {
		waitFor(t, converge, nodeName(i)+" to list 5 alive", func() bool { return aliveCount(m) == n })
	}
	for i, m := range nodes {
		members := m.Members()
		if len(members) != n {
			t.Fatalf("%s lists %d members, want %d: %+v", nodeName(i), len(members), n, members)
		}
		for _, mem := range members {
			if mem.RelayAddr != "relay-"+mem.Name || mem.Channel != "test" || mem.Version != 1 {
				t.Errorf("%s lists %+v: metadata not carried", nodeName(i), mem)
			}
		}
		if l := m.Local(); l.Name != nodeName(i) || l.Addr != m.Addr() || l.State != StateAlive {
			t.Errorf("Local() = %+v", l)
		}
	}
	// Every node was told of the other four, with their relay addresses,
	// and never of itself.
	for i, rec := range recs {
		for j := range n {
			name := nodeName(j)
			waitFor(t, converge, nodeName(i)+" join event for "+name, func() bool {
				_, got := rec.find(func(e Event) bool {
					return e.Kind == MemberJoin && e.Member.Name == name && e.Member.RelayAddr == "relay-"+name
				})
				return got == (i != j)
			})
		}
	}
}

func TestSetMetaPropagates(t *testing.T) {
	a, recA := newNode(t, "a", nil)
	b, _ := newNode(t, "b", nil)
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "a to list b", func() bool { return stateOf(a, "b") == StateAlive })

	if err := b.SetMeta(Meta{RelayAddr: "10.0.0.2:7947", Version: 2}); err != nil {
		t.Fatal(err)
	}
	if l := b.Local(); l.RelayAddr != "10.0.0.2:7947" || l.Version != 2 || l.Channel != "test" {
		t.Fatalf("b.Local() = %+v after SetMeta", l)
	}
	waitFor(t, converge, "a to see b's update", func() bool {
		_, ok := recA.find(func(e Event) bool {
			return e.Kind == MemberUpdate && e.Member.Name == "b" && e.Member.RelayAddr == "10.0.0.2:7947"
		})
		return ok
	})
	mem, _ := memberOf(a, "b")
	if mem.RelayAddr != "10.0.0.2:7947" || mem.Version != 2 || mem.State != StateAlive {
		t.Fatalf("a lists b as %+v", mem)
	}
	big := Meta{RelayAddr: strings.Repeat("x", 600)}
	if err := b.SetMeta(big); !errors.Is(err, ErrMetaTooLarge) {
		t.Fatalf("SetMeta(600-byte addr) = %v, want ErrMetaTooLarge", err)
	}
}

func TestOtherChannelIsRefused(t *testing.T) {
	seed, _ := newNode(t, "seed", nil)
	other, _ := newNode(t, "other", func(c *Config) { c.Channel = "elsewhere" })
	mate, _ := newNode(t, "mate", nil)

	start := time.Now()
	if n, err := other.Join(seed.Addr()); err == nil || n != 0 {
		t.Fatalf("join across channels = %d, %v; want an error", n, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refused join took %v", d)
	}
	// A same-channel member joins through the same seed; once the seed has
	// gossiped with it, neither lists the foreign node.
	if _, err := mate.Join(seed.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "seed and mate to see each other", func() bool {
		return stateOf(seed, "mate") == StateAlive && stateOf(mate, "seed") == StateAlive
	})
	for _, m := range []*Membership{seed, mate} {
		if s := stateOf(m, "other"); s != "" {
			t.Fatalf("%s lists the other channel's node as %q", m.Local().Name, s)
		}
	}
	if got := len(other.Members()); got != 1 {
		t.Fatalf("other lists %d members, want only itself", got)
	}
}

func TestGossipKey(t *testing.T) {
	key := []byte("0123456789abcdef")
	seed, _ := newNode(t, "seed", func(c *Config) { c.Key = key })
	plain, _ := newNode(t, "plain", nil)
	wrong, _ := newNode(t, "wrong", func(c *Config) { c.Key = []byte("fedcba9876543210") })
	keyed, _ := newNode(t, "keyed", func(c *Config) { c.Key = key })

	if _, err := plain.Join(seed.Addr()); err == nil {
		t.Fatal("a node without the key joined an encrypted cluster")
	}
	if _, err := wrong.Join(seed.Addr()); err == nil {
		t.Fatal("a node with another key joined")
	}
	if _, err := keyed.Join(seed.Addr()); err != nil {
		t.Fatalf("a node with the key could not join: %v", err)
	}
	waitFor(t, converge, "seed to list keyed", func() bool { return stateOf(seed, "keyed") == StateAlive })
	for _, name := range []string{"plain", "wrong"} {
		if s := stateOf(seed, name); s != "" {
			t.Fatalf("seed lists %s as %q", name, s)
		}
	}
}

func TestLeaveAndFailure(t *testing.T) {
	a, recA := newNode(t, "a", nil)
	b, _ := newNode(t, "b", nil)
	c, _ := newNode(t, "c", nil)
	for _, m := range []*Membership{b, c} {
		if _, err := m.Join(a.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, converge, "3 alive on a", func() bool { return aliveCount(a) == 3 })

	if err := b.Leave(2 * time.Second); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if s := b.Local().State; s != StateLeft {
		t.Errorf("b.Local().State = %q after Leave", s)
	}
	waitFor(t, converge, "a to see b left", func() bool {
		_, ok := recA.find(func(e Event) bool {
			return e.Kind == MemberLeave && e.Member.Name == "b" && e.Member.State == StateLeft
		})
		return ok
	})
	if s := stateOf(a, "b"); s != StateLeft {
		t.Errorf("a lists b as %q, want left", s)
	}
	if err := b.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// c dies without a word: a must find out by probing.
	died := time.Now()
	if err := c.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "a to see c dead", func() bool {
		_, ok := recA.find(func(e Event) bool {
			return e.Kind == MemberLeave && e.Member.Name == "c" && e.Member.State == StateDead
		})
		return ok
	})
	t.Logf("failure detected in %v", time.Since(died))
	if s := stateOf(a, "c"); s != StateDead && s != "" {
		t.Errorf("a lists c as %q, want dead (or reaped)", s)
	}
	// Nobody left or died twice.
	var leaves int
	for _, e := range recA.snapshot() {
		if e.Kind == MemberLeave {
			leaves++
		}
	}
	if leaves != 2 {
		t.Errorf("a got %d leave events, want 2: %+v", leaves, recA.snapshot())
	}
}

func TestDepartedMembersAreReaped(t *testing.T) {
	a, _ := newNode(t, "a", nil)
	b, _ := newNode(t, "b", nil)
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "a to list b", func() bool { return stateOf(a, "b") == StateAlive })
	if err := b.Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, converge, "b listed as left", func() bool { return stateOf(a, "b") == StateLeft })
	waitFor(t, converge, "b reaped", func() bool { return stateOf(a, "b") == "" })
}

func TestJoinBadSeeds(t *testing.T) {
	m, _ := newNode(t, "m", nil)

	for _, seed := range []string{"nope", "host:notaport", ":7946", "127.0.0.1:0", "127.0.0.1:70000"} {
		start := time.Now()
		n, err := m.Join(seed)
		if err == nil || n != 0 || !errors.Is(err, ErrBadSeed) || !strings.Contains(err.Error(), seed) {
			t.Errorf("Join(%q) = %d, %v; want ErrBadSeed naming it", seed, n, err)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("Join(%q) took %v", seed, d)
		}
	}
	if _, err := m.Join(); !errors.Is(err, ErrJoinFailed) {
		t.Errorf("Join() = %v, want ErrJoinFailed", err)
	}

	// A closed port on loopback: refused at once, reported within a bound.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	_ = l.Close()
	start := time.Now()
	n, err := m.Join(closed)
	if err == nil || n != 0 || !errors.Is(err, ErrJoinFailed) || !strings.Contains(err.Error(), closed) {
		t.Errorf("Join(closed port) = %d, %v; want ErrJoinFailed naming %s", n, err, closed)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Join(closed port) took %v", d)
	}
}

func TestJoinCountsAnsweringSeeds(t *testing.T) {
	a, _ := newNode(t, "a", nil)
	b, _ := newNode(t, "b", nil)
	c, _ := newNode(t, "c", nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	n, err := c.Join(a.Addr(), b.Addr(), dead)
	if err != nil || n != 2 {
		t.Fatalf("Join(2 live + 1 dead) = %d, %v; want 2, nil", n, err)
	}
}

func TestConfigValidation(t *testing.T) {
	good := func() Config { return Config{NodeID: "n", BindAddr: "127.0.0.1:0"} }
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"NodeID", func(c *Config) { c.NodeID = "" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "localhost:7946" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1" }},
		{"BindAddr", func(c *Config) { c.BindAddr = "127.0.0.1:x" }},
		{"AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "10.0.0.1" }},
		{"AdvertiseAddr", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:0" }},
		{"Key", func(c *Config) { c.Key = []byte("short") }},
		{"Channel", func(c *Config) { c.Channel = strings.Repeat("c", 250) }},
		{"Meta", func(c *Config) { c.Meta.RelayAddr = strings.Repeat("r", 600) }},
		{"Meta.Version", func(c *Config) { c.Meta.Version = -1 }},
	}
	for _, tc := range cases {
		cfg := good()
		tc.edit(&cfg)
		m, err := New(cfg)
		if err == nil {
			_ = m.Shutdown()
			t.Errorf("%s: New accepted a bad config", tc.field)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not wrap ErrInvalidConfig or name the field", tc.field, err)
		}
	}
}

func TestClosedMembership(t *testing.T) {
	m, _ := newNode(t, "m", nil)
	if err := m.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := m.Join("127.0.0.1:1"); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Shutdown = %v", err)
	}
	if err := m.Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Shutdown = %v", err) // memberlist itself would panic
	}
	if err := m.SetMeta(Meta{}); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMeta after Shutdown = %v", err)
	}
	if got := m.Members(); len(got) != 1 {
		t.Errorf("Members after Shutdown = %+v", got)
	}
}

// With an AdvertiseAddr, Addr reports it (host as given; with BindAddr port
// 0 memberlist advertises the port it bound, see Config.AdvertiseAddr).
func TestAdvertiseAddr(t *testing.T) {
	m, _ := newNode(t, "m", func(c *Config) { c.AdvertiseAddr = "127.0.0.2:40001" })
	host, _, err := net.SplitHostPort(m.Addr())
	if err != nil || host != "127.0.0.2" {
		t.Fatalf("Addr() = %q, want host 127.0.0.2", m.Addr())
	}
	if l := m.Local(); l.Addr != m.Addr() {
		t.Fatalf("Local().Addr = %q, Addr() = %q", l.Addr, m.Addr())
	}
}

// A member killed (no leave) and started again under the same name on a
// new port is refused by memberlist while its old record lives
// ("Conflicting address"). The other side reports MemberMoved with the new
// addresses at once, and takes the new address as soon as the old record
// is dead, without waiting for a push/pull: within a few probe intervals,
// where memberlist alone took up to a push/pull interval after the death
// (30s in the LAN config).
func TestRestartOnNewAddressIsFollowed(t *testing.T) {
	a, recA := newNode(t, "node-a", func(c *Config) { c.pushPull = time.Hour })
	b, _ := newNode(t, "node-b", nil)
	if _, err := b.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a sees b alive", func() bool { return stateOf(a, "node-b") == StateAlive })
	oldAddr := b.Addr()
	if err := b.Shutdown(); err != nil { // a crash: no leave
		t.Fatal(err)
	}

	start := time.Now()
	b2, _ := newNode(t, "node-b", func(c *Config) { c.Meta.RelayAddr = "relay-b-2"; c.pushPull = time.Hour })
	if b2.Addr() == oldAddr {
		t.Fatalf("restarted on the same address %s", oldAddr)
	}
	if _, err := b2.Join(a.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "MemberMoved for node-b at its new address", func() bool {
		_, ok := recA.find(func(e Event) bool {
			return e.Kind == MemberMoved && e.Member.Name == "node-b" && e.Member.Addr == b2.Addr() && e.Member.RelayAddr == "relay-b-2"
		})
		return ok
	})
	waitFor(t, 10*time.Second, "a lists node-b alive at its new address", func() bool {
		m, ok := memberOf(a, "node-b")
		return ok && m.State == StateAlive && m.Addr == b2.Addr() && m.RelayAddr == "relay-b-2"
	})
	t.Logf("node-b followed to its new address %v after its restart", time.Since(start).Round(10*time.Millisecond))
}
