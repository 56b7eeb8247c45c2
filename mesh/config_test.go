package mesh_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

func TestConfigValidationNamesTheField(t *testing.T) {
	cases := []struct {
		field string
		cfg   mesh.Config
	}{
		{"Timeout", mesh.Config{Timeout: -time.Second}},
		{"BufferTimeout", mesh.Config{BufferTimeout: -1}},
		{"AcknowledgeInterval", mesh.Config{AcknowledgeInterval: -1}},
		{"BufferMax", mesh.Config{BufferMax: -5}},
		{"MaxPeers", mesh.Config{MaxPeers: -1}},
		{"GossipKey", mesh.Config{GossipAddr: "127.0.0.1:0", GossipKey: []byte("short")}},
		{"GossipAddr", mesh.Config{GossipAddr: "not an address"}},
		{"AdvertiseAddr", mesh.Config{GossipAddr: "127.0.0.1:0", AdvertiseAddr: "nope"}},
		{"MaxFrameSize", mesh.Config{MaxFrameSize: 10}},
	}
	for _, tc := range cases {
		t.Run(tc.field, func(t *testing.T) {
			n, err := mesh.New(tc.cfg)
			if err == nil {
				n.Close()
				t.Fatal("New accepted a bad config")
			}
			if !errors.Is(err, mesh.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("error %q does not name %s", err, tc.field)
			}
		})
	}
}

func TestZeroConfigTakesDefaults(t *testing.T) {
	n, err := mesh.New(mesh.Config{Logger: testLogger(t, "zero")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if len(n.ID()) != 36 {
		t.Fatalf("default NodeID %q is not a UUID", n.ID())
	}
	if n.Addr() != nil {
		t.Fatal("a listener before Listen")
	}
	if _, err := n.Join("127.0.0.1:1"); !errors.Is(err, mesh.ErrNoMembership) {
		t.Fatalf("Join without GossipAddr: %v", err)
	}
}

func TestBadArguments(t *testing.T) {
	n, err := mesh.New(mesh.Config{Logger: testLogger(t, "args")})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.Connect("no-port"); !errors.Is(err, mesh.ErrBadAddress) {
		t.Fatalf("Connect(no-port): %v", err)
	}
	if err := n.Listen("nope"); !errors.Is(err, mesh.ErrBadAddress) {
		t.Fatalf("Listen(nope): %v", err)
	}
	if err := n.Emit(""); !errors.Is(err, mesh.ErrBadEvent) {
		t.Fatalf("Emit with no name: %v", err)
	}
	if err := n.Emit(strings.Repeat("x", mesh.MaxNameLen+1)); !errors.Is(err, mesh.ErrBadEvent) {
		t.Fatalf("Emit with a long name: %v", err)
	}
	if err := n.Emit("x", make(chan int)); !errors.Is(err, mesh.ErrBadEvent) {
		t.Fatalf("Emit with an unencodable arg: %v", err)
	}
	if err := n.Emit("x", make([]byte, 2<<20)); !errors.Is(err, mesh.ErrBadEvent) {
		t.Fatalf("Emit over MaxFrameSize: %v", err)
	}
}

func TestEventScan(t *testing.T) {
	type point struct{ X, Y int }
	e := mesh.Event{Name: "x", Args: []any{"s", int64(-3), uint64(7), 1.5, true, nil, []byte("b"), map[string]any{"X": int64(1), "Y": int64(2)}}}
	var (
		s  string
		i  int
		u  uint32
		f  float64
		b  bool
		p  *int
		bs []byte
		pt point
	)
	if err := e.Scan(&s, &i, &u, &f, &b, &p, &bs, &pt); err != nil {
		t.Fatal(err)
	}
	if s != "s" || i != -3 || u != 7 || f != 1.5 || !b || p != nil || string(bs) != "b" || pt != (point{1, 2}) {
		t.Fatalf("scanned %q %d %d %v %v %v %q %+v", s, i, u, f, b, p, bs, pt)
	}
	if err := e.Scan(nil, &i); err != nil || i != -3 {
		t.Fatalf("skipping with nil: %v %d", err, i)
	}
	if err := (mesh.Event{Args: []any{"a"}}).Scan(&s, &i); err == nil {
		t.Fatal("more destinations than args accepted")
	}
	if err := (mesh.Event{Args: []any{"a"}}).Scan(s); err == nil {
		t.Fatal("a non-pointer destination accepted")
	}
	if err := (mesh.Event{Args: []any{"a"}}).Scan(&i); err == nil {
		t.Fatal("a string scanned into an int")
	}
}
