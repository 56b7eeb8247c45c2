package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// The member snapshot (--data-dir), as serf's -snapshot: the gossip
// addresses of the members this agent knew, so that an agent restarted
// without --join (a restarted seed) joins its cluster again. The file is
// small (at most snapshotMax members), rewritten atomically (a temporary
// file renamed over it) when the set changes, at most once per
// snapshotInterval, and read once at start: its addresses are extra seeds.
//
// A member stays in the snapshot while it is alive, suspect or dead (a
// dead member may come back at the same address) and after memberlist
// has forgotten it; it leaves the snapshot when it leaves the cluster
// gracefully, or when more than snapshotMax members are known, the one
// seen longest ago first.
const (
	snapshotFile     = "members.json"
	snapshotMax      = 128
	snapshotInterval = time.Second
)

// snapshotJSON is the file's content.
type snapshotJSON struct {
	NodeID  string           `json:"node_id"` // the agent that wrote it
	Members []snapshotMember `json:"members"`
}

type snapshotMember struct {
	Name     string    `json:"name"`
	Addr     string    `json:"addr"` // gossip host:port
	LastSeen time.Time `json:"last_seen"`
}

// readSnapshot returns the members of dir's snapshot other than self. A
// missing file is no error (a first start).
func readSnapshot(dir, self string) ([]snapshotMember, error) {
	data, err := os.ReadFile(filepath.Join(dir, snapshotFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s snapshotJSON
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, snapshotFile), err)
	}
	out := make([]snapshotMember, 0, len(s.Members))
	for _, m := range s.Members {
		if m.Name != self && m.Addr != "" && len(out) < snapshotMax {
			out = append(out, m)
		}
	}
	return out, nil
}

// writeSnapshot replaces dir's snapshot atomically: a crash leaves the old
// file or the new one, never half of one.
func writeSnapshot(dir string, s snapshotJSON) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, snapshotFile+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, snapshotFile))
}

// snapshotter keeps the set of known members and writes it when it
// changes. Its methods run on the agent's snapshot goroutine only.
type snapshotter struct {
	dir     string
	self    string
	known   map[string]snapshotMember
	written []snapshotMember // what the file holds
}

func newSnapshotter(dir, self string, prev []snapshotMember) *snapshotter {
	s := &snapshotter{dir: dir, self: self, known: map[string]snapshotMember{}}
	for _, m := range prev {
		s.known[m.Name] = m
	}
	s.written = s.list()
	return s
}

// update folds the node's view into the set: every member but this node
// and those that left is kept, with when it was last seen.
func (s *snapshotter) update(members []mesh.Member, now time.Time) {
	for _, m := range members {
		switch {
		case m.Name == s.self || m.Addr == "":
		case m.State == "left":
			delete(s.known, m.Name)
		default:
			seen := now
			if m.State == "dead" {
				if old, ok := s.known[m.Name]; ok && old.Addr == m.Addr {
					seen = old.LastSeen // not seen since it died
				}
			}
			s.known[m.Name] = snapshotMember{Name: m.Name, Addr: m.Addr, LastSeen: seen}
		}
	}
	for len(s.known) > snapshotMax {
		oldest := ""
		for name, m := range s.known {
			if oldest == "" || m.LastSeen.Before(s.known[oldest].LastSeen) {
				oldest = name
			}
		}
		delete(s.known, oldest)
	}
}

// list is the set sorted by name.
func (s *snapshotter) list() []snapshotMember {
	out := make([]snapshotMember, 0, len(s.known))
	for _, m := range s.known {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// flush writes the set if its members or addresses changed (last-seen
// times alone do not make a write).
func (s *snapshotter) flush() error {
	cur := s.list()
	same := slices.EqualFunc(cur, s.written, func(a, b snapshotMember) bool { return a.Name == b.Name && a.Addr == b.Addr })
	if same {
		return nil
	}
	if err := writeSnapshot(s.dir, snapshotJSON{NodeID: s.self, Members: cur}); err != nil {
		return err
	}
	s.written = cur
	return nil
}

// snapshotLoop records the node's members in --data-dir until the agent
// stops, and once more then.
func (a *agent) snapshotLoop(s *snapshotter) {
	defer a.wg.Done()
	t := time.NewTicker(snapshotInterval)
	defer t.Stop()
	var failing bool
	for {
		stopping := false
		select {
		case <-a.stop:
			stopping = true
		case <-t.C:
		}
		s.update(a.node.Members(), time.Now())
		if err := s.flush(); err != nil {
			if !failing { // once per failing streak, not every second
				a.log.Error("cannot write the member snapshot", "dir", s.dir, "error", err)
			}
			failing = true
		} else {
			failing = false
		}
		if stopping {
			return
		}
	}
}
