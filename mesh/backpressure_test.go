package mesh_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// Emit waits while one of its own events waits for a consumer (flow
// control): here a peer that receives nothing, so grants nothing and acks
// nothing, once its link's room (2×BufferMax) is used. EmitContext gives up with ctx's error and emits nothing; Emit waits
// until the peer is declared slow after Timeout, and only once: the next
// Emit does not wait.
func TestEmitBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		const timeout = 10 * time.Second
		server := tn.server("server", func(c *mesh.Config) {
			c.BufferMax = 5
			c.Timeout = timeout
		})
		speers := watchPeers(server)
		client := tn.node("client", func(c *mesh.Config) { c.Timeout = time.Minute })
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "link", connected(server, 1))
		// Nothing the server sends reaches the client any more, and so no ack
		// or grant comes back; the link stays up (the client's heartbeats
		// reach the server) until the client's inactivity timeout.
		tn.net.SetLatency("server", "client", time.Hour)
		emitted := 0
		for ; emitted < 100; emitted++ {
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			start := time.Now()
			err := server.EmitContext(ctx, "x", emitted)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				if waited := time.Since(start); waited != time.Second {
					t.Fatalf("EmitContext waited %v, want the ctx's 1s", waited)
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if emitted != 11 {
			t.Fatalf("Emit waited after %d events, want 11 (10 in the link's buffer, 1 held)", emitted)
		}
		if s := server.Stats(); s.Emitted != 11 || !s.Held {
			t.Fatalf("after a cancelled EmitContext: %+v, want Emitted 11 and Held", s)
		}
		start := time.Now()
		if err := server.Emit("x", "after"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > timeout {
			t.Fatalf("Emit blocked %v, more than Timeout", waited)
		}
		// At Timeout the peer is declared slow, and (memnet's writes block
		// once nothing reaches the client) its link's write deadline drops it:
		// either ends the wait, and is reported.
		eventually(t, time.Minute, "a Slow or Disconnect report", func() bool {
			return speers.count(mesh.Slow)+speers.count(mesh.Disconnect) > 0
		})
		start = time.Now()
		for i := range 20 {
			if err := server.Emit("x", i); err != nil {
				t.Fatal(err)
			}
		}
		if waited := time.Since(start); waited != 0 {
			t.Fatalf("Emit waited %v again for a consumer already declared slow", waited)
		}
		if s := server.Stats(); s.EmitWaits != 1 || s.EmitWaited > timeout {
			t.Fatalf("stats %+v, want one Emit that waited (the cancelled one is not counted), at most Timeout", s)
		}
	})
}
