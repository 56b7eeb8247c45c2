package memnet_test

import (
	"context"
	"net"
	"testing"

	"go.uber.org/goleak"

	"github.com/verbosemesh/verbose/relay/memnet"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// connect listens on host to, dials it from host from and returns both
// ends, closed at the end of the test.
func connect(t *testing.T, n *memnet.Network, from, to string) (client, server net.Conn) {
	t.Helper()
	l, err := n.Host(to).Listen(to + ":0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	client, err = n.Host(from).Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	server, err = l.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

func mustWrite(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
		t.Fatalf("write %q: n=%d err=%v", s, n, err)
	}
}

// readN reads exactly n bytes.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	buf := make([]byte, n)
	for got := 0; got < n; {
		k, err := c.Read(buf[got:])
		if err != nil {
			t.Fatalf("read after %d of %d bytes: %v", got, n, err)
		}
		got += k
	}
	return string(buf)
}
