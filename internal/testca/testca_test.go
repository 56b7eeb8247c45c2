package testca_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/verbosemesh/verbose/internal/testca"
)

func TestWriteFiles(t *testing.T) {
	ca := testca.New(t)
	certFile, keyFile, caFile := ca.WriteFiles(t.TempDir(), "127.0.0.1", "node-a")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca file holds no certificate")
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"127.0.0.1", "node-a"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			opts := x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{usage}}
			if _, err := leaf.Verify(opts); err != nil {
				t.Errorf("verify for %s, usage %v: %v", name, usage, err)
			}
		}
	}
	// Another CA does not vouch for it.
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: testca.New(t).Pool()}); err == nil {
		t.Error("certificate verified against an unrelated CA")
	}
}
