// Package testca makes throw-away certificate authorities for tests that
// need TLS: an ECDSA P-256 CA, server certificates for given hosts and client
// certificates, all valid from 1999 to 2099 and all signed in memory.
//
// Every certificate it issues carries both the server and the client
// extended key usage, so the config from ServerConfig serves a node that
// both accepts and dials links (mutual TLS in both directions), while
// ClientConfig is a dial-only identity.
//
// A CA is safe for concurrent use; it starts no goroutines and needs no
// cleanup beyond the test's temporary directory used by WriteFiles.
package testca
