// Package relay owns the acknowledged point-to-point link between two nodes:
// framing, the handshake, link sequence numbers, the retransmit buffer,
// cumulative acks, heartbeats, the inactivity timeout and redial with
// back-off. It carries opaque payloads and knows nothing of events,
// membership or handlers. The wire format is specified in PROTOCOL.md at the
// root of the repository.
//
// # Identity
//
// A HELLO claims a NodeID; a TLS connection proves it. When the connection
// carries the remote's certificate, the handshake refuses it unless the
// certificate names the claimed id (CN or DNS SAN), on both sides
// (ErrIdentity); Authenticated tells whether a connection proved its id.
// Keyed derives a mutual-TLS transport from a cluster key (identity.go,
// keyed.go). Without either, a NodeID is only a claim.
//
// # Structure
//
// Every protocol decision lives in machine, a plain state machine with no
// goroutines, no sockets and no clock of its own: the driver feeds it sends,
// received frames, connect/disconnect and the current time, and writes what
// it asks for. The driver (Link) does the IO and has no protocol branches.
//
// # Concurrency
//
// A Link's methods are safe for concurrent use. Each link runs one loop
// goroutine (dialing, writing, timers) and, while connected, one reader
// goroutine. Handler methods run only on those goroutines, never inside a
// call to the link (see Handler): Handler.Receive on the reader, in link
// seq order; Handler.Event and Handler.Identify on either. Handler methods
// must not block and must not call Link.Close (which waits for those
// goroutines).
//
// # Lifecycle
//
// Dial and NewInbound start the link's loop; Close stops it and waits for
// every goroutine the link started. An inbound link also stops by itself
// when it has been disconnected for BufferTimeout; Done reports either.
package relay
