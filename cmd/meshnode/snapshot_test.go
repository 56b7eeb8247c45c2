package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// The snapshot keeps alive, suspect and dead members (a dead one may come
// back at its address) and those memberlist forgot, drops one that left,
// never lists this node, is bounded (the member seen longest ago goes
// first), and is written only when its members or addresses change.
func TestSnapshotKeepsKnownMembers(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1000, 0)
	s := newSnapshotter(dir, "self", nil)
	s.update([]mesh.Member{
		{Name: "self", Addr: "127.0.0.1:1", State: "alive"},
		{Name: "a", Addr: "127.0.0.1:2", State: "alive"},
		{Name: "b", Addr: "127.0.0.1:3", State: "suspect"},
		{Name: "c", Addr: "127.0.0.1:4", State: "dead"},
		{Name: "d", Addr: "127.0.0.1:5", State: "left"},
	}, now)
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	got, err := readSnapshot(dir, "self")
	if err != nil {
		t.Fatal(err)
	}
	if names := snapshotNames(got); names != "[a b c]" {
		t.Fatalf("snapshot %s, want [a b c]", names)
	}

	// c leaves, a is forgotten by memberlist: a stays, c goes.
	info, _ := os.Stat(filepath.Join(dir, snapshotFile))
	s.update([]mesh.Member{{Name: "c", Addr: "127.0.0.1:4", State: "left"}}, now.Add(time.Second))
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	got, _ = readSnapshot(dir, "self")
	if names := snapshotNames(got); names != "[a b]" {
		t.Fatalf("after c left: %s, want [a b]", names)
	}
	// Seen again, same addresses: no write.
	s.update([]mesh.Member{{Name: "a", Addr: "127.0.0.1:2", State: "alive"}}, now.Add(2*time.Second))
	before, _ := os.Stat(filepath.Join(dir, snapshotFile))
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(dir, snapshotFile))
	if !os.SameFile(before, after) || os.SameFile(info, after) {
		t.Error("want one rewrite (a rename) for c's leave and none for a's unchanged address")
	}

	// Bounded: past snapshotMax members, the one seen longest ago goes.
	var many []mesh.Member
	for i := range snapshotMax + 5 {
		many = append(many, mesh.Member{Name: fmt.Sprintf("m%03d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 1000+i), State: "alive"})
	}
	s.update(many, now.Add(time.Hour))
	if err := s.flush(); err != nil {
		t.Fatal(err)
	}
	got, _ = readSnapshot(dir, "self")
	if len(got) != snapshotMax {
		t.Fatalf("%d members kept, want %d", len(got), snapshotMax)
	}
	for _, m := range got {
		if m.Name == "a" || m.Name == "b" {
			t.Errorf("%s, seen an hour before the others, was kept over them", m.Name)
		}
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(matches) != 1 {
		t.Errorf("files in the data dir: %v, want the snapshot alone (no temporary left)", matches)
	}
}

// A damaged snapshot is an error for readSnapshot (the agent logs it and
// starts without); a missing one is a first start.
func TestReadSnapshotErrors(t *testing.T) {
	dir := t.TempDir()
	if ms, err := readSnapshot(dir, "self"); err != nil || ms != nil {
		t.Errorf("no snapshot: %v, %v; want nothing and no error", ms, err)
	}
	if err := os.WriteFile(filepath.Join(dir, snapshotFile), []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSnapshot(dir, "self"); err == nil {
		t.Error("a damaged snapshot read without error")
	}
}

func snapshotNames(ms []snapshotMember) string {
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	return fmt.Sprint(names)
}

// The new settings come from MESHNODE_* variables and --config alike.
func TestRestartSettingsFromEnvAndConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "agent.json")
	if err := os.WriteFile(cfg, []byte(`{"data-dir": "/var/lib/meshnode", "max-streams": 9}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o, _, err := parseAgentConfig([]string{"--config", cfg}, []string{"MESHNODE_HTTP_READ_TIMEOUT=7s", "MESHNODE_MAX_STREAMS=3"})
	if err != nil {
		t.Fatal(err)
	}
	if o.dataDir != "/var/lib/meshnode" || o.maxStreams != 3 || o.readTimeout != 7*time.Second {
		t.Errorf("data-dir %q, max-streams %d, http-read-timeout %v; want the file's dir, the env's 3 and 7s", o.dataDir, o.maxStreams, o.readTimeout)
	}
}
