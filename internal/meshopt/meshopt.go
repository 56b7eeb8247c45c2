// Package meshopt carries the options of a mesh.Node that are not part of
// its public Config because only this module's own cluster harnesses need
// them (testcluster, meshbench): memberlist over an in-memory transport,
// and memberlist's timings shortened so that failures are seen within a
// second or two.
package meshopt

import "github.com/verbosemesh/verbose/membership"

// Options are the hidden options of one node.
type Options struct {
	// GossipTransport replaces memberlist's UDP/TCP transport (see
	// membership.NewMockNetwork); membership runs without a GossipAddr.
	GossipTransport membership.Transport
	// FastGossip shortens memberlist's probe and gossip intervals.
	FastGossip bool
}

// Set attaches o to cfg, which must be a *mesh.Config. Package mesh sets
// it when it is initialised (mesh imports this package, so this one cannot
// name mesh's types).
var Set func(cfg any, o Options)
