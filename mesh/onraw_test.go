package mesh_test

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/verbosemesh/verbose/mesh"
)

// rawCall is what one handler saw of one event.
type rawCall struct {
	handler string
	idx     int64
	argsNil bool
	raw     []byte
}

// OnRaw handlers get every event once, in emit order, with Args nil and
// Scan and RawArgs working; On handlers of the same events still get Args;
// all run in registration order, named ones first; off removes a handler.
func TestOnRawMixedWithOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		client := tn.node("client")

		var mu sync.Mutex
		var calls []rawCall
		record := func(name string) func(mesh.Event) {
			return func(e mesh.Event) {
				var idx int64
				var s string
				if err := e.Scan(&idx, &s); err != nil || s != "s" {
					t.Errorf("%s: Scan: %v (%q)", name, err, s)
				}
				if name == "on" && (len(e.Args) != 3 || e.Args[0] != idx) {
					t.Errorf("On handler's Args %v, want [%d s ...]", e.Args, idx)
				}
				mu.Lock()
				calls = append(calls, rawCall{name, idx, e.Args == nil, e.RawArgs()})
				mu.Unlock()
			}
		}
		client.OnRaw("*", record("raw*"))
		client.On("ev", record("on"))
		offRaw := client.OnRaw("ev", record("raw"))
		client.On("other", func(mesh.Event) { t.Error("a handler of another name called") })
		count := func(name string) func() bool {
			return func() bool {
				mu.Lock()
				defer mu.Unlock()
				n := 0
				for _, c := range calls {
					if c.handler == name {
						n++
					}
				}
				return n == 200
			}
		}

		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "server's link", connected(server, 1))
		for i := range 100 {
			if err := server.Emit("ev", i, "s", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "100 events to each handler", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(calls) == 300
		})
		mu.Lock()
		for i, c := range calls {
			want := []string{"on", "raw", "raw*"}[i%3] // named first, in registration order
			if c.handler != want || c.idx != int64(i/3) {
				t.Fatalf("call %d: handler %s idx %d, want %s idx %d", i, c.handler, c.idx, want, i/3)
			}
			if c.argsNil != (c.handler != "on") {
				t.Fatalf("call %d: %s handler, Args nil %v", i, c.handler, c.argsNil)
			}
			// RawArgs decodes, by go-msgpack, to what was emitted.
			var args []any
			if err := codec.NewDecoderBytes(c.raw, &codec.MsgpackHandle{WriteExt: true}).Decode(&args); err != nil {
				t.Fatal(err)
			}
			if want := []any{int64(c.idx), "s", []byte{byte(c.idx)}}; !reflect.DeepEqual(args, want) {
				t.Fatalf("RawArgs decode to %#v, want %#v", args, want)
			}
		}
		mu.Unlock()

		offRaw()
		offRaw() // twice is a no-op
		for i := 100; i < 200; i++ {
			if err := server.Emit("ev", i, "s", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "the On handler's 200 events", count("on"))
		eventually(t, time.Minute, "the catch-all raw handler's 200 events", count("raw*"))
		if count("raw")() {
			t.Fatal("the removed raw handler still called")
		}
		mu.Lock()
		defer mu.Unlock()
		if n := len(calls); n != 300+200 {
			t.Fatalf("%d calls, want 500", n)
		}
	})
}

// Raw handlers only: the events still arrive, Scan reads them and no
// handler ever sees Args.
func TestOnRawOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server")
		client := tn.node("client", func(c *mesh.Config) { c.Logger = hclog.NewNullLogger() })
		var mu sync.Mutex
		var got []int64
		client.OnRaw("*", func(e mesh.Event) {
			var i int64
			if err := e.Scan(&i); err != nil || e.Args != nil || e.Origin != "server" {
				t.Errorf("Scan %v, Args %v, origin %q", err, e.Args, e.Origin)
			}
			mu.Lock()
			got = append(got, i)
			mu.Unlock()
		})
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "server's link", connected(server, 1))
		for i := range 50 {
			if err := server.Emit(fmt.Sprint("ev", i%3), i); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, time.Minute, "50 events", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(got) == 50
		})
		mu.Lock()
		defer mu.Unlock()
		for i, v := range got {
			if v != int64(i) {
				t.Fatalf("event %d has index %d: out of order", i, v)
			}
		}
	})
}

func ExampleNode_OnRaw() {
	quiet := hclog.NewNullLogger()
	server, _ := mesh.New(mesh.Config{NodeID: "server", Logger: quiet})
	defer server.Close()
	if err := server.Listen("127.0.0.1:0"); err != nil {
		panic(err)
	}
	ready := make(chan struct{}, 1)
	server.OnPeer(func(e mesh.PeerEvent) {
		if e.Kind == mesh.Initialized {
			ready <- struct{}{}
		}
	})

	client, _ := mesh.New(mesh.Config{NodeID: "client", Logger: quiet})
	defer client.Close()
	type reading struct {
		sensor string
		value  float64
	}
	got := make(chan reading, 1)
	// A hot-path handler: typed decoding straight from the wire bytes, no
	// []any (e.Args is nil here).
	client.OnRaw("reading", func(e mesh.Event) {
		var r reading
		if err := e.Scan(&r.sensor, &r.value); err != nil {
			return // a malformed event: count it, log it
		}
		got <- r
	})
	if _, err := client.Connect(server.Addr().String()); err != nil {
		panic(err)
	}
	<-ready

	if err := server.Emit("reading", "t1", 21.5); err != nil {
		panic(err)
	}
	fmt.Printf("%+v\n", <-got)
	// Output: {sensor:t1 value:21.5}
}
