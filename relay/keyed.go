package relay

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// A keyed transport is TLS 1.3 whose certificate authority every node
// derives from the cluster key; nothing here is cryptography of our own.
//
// From the key, HKDF-SHA256 (info keyedInfo) gives a 32-byte seed, the
// seed an ed25519 key pair (RFC 8032 key generation from a seed), and that
// key a self-signed CA certificate with fixed fields: every node holding
// the key builds the same CA. Each node then issues itself, under that CA,
// a short-lived certificate whose CommonName is its NodeID, for a key pair
// of its own drawn at random. Both sides of a link require and verify the
// other's certificate against the derived CA (mutual TLS), and the link's
// handshake then checks that the certificate names the NodeID the HELLO
// claims (identity.go). Without the key a client can neither finish the
// TLS handshake nor read a byte; with it, it is a member of the cluster.
const (
	keyedInfo       = "verbose relay ca v1"
	keyedCAName     = "verbose cluster ca"
	keyedServerName = "relay.verbose.invalid" // every keyed certificate's DNS SAN: what a dialer verifies the CA's signature for
	keyedLifetime   = 24 * time.Hour          // a node's own certificate; renewed at half its life
	keyedSkew       = time.Hour               // clock skew between nodes tolerated at a certificate's start
)

// keyedValidity is the derived CA's validity: fixed, so that every node
// derives byte-identical CA certificates, and wide, so that a clock read
// inside a testing/synctest bubble (year 2000) is inside it.
var keyedNotBefore, keyedNotAfter = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrBadKey is returned by Keyed for a key that is not 16, 24 or 32 bytes.
var ErrBadKey = errors.New("relay: cluster key must be 16, 24 or 32 bytes")

// Keyed returns a transport that runs mutual TLS 1.3 over base (nil: TCP)
// with certificates derived from the cluster key: only nodes holding key
// can link, links are encrypted, and each node's certificate names its
// nodeID, which the handshake checks against the HELLO (so Authenticated
// is true of every link it carries). The key is the one memberlist uses to
// encrypt gossip (16, 24 or 32 bytes).
func Keyed(key []byte, nodeID string, base Transport) (Transport, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w, got %d", ErrBadKey, len(key))
	}
	if nodeID == "" {
		return nil, errors.New("relay: keyed transport: node id must not be empty")
	}
	ca, caKey, err := deriveCA(key)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	id := &keyedIdentity{nodeID: nodeID, ca: ca, caKey: caKey}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.certificate()
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.certificate()
		},
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  pool,
		RootCAs:    pool,
		ServerName: keyedServerName,
	}
	return tlsTransport{cfg: cfg, base: base}, nil
}

// deriveCA builds the cluster's CA from the key, identically on every node.
func deriveCA(key []byte) (*x509.Certificate, ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, key, nil, keyedInfo, ed25519.SeedSize)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: derive cluster ca: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: keyedCAName},
		NotBefore:             keyedNotBefore,
		NotAfter:              keyedNotAfter,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: derive cluster ca: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("relay: derive cluster ca: %w", err)
	}
	return ca, priv, nil
}

// keyedIdentity is a node's own certificate under the derived CA, issued
// on first use and again once half its lifetime has passed.
type keyedIdentity struct {
	nodeID string
	ca     *x509.Certificate
	caKey  ed25519.PrivateKey

	mu      sync.Mutex
	cert    *tls.Certificate
	renewAt time.Time
}

func (k *keyedIdentity) certificate() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := time.Now()
	if k.cert != nil && now.Before(k.renewAt) {
		return k.cert, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("relay: keyed certificate: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("relay: keyed certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: k.nodeID},
		DNSNames:     []string{keyedServerName},
		NotBefore:    now.Add(-keyedSkew),
		NotAfter:     now.Add(keyedLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.ca, pub, k.caKey)
	if err != nil {
		return nil, fmt.Errorf("relay: keyed certificate for %q: %w", k.nodeID, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("relay: keyed certificate: %w", err)
	}
	k.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	k.renewAt = now.Add(keyedLifetime / 2)
	return k.cert, nil
}
