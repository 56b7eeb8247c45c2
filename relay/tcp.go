package relay

import (
	"context"
	"net"
)

// tcpTransport carries links over plain TCP.
type tcpTransport struct{}

// TCP returns the default transport: plain TCP with Nagle's algorithm off
// (a link batches its own writes, so the kernel must not delay them) and
// keep-alive on, for both dialled and accepted connections.
func TCP() Transport { return tcpTransport{} }

// Listen listens on addr ("host:port"; port 0 picks a free port). Accepted
// connections have keep-alive on and TCP_NODELAY set.
func (tcpTransport) Listen(addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: keepAlive}
	l, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, transportError("listen", addr, err)
	}
	return tcpListener{l.(*net.TCPListener)}, nil
}

// Dial connects to addr; ctx bounds the connection attempt only.
func (tcpTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, transportError("dial", addr, err)
	}
	return c, nil
}

func dialTCP(ctx context.Context, addr string) (*net.TCPConn, error) {
	d := net.Dialer{KeepAlive: keepAlive}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := c.(*net.TCPConn)
	// Go sets TCP_NODELAY by default; say so explicitly since links depend on it.
	if err := tc.SetNoDelay(true); err != nil {
		_ = tc.Close()
		return nil, err
	}
	return tc, nil
}

// tcpListener sets TCP_NODELAY on every accepted connection.
type tcpListener struct{ *net.TCPListener }

func (l tcpListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	if err := c.SetNoDelay(true); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}
