package mesh

import (
	"crypto/tls"

	"github.com/verbosemesh/verbose/relay"
)

// Transport carries relay links: Listen accepts them, Dial opens them. The
// connections must support deadlines.
type Transport = relay.Transport

// TCP returns the default transport: plain TCP.
func TCP() Transport { return relay.TCP() }

// TLS returns a transport over TLS. It is mutual TLS when cfg asks for
// client certificates (ClientAuth) and carries a client certificate.
func TLS(cfg *tls.Config) Transport { return relay.TLS(cfg) }
