package relay

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
)

// ErrIdentity is why a link is refused when the remote's certificate does
// not name the NodeID its HELLO claims.
var ErrIdentity = errors.New("relay: peer identity not proven")

// tlsConn is a connection that carries a TLS session: *tls.Conn, or a
// transport's wrapper of one.
type tlsConn interface {
	ConnectionState() tls.ConnectionState
}

// peerCertificate returns the remote's leaf certificate and whether the
// TLS stack verified its chain; nil for a connection without TLS or
// without a certificate from the remote (a server that asks for none).
func peerCertificate(conn net.Conn) (cert *x509.Certificate, verified bool) {
	tc, ok := conn.(tlsConn)
	if !ok {
		return nil, false
	}
	cs := tc.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return nil, false
	}
	return cs.PeerCertificates[0], len(cs.VerifiedChains) > 0
}

// certNames are the names a certificate vouches for, as a NodeID: its
// subject's CommonName and its DNS SANs.
func certNames(cert *x509.Certificate) []string {
	names := make([]string, 0, 1+len(cert.DNSNames))
	if cert.Subject.CommonName != "" {
		names = append(names, cert.Subject.CommonName)
	}
	return append(names, cert.DNSNames...)
}

// checkIdentity refuses a connection whose remote certificate does not name
// claimed (its CN or one of its DNS SANs). A connection without a remote
// certificate (plain TCP, or a TLS server that asks for none) passes: its
// identity is a claim, which Authenticated reports.
func checkIdentity(conn net.Conn, claimed string) error {
	cert, _ := peerCertificate(conn)
	if cert == nil {
		return nil
	}
	names := certNames(cert)
	if slices.Contains(names, claimed) {
		return nil
	}
	return fmt.Errorf("%w: HELLO claims node id %q, the certificate names %q", ErrIdentity, claimed, names)
}

// Authenticated reports whether conn proves the NodeID its remote claimed
// in the handshake: it carries a certificate that the TLS stack verified
// and that names that NodeID (Accept and the dialer refuse a certificate
// that names another). A plain connection proves nothing.
func Authenticated(conn net.Conn) bool {
	cert, verified := peerCertificate(conn)
	return cert != nil && verified
}

// Authenticates reports whether every link carried by t proves its remote's
// NodeID in both directions: a keyed transport, or TLS whose config
// requires and verifies client certificates. A node whose transport does
// not is open to anyone who reaches its relay port.
func Authenticates(t Transport) bool {
	tt, ok := t.(tlsTransport)
	return ok && tt.cfg != nil && tt.cfg.ClientAuth == tls.RequireAndVerifyClientCert && !tt.cfg.InsecureSkipVerify
}

// IsTLS reports whether t is a TLS transport (TLS or Keyed): its links can
// prove their NodeIDs with certificates.
func IsTLS(t Transport) bool {
	_, ok := t.(tlsTransport)
	return ok
}
