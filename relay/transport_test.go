package relay_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verbosemesh/verbose/internal/testca"
	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// A memnet host is a relay.Transport.
var _ relay.Transport = (*memnet.Host)(nil)

// noLeaks checks for leaked goroutines after the test's other cleanups.
func noLeaks(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// accepted is what a background Accept (and optional first Read) produced.
type accepted struct {
	conn net.Conn
	err  error
}

// acceptOne accepts one connection in the background. A TLS server conn
// handshakes on its first Read or Write, and Dial waits for that handshake,
// so the accepting side must act: it completes the handshake, and with echo
// set it also reads one byte and sends one back.
func acceptOne(t *testing.T, l net.Listener, echo bool) <-chan accepted {
	t.Helper()
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		if tc, ok := c.(*tls.Conn); ok && err == nil {
			err = tc.HandshakeContext(context.Background())
		}
		if echo && err == nil {
			if _, err = c.Read(make([]byte, 1)); err == nil {
				_, err = c.Write([]byte("y"))
			}
		}
		ch <- accepted{c, err}
	}()
	return ch
}

func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

// testContract checks what links rely on from any transport: a round trip,
// read deadlines, EOF after the peer closes, and Accept after Close.
func testContract(t *testing.T, server, client relay.Transport, listenAddr string) {
	l, err := server.Listen(listenAddr)
	if err != nil {
		t.Fatal(err)
	}
	ach := acceptOne(t, l, false)
	c, err := client.Dial(context.Background(), l.Addr().String())
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	a := <-ach
	if a.err != nil {
		t.Fatal(a.err)
	}
	s := a.conn
	defer closeAll(c, s, l)

	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("server read %q, %v", buf, err)
	}
	if _, err := s.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v", buf, err)
	}

	// A deadline already past fails the Read at once, as a timeout.
	c.SetReadDeadline(time.Now().Add(-time.Second))
	_, err = c.Read(buf)
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read past deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})

	s.Close()
	if _, err := c.Read(buf); err != io.EOF {
		t.Errorf("read after peer close: %v, want io.EOF", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept after close: %v, want net.ErrClosed", err)
	}
}

func TestTransportContract(t *testing.T) {
	ca := testca.New(t)
	n := memnet.New(1)
	for _, tc := range []struct {
		name           string
		server, client relay.Transport
		addr           string
	}{
		{"tcp", relay.TCP(), relay.TCP(), "127.0.0.1:0"},
		{"tls", relay.TLS(ca.ServerConfig("127.0.0.1")), relay.TLS(ca.ClientConfig()), "127.0.0.1:0"},
		{"memnet", n.Host("a"), n.Host("b"), "a:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			testContract(t, tc.server, tc.client, tc.addr)
		})
	}
	if n.Conns() != 0 {
		t.Errorf("memnet: %d conns left open", n.Conns())
	}
}

func TestTCPDial(t *testing.T) {
	noLeaks(t)
	l, err := relay.TCP().Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	ach := acceptOne(t, l, false)
	c, err := relay.TCP().Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	a := <-ach
	if _, ok := a.conn.(*net.TCPConn); !ok {
		t.Errorf("accepted %T, want *net.TCPConn", a.conn)
	}
	closeAll(c, a.conn, l)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = relay.TCP().Dial(ctx, addr)
	if !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "relay: dial "+addr) {
		t.Errorf("dial with a cancelled ctx: %v, want context.Canceled prefixed by the op", err)
	}
	// The listener is closed: nothing answers.
	if _, err := relay.TCP().Dial(context.Background(), addr); err == nil {
		t.Error("dial to a closed listener succeeded")
	}
	if _, err := relay.TCP().Listen("127.0.0.1:notaport"); err == nil || !strings.HasPrefix(err.Error(), "relay: listen") {
		t.Errorf("listen on a bad address: %v", err)
	}
}

// tlsPair listens with server, dials with client and returns the client conn,
// the client's error (from Dial or its first Read) and the server's error.
func tlsPair(t *testing.T, server, client *tls.Config) (c net.Conn, dialErr, serverErr error) {
	t.Helper()
	l, err := relay.TLS(server).Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ach := acceptOne(t, l, true)
	c, dialErr = relay.TLS(client).Dial(context.Background(), l.Addr().String())
	if dialErr == nil {
		// With TLS 1.3 a server's refusal of the client's certificate
		// reaches the client only at its first Read. The deadline is a
		// safety net: the server answers or fails well before it.
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			dialErr = err
		} else if _, err := c.Read(make([]byte, 1)); err != nil {
			dialErr = err
		}
		c.SetDeadline(time.Time{})
		t.Cleanup(func() { c.Close() })
	}
	a := <-ach
	if a.conn != nil {
		t.Cleanup(func() { a.conn.Close() })
	}
	return c, dialErr, a.err
}

func TestTLSMutual(t *testing.T) {
	noLeaks(t)
	ca := testca.New(t)
	c, dialErr, serverErr := tlsPair(t, ca.ServerConfig("127.0.0.1"), ca.ClientConfig())
	if dialErr != nil || serverErr != nil {
		t.Fatalf("mutual TLS: dial %v, server %v", dialErr, serverErr)
	}
	st := c.(*tls.Conn).ConnectionState()
	if !st.HandshakeComplete || len(st.PeerCertificates) == 0 {
		t.Errorf("handshake state %+v", st)
	}
	// One config serves a node both ways: it dials with its own certificate.
	node := ca.ServerConfig("127.0.0.1")
	if _, dialErr, serverErr := tlsPair(t, node, node); dialErr != nil || serverErr != nil {
		t.Errorf("node to node: dial %v, server %v", dialErr, serverErr)
	}
}

func TestTLSWithoutClientCert(t *testing.T) {
	noLeaks(t)
	ca := testca.New(t)
	client := &tls.Config{RootCAs: ca.Pool()}
	_, dialErr, serverErr := tlsPair(t, ca.ServerConfig("127.0.0.1"), client)
	if serverErr == nil {
		t.Error("server accepted a client without a certificate")
	}
	if dialErr == nil {
		t.Error("client without a certificate saw no error, at Dial or first Read")
	}
}

func TestTLSWrongCA(t *testing.T) {
	noLeaks(t)
	ours, theirs := testca.New(t), testca.New(t)
	_, dialErr, serverErr := tlsPair(t, theirs.ServerConfig("127.0.0.1"), ours.ClientConfig())
	var unknown x509.UnknownAuthorityError
	if !errors.As(dialErr, &unknown) {
		t.Errorf("dial to a server of another CA: %v, want x509.UnknownAuthorityError", dialErr)
	}
	if serverErr == nil {
		t.Error("server saw no error from a client that rejected it")
	}
}

func TestTLSServerName(t *testing.T) {
	noLeaks(t)
	ca := testca.New(t)
	// Derived from the dialled host: a certificate for another IP fails.
	_, dialErr, _ := tlsPair(t, ca.ServerConfig("10.9.9.9"), ca.ClientConfig())
	var host x509.HostnameError
	if !errors.As(dialErr, &host) {
		t.Errorf("certificate for another host: %v, want x509.HostnameError", dialErr)
	}
	// An explicit ServerName is kept.
	client := ca.ClientConfig()
	client.ServerName = "node-a"
	if _, dialErr, serverErr := tlsPair(t, ca.ServerConfig("node-a"), client); dialErr != nil || serverErr != nil {
		t.Errorf("explicit ServerName: dial %v, server %v", dialErr, serverErr)
	}
}

func TestTLSDialHonoursContext(t *testing.T) {
	noLeaks(t)
	ca := testca.New(t)
	// A TCP server that accepts and never speaks TLS: the handshake hangs
	// until ctx ends.
	l, err := relay.TCP().Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ach := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			cancel() // the client is now inside its handshake, or about to be
		}
		ach <- c
	}()
	_, err = relay.TLS(ca.ClientConfig()).Dial(ctx, l.Addr().String())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("dial: %v, want context.Canceled", err)
	}
	if c := <-ach; c != nil {
		c.Close()
	}
}

func TestTLSNilConfig(t *testing.T) {
	tr := relay.TLS(nil)
	if _, err := tr.Listen("127.0.0.1:0"); !errors.Is(err, relay.ErrNoTLSConfig) {
		t.Errorf("listen: %v, want ErrNoTLSConfig", err)
	}
	if _, err := tr.Dial(context.Background(), "127.0.0.1:1"); !errors.Is(err, relay.ErrNoTLSConfig) {
		t.Errorf("dial: %v, want ErrNoTLSConfig", err)
	}
}
