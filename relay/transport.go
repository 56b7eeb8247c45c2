package relay

import (
	"context"
	"fmt"
	"net"
	"time"
)

// Transport carries links. Listen and Dial must return connections that
// support deadlines; a link sets read and write deadlines on them.
//
// TCP is the default; TLS wraps it; package memnet provides an in-memory
// transport with fault injection for tests.
type Transport interface {
	Listen(addr string) (net.Listener, error)
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// keepAlive is the TCP keep-alive period for links. A link has its own
// heartbeats; keep-alive only lets the kernel notice a peer that vanished
// without a FIN while the link is idle between heartbeats.
const keepAlive = 15 * time.Second

// transportError wraps err with the operation and address, in the form
// "relay: dial 10.0.0.2:7947: ...", so that errors.Is still sees err.
func transportError(op, addr string, err error) error {
	return fmt.Errorf("relay: %s %s: %w", op, addr, err)
}
