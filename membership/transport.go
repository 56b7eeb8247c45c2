package membership

import "github.com/hashicorp/memberlist"

// Transport is what carries gossip: memberlist's NodeAwareTransport, named
// here so that other packages configure it without importing memberlist.
type Transport = memberlist.NodeAwareTransport
