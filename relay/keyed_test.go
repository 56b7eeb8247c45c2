package relay_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/verbosemesh/verbose/relay"
)

// Keyed links: nodes with one key link and prove their ids; another key,
// or none, cannot finish the TLS handshake.
func TestKeyedTransport(t *testing.T) {
	noLeaks(t)
	key := []byte("0123456789abcdef")
	long := strings.Repeat("n", 256) // the longest NodeID a node accepts
	server, err := relay.Keyed(key, "server", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !relay.Authenticates(server) || !relay.IsTLS(server) {
		t.Fatal("a keyed transport must authenticate its links")
	}
	ln, err := server.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan error, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, err := relay.Accept(relay.Config{NodeID: "server"}, c)
				if err == nil && !relay.Authenticated(c) {
					err = errors.New("accepted a keyed connection that proves nothing")
				}
				accepted <- err
			}()
		}
	}()
	dial := func(tr relay.Transport, id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := tr.Dial(ctx, ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		hello := relay.Hello{Version: relay.Version, Channel: relay.DefaultChannel, NodeID: id, Boot: 1, Window: 1, MaxFrame: 1 << 20}
		if _, err := c.Write(relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello, Hello: hello})); err != nil {
			return err
		}
		return <-accepted
	}
	for _, id := range []string{"client", long} {
		tr, err := relay.Keyed(key, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := dial(tr, id); err != nil {
			t.Errorf("keyed %.10s…: %v", id, err)
		}
	}
	// Same key, a certificate for "client", a HELLO claiming "server2".
	tr, _ := relay.Keyed(key, "client", nil)
	if err := dial(tr, "server2"); !errors.Is(err, relay.ErrIdentity) {
		t.Errorf("claiming another id: %v, want ErrIdentity", err)
	}
	other, _ := relay.Keyed([]byte("fedcba9876543210"), "client", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := other.Dial(ctx, ln.Addr().String()); err == nil {
		c.Close()
		t.Error("a client with another key finished the TLS handshake")
	}
	if _, err := relay.Keyed([]byte("short"), "x", nil); !errors.Is(err, relay.ErrBadKey) {
		t.Errorf("short key: %v", err)
	}
}
