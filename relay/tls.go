package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
)

// ErrNoTLSConfig is returned by the TLS transport's Listen and Dial when it
// was built with a nil *tls.Config.
var ErrNoTLSConfig = errors.New("relay: tls transport without a config")

// tlsTransport carries links over TLS on TCP.
type tlsTransport struct {
	cfg  *tls.Config // a private clone; nil means misconfigured
	base Transport   // what TLS runs over; nil: TCP
}

// TLS returns a transport that runs TLS over TCP (TCP_NODELAY, keep-alive).
//
// The server side uses cfg as given; it asks for and verifies client
// certificates (mutual TLS) when cfg.ClientAuth says so. The client side uses
// a clone of cfg whose ServerName, when empty, is the host part of the
// dialled address, so a certificate is checked against the name or IP the
// link dialled. One cfg thus serves a node in both roles: Certificates are
// its own identity, RootCAs verify servers and ClientCAs verify clients.
//
// Dial completes the handshake under its ctx, so a bad server certificate
// fails the Dial. An accepted connection handshakes on its first Read or
// Write, where a client's handshake error surfaces; Accept never blocks on a
// slow client. With TLS 1.3 a server's refusal of the client certificate
// reaches the client at its first Read, not at Dial.
//
// cfg is cloned: later changes to it have no effect on the transport.
func TLS(cfg *tls.Config) Transport {
	if cfg == nil {
		return tlsTransport{}
	}
	return tlsTransport{cfg: cfg.Clone()}
}

// Listen listens on addr and wraps accepted connections in TLS server conns.
func (t tlsTransport) Listen(addr string) (net.Listener, error) {
	if t.cfg == nil {
		return nil, transportError("listen", addr, ErrNoTLSConfig)
	}
	l, err := t.under().Listen(addr)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(l, t.cfg), nil
}

// Dial connects to addr and completes the TLS handshake before returning.
// ctx bounds both the connection and the handshake.
func (t tlsTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if t.cfg == nil {
		return nil, transportError("dial", addr, ErrNoTLSConfig)
	}
	cfg := t.cfg
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, transportError("dial", addr, err)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	raw, err := t.dialBase(ctx, addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, transportError("tls handshake with", addr, err)
	}
	return c, nil
}

func (t tlsTransport) under() Transport {
	if t.base == nil {
		return TCP()
	}
	return t.base
}

func (t tlsTransport) dialBase(ctx context.Context, addr string) (net.Conn, error) {
	if t.base == nil {
		c, err := dialTCP(ctx, addr)
		if err != nil {
			return nil, transportError("dial", addr, err)
		}
		return c, nil
	}
	return t.base.Dial(ctx, addr)
}
