package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// The validity window is fixed and wide on purpose: inside a
// testing/synctest bubble the clock starts at 2000-01-01, and a certificate
// made outside a bubble must still verify inside one (and vice versa).
var (
	notBefore = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

// CA is a certificate authority for one test.
type CA struct {
	t      testing.TB
	cert   *x509.Certificate
	der    []byte
	key    *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial atomic.Int64
}

// New makes a fresh CA. It fails t on error.
func New(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testca: generate ca key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "verbose test ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testca: create ca certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testca: parse ca certificate: %v", err)
	}
	ca := &CA{t: t, cert: cert, der: der, key: key, pool: x509.NewCertPool()}
	ca.pool.AddCert(cert)
	ca.serial.Store(1)
	return ca
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool { return ca.pool.Clone() }

// CertPEM returns the CA certificate in PEM form.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// ServerConfig returns a mutual-TLS config for a node reachable at hosts
// (IP addresses or DNS names; "127.0.0.1" and "localhost" when none are
// given): its certificate names hosts, it requires and verifies client
// certificates from this CA, and it verifies servers against this CA, so
// the same config also dials.
func (ca *CA) ServerConfig(hosts ...string) *tls.Config {
	ca.t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{ca.issue(hosts[0], hosts)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		RootCAs:      ca.Pool(),
	}
}

// NodeConfig is ServerConfig for a node whose NodeID is nodeID: its
// certificate's CommonName is nodeID (the name a relay link checks against
// the NodeID its HELLO claims), and it names hosts besides ("127.0.0.1"
// and "localhost" when none are given).
func (ca *CA) NodeConfig(nodeID string, hosts ...string) *tls.Config {
	ca.t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	cfg := ca.ServerConfig(hosts...)
	cfg.Certificates = []tls.Certificate{ca.issue(nodeID, hosts)}
	return cfg
}

// ClientConfig returns a config for dialling a ServerConfig node: a client
// certificate from this CA and this CA as the only trusted root.
func (ca *CA) ClientConfig() *tls.Config {
	ca.t.Helper()
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{ca.issue("verbose test client", nil)},
		RootCAs:      ca.Pool(),
	}
}

// WriteFiles writes a certificate for hosts (as ServerConfig), its key and
// the CA certificate as PEM files into dir, for code that loads TLS material
// from files (such as meshnode's --tls-cert, --tls-key and --tls-ca).
func (ca *CA) WriteFiles(dir string, hosts ...string) (certFile, keyFile, caFile string) {
	ca.t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	c := ca.issue(hosts[0], hosts)
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		ca.t.Fatalf("testca: marshal key: %v", err)
	}
	serial := c.Leaf.SerialNumber.String()
	certFile = filepath.Join(dir, "cert"+serial+".pem")
	keyFile = filepath.Join(dir, "key"+serial+".pem")
	caFile = filepath.Join(dir, "ca.pem")
	ca.write(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	ca.write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	ca.write(caFile, ca.CertPEM())
	return certFile, keyFile, caFile
}

func (ca *CA) write(name string, data []byte) {
	ca.t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		ca.t.Fatalf("testca: %v", err)
	}
}

// issue signs a leaf certificate named cn for hosts, usable by a server and
// by a client.
func (ca *CA) issue(cn string, hosts []string) tls.Certificate {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatalf("testca: generate key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatalf("testca: create certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatalf("testca: parse certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
