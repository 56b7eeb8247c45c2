// Package testcluster runs N verbose nodes in one process for tests: over
// an in-memory network with fault injection (relay/memnet: cut, partition,
// latency, kill, restart) or over loopback TCP, linked by Connect in a
// chosen topology or by membership (Join).
//
// Every node records what its handlers receive; the recorder fails the
// test on a duplicate (origin, seq) or an origin's events out of order, and
// the Wait helpers fail it with a clear message when a condition is not met
// within their deadline. It is to verbose what httptest is to net/http.
//
// Inside a testing/synctest bubble with the in-memory network, time is
// virtual: a 15-minute BufferTimeout passes in microseconds.
package testcluster
