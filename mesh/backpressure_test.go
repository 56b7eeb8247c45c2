package mesh_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/mesh"
)

// Emit waits while a connected peer's buffer is full: EmitContext gives up
// with ctx's error and emits nothing; Emit waits at most Timeout, then drops
// the stuck peer (which falls under the buffer bounds) and goes on.
func TestEmitBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tn := newTestNet(t)
		server := tn.server("server", func(c *mesh.Config) {
			c.BufferMax = 5
			c.Timeout = time.Minute
		})
		speers := watchPeers(server)
		client := tn.node("client", func(c *mesh.Config) { c.Timeout = time.Minute })
		if _, err := client.Connect("server:7947"); err != nil {
			t.Fatal(err)
		}
		eventually(t, time.Minute, "link", connected(server, 1))
		// Nothing the server sends reaches the client any more, and so no ack
		// comes back; the link stays up until its inactivity timeout.
		tn.net.SetLatency("server", "client", time.Hour)
		for i := range 5 {
			if err := server.Emit("x", i); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		if err := server.EmitContext(ctx, "x", "late"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("EmitContext on a full buffer: %v, want DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("EmitContext waited %v, want the ctx's 1s", waited)
		}
		if s := server.Stats(); s.Emitted != 5 {
			t.Fatalf("Emitted = %d after a cancelled EmitContext, want 5", s.Emitted)
		}
		start = time.Now()
		if err := server.Emit("x", "after"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > time.Minute {
			t.Fatalf("Emit blocked %v, more than Timeout", waited)
		}
		eventually(t, time.Minute, "the stuck peer dropped", func() bool { return speers.count(mesh.Disconnect) > 0 })
	})
}
