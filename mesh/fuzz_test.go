package mesh_test

import (
	"bytes"
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// FuzzEventScan: Scan of any argument values into matching destinations
// round-trips them; into mismatched ones it errors or converts, never panics.
func FuzzEventScan(f *testing.F) {
	f.Add("a", int64(-1), uint64(math.MaxUint64), 2.5, true, []byte{0, 1})
	f.Add("", int64(math.MinInt64), uint64(0), math.Inf(-1), false, []byte(nil))
	f.Add("\xff\xfe", int64(1<<53), uint64(1<<63), math.NaN(), true, []byte("x"))
	f.Fuzz(func(t *testing.T, s string, i int64, u uint64, fl float64, b bool, raw []byte) {
		e := mesh.Event{Name: "x", Args: []any{s, i, u, fl, b, raw, []any{s, i}, map[string]any{"k": s, "n": nil}, nil}}
		var (
			s2 string
			i2 int64
			u2 uint64
			f2 float64
			b2 bool
			r2 []byte
			l2 []any
			m2 map[string]any
			p2 *string
		)
		if err := e.Scan(&s2, &i2, &u2, &f2, &b2, &r2, &l2, &m2, &p2); err != nil {
			t.Fatalf("scan into matching types: %v", err)
		}
		if s2 != s || i2 != i || u2 != u || b2 != b || !bytes.Equal(r2, raw) || len(l2) != 2 || len(m2) != 2 || p2 != nil {
			t.Fatalf("round trip: got %q %d %d %v %x %v %v %v", s2, i2, u2, b2, r2, l2, m2, p2)
		}
		if f2 != fl && !(math.IsNaN(f2) && math.IsNaN(fl)) {
			t.Fatalf("float: got %v, want %v", f2, fl)
		}
		// Every argument into every kind of destination: no panic.
		var st struct{ K string }
		var (
			n8  int8
			str string
			ss  []string
			mi  map[int]int
			bl  bool
		)
		for _, dst := range []any{&n8, &str, &ss, &mi, &bl, &st, &fl, &raw} {
			for k := range e.Args {
				args := make([]any, k+1)
				args[k] = dst
				_ = e.Scan(args...)
			}
		}
		if err := e.Scan(nil, nil, nil, nil, nil, nil, nil, nil, nil, &s2); err == nil {
			t.Fatal("more destinations than args must fail")
		}
		if err := e.Scan(s2); err == nil {
			t.Fatal("a non-pointer destination must fail")
		}
	})
}

// validPayload captures the relay payload a real node sends for one event,
// as a fuzzing seed that the fuzzer can then mutate field by field.
func validPayload(f *testing.F) []byte {
	n := memnet.New(7)
	ln, err := n.Host("cap").Listen("cap:1")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	got := &payloadSink{ch: make(chan []byte, 16)}
	rcfg := relay.Config{NodeID: "cap", Boot: relay.NewBoot(), Transport: n.Host("cap")}
	var link *relay.Link
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		hello, err := relay.Accept(rcfg, conn)
		if err != nil {
			return
		}
		if link, err = relay.NewInbound(rcfg, got); err == nil {
			link.Attach(conn, hello)
		}
	}()
	src, err := mesh.New(mesh.Config{NodeID: "src", Transport: n.Host("src"), Logger: hclog.NewNullLogger()})
	if err != nil {
		f.Fatal(err)
	}
	defer src.Close()
	if _, err := src.Connect("cap:1"); err != nil {
		f.Fatal(err)
	}
	<-accepted
	if link == nil {
		f.Fatal("capture link not attached")
	}
	defer link.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if err := src.Emit("x", "a", 1, true, 2.5, []byte{1}, map[string]any{"k": []any{1, "v"}}); err != nil {
			f.Fatal(err)
		}
		select {
		case p := <-got.ch:
			return p
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			f.Fatal("no payload captured")
		}
	}
}

// payloadSink is a relay.Handler that keeps the payloads it receives.
type payloadSink struct{ ch chan []byte }

func (s *payloadSink) Receive(_ *relay.Link, ps [][]byte) {
	for _, p := range ps {
		select {
		case s.ch <- bytes.Clone(p): // the link reuses p once Receive returns
		default:
		}
	}
}
func (s *payloadSink) Event(*relay.Link, relay.Event)          {}
func (s *payloadSink) Identify(*relay.Link, relay.Hello) error { return nil }

// FuzzReceive feeds an arbitrary payload to a node through a real relay
// link over memnet. The node must not panic, must keep its other links (a
// healthy peer still gets through), and a payload it cannot use must cost
// only the link that sent it.
func FuzzReceive(f *testing.F) {
	good := validPayload(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{0x97, 1, 0xa1, 'o', 1, 1, 0xa1, 'x', 0x90})
	f.Add([]byte{0xc1})
	f.Add(wire.NewGrant([]wire.Credit{{Origin: "h", Boot: 1, Upto: 9}}).Encode()) // a GRANT for a link that sent nothing
	f.Add([]byte{0x92, 5, 0x91, 0x93, 0xa0, 1, 1})                                // a GRANT with an empty origin: the link is dropped
	f.Fuzz(func(t *testing.T, payload []byte) {
		synctest.Test(t, func(t *testing.T) {
			tn := newTestNet(t)
			target := tn.server("t", func(c *mesh.Config) { c.Logger = hclog.NewNullLogger() })
			healthy := tn.node("h", func(c *mesh.Config) { c.Logger = hclog.NewNullLogger() })
			after := listen(target, "after")
			if _, err := healthy.Connect("t:7947"); err != nil {
				t.Fatal(err)
			}
			sink := &payloadSink{ch: make(chan []byte, 1)}
			fz, err := relay.Dial(relay.Config{NodeID: "fz", Boot: relay.NewBoot(), Transport: tn.net.Host("fz")}, "t:7947", sink)
			if err != nil {
				t.Fatal(err)
			}
			defer fz.Close()
			eventually(t, time.Minute, "links up", connected(target, 2))
			fz.Send(payload)
			synctest.Wait()
			// Time stands still in Wait: a link dropped for a bad payload
			// is still waiting for its redial.
			if target.Stats().BadPayloads > 0 && fz.State() == relay.Connected {
				t.Fatalf("payload %x was counted bad but its link was not dropped", payload)
			}

			// The healthy link never went down, and still carries events.
			if !connected(healthy, 1)() {
				t.Fatalf("the healthy link went down after payload %x", payload)
			}
			if err := healthy.Emit("after", 1); err != nil {
				t.Fatal(err)
			}
			eventually(t, time.Minute, "the healthy peer's event", func() bool { return len(after.all()) == 1 })
		})
	})
}

// Regression (found by FuzzEmitBody): an event named "*" was delivered twice
// to every "*" handler, once as its named handler and once as a catch-all.
func TestEventNamedStarDeliveredOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		client := tn.node("client")
		all := listen(client, "*")
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "link", connected(server, 1))
		if err := server.Emit("*", 1); err != nil {
			t.Fatal(err)
		}
		if err := server.Emit("after", 2); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "both events", func() bool { return len(all.all()) >= 2 })
		synctest.Wait()
		if got := all.firstArgs(); len(got) != 2 || got[0] != "1" || got[1] != "2" {
			t.Fatalf("a \"*\" handler got %v, want [1 2]", got)
		}
	})
}
