package hyparview

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// checkInvariants reports the first broken invariant of doc.go's list.
func (m *Machine) checkInvariants() error {
	if n := m.active.len(); n > m.capacity {
		return fmt.Errorf("active view of %d above capacity %d", n, m.capacity)
	}
	if n := m.passive.len(); n > m.cfg.PassiveSize {
		return fmt.Errorf("passive view of %d above %d", n, m.cfg.PassiveSize)
	}
	if err := checkSet("active", m.active.ids, m.id); err != nil {
		return err
	}
	if err := checkSet("passive", m.passive.ids, m.id); err != nil {
		return err
	}
	for _, p := range m.active.ids {
		if m.passive.has(p) {
			return fmt.Errorf("%s in both views", p)
		}
		if l := m.linkOf(p); l == nil || !l.up {
			return fmt.Errorf("active peer %s without an up link", p)
		}
	}
	if len(m.pending) > m.capacity {
		return fmt.Errorf("%d requests pending, above capacity %d", len(m.pending), m.capacity)
	}
	var peers []string
	for _, r := range m.pending {
		if m.active.has(r.peer) || m.linkOf(r.peer) == nil {
			return fmt.Errorf("request to %s: active or without a link", r.peer)
		}
		peers = append(peers, r.peer)
	}
	if err := checkSet("pending", peers, m.id); err != nil {
		return err
	}
	peers = peers[:0]
	for _, l := range m.links {
		if len(l.queue) > maxQueued || (l.up && len(l.queue) > 0) {
			return fmt.Errorf("link to %s: up %v with %d queued", l.peer, l.up, len(l.queue))
		}
		peers = append(peers, l.peer)
	}
	if err := checkSet("links", peers, m.id); err != nil {
		return err
	}
	if len(m.shuffled) > MaxSample || m.fillBackoff > m.cfg.ShuffleInterval {
		return fmt.Errorf("shuffle sample %d, backoff %v", len(m.shuffled), m.fillBackoff)
	}
	return nil
}

// checkSet reports an invalid id, self, or a duplicate in ids.
func checkSet(name string, ids []string, self string) error {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if id == self || checkID(id) != nil || seen[id] {
			return fmt.Errorf("%s view %v: bad entry %q", name, ids, id)
		}
		seen[id] = true
	}
	return nil
}

// render writes outputs compactly, e.g. "connect b", "send b JOIN".
func render(outs []Output) []string {
	var s []string
	for _, o := range outs {
		switch o := o.(type) {
		case Send:
			s = append(s, fmt.Sprintf("send %s %v", o.To, o.Msg))
		case Connect:
			s = append(s, "connect "+o.Peer)
		case Disconnect:
			s = append(s, "disconnect "+o.Peer)
		case Added:
			s = append(s, "added "+o.Peer)
		case Removed:
			s = append(s, "removed "+o.Peer)
		}
	}
	return s
}

func newMachine(t testing.TB, id string, cfg Config) *Machine {
	t.Helper()
	m, err := New(id, cfg, rand.New(rand.NewPCG(1, 2)), t0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// drain checks the invariants and returns the rendered outputs.
func drain(t testing.TB, m *Machine) []string {
	t.Helper()
	if err := m.checkInvariants(); err != nil {
		t.Fatalf("%s: %v", m.id, err)
	}
	return render(m.Drain())
}

// receive feeds msg from peer and returns the rendered outputs.
func receive(t testing.TB, m *Machine, from string, msg Message) []string {
	t.Helper()
	if err := m.Receive(from, msg); err != nil {
		t.Fatalf("%s: receive %v from %s: %v", m.id, msg, from, err)
	}
	return drain(t, m)
}

// withActive gives m the active view peers, each over a link it opened, as
// if each had asked by a high-priority NEIGHBOR.
func withActive(t testing.TB, m *Machine, peers ...string) {
	t.Helper()
	for _, p := range peers {
		m.LinkUp(p)
		receive(t, m, p, Message{Kind: KindNeighbor, High: true})
	}
}

func withPassive(m *Machine, peers ...string) {
	for _, p := range peers {
		m.addPassive(p, nil)
	}
}

// want fails unless got equals want, line by line.
func want(t testing.TB, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("outputs:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// only returns the lines of outs that start with prefix.
func only(outs []string, prefix string) []string {
	var s []string
	for _, o := range outs {
		if strings.HasPrefix(o, prefix) {
			s = append(s, o)
		}
	}
	return s
}

func sorted(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}
