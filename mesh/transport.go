package mesh

import (
	"crypto/tls"
	"fmt"

	"github.com/verbosemesh/verbose/relay"
)

// Transport carries relay links: Listen accepts them, Dial opens them. The
// connections must support deadlines.
type Transport = relay.Transport

// TCP returns the default transport: plain TCP.
func TCP() Transport { return relay.TCP() }

// TLS returns a transport over TLS. It is mutual TLS when cfg asks for
// client certificates (ClientAuth) and carries a client certificate. A
// peer's certificate must name the NodeID it claims in the handshake: its
// CommonName or one of its DNS SANs (both ways: a dialer checks the node
// it reached too). A link that does not is refused (Rejected, with
// relay.ErrIdentity).
func TLS(cfg *tls.Config) Transport { return relay.TLS(cfg) }

// secureRelay settles how relay links are authenticated, and says so in
// the log once:
//   - TLS (Config.Transport is TLS): certificates. With client
//     certificates required and verified, every link proves its NodeID;
//     otherwise accepted links do not (a Warn line).
//   - a cluster key (GossipKey) and no TLS: Transport is wrapped in
//     relay.Keyed, mutual TLS 1.3 under a CA derived from the key, so
//     that only holders of the key can link and read.
//   - neither: open. Anyone who reaches the relay port can link, claim any
//     NodeID and inject events (a Warn line).
func (n *Node) secureRelay() error {
	switch {
	case relay.IsTLS(n.cfg.Transport):
		n.open = false
		if !relay.Authenticates(n.cfg.Transport) {
			n.log.Warn("relay links use TLS without required client certificates: an accepted link's NodeID is not proven; set ClientAuth to tls.RequireAndVerifyClientCert")
		}
	case len(n.cfg.GossipKey) > 0:
		t, err := relay.Keyed(n.cfg.GossipKey, n.id, n.cfg.Transport)
		if err != nil {
			return fmt.Errorf("%w: GossipKey: %v", ErrInvalidConfig, err)
		}
		n.cfg.Transport, n.open = t, false
		n.log.Info("relay links authenticated and encrypted with the cluster key (TLS 1.3, certificates derived from GossipKey)")
	default:
		n.open = true
		n.log.Warn("relay links are not authenticated: anyone who reaches the relay port can link, claim any NodeID and inject events; set a cluster key (GossipKey, --encrypt) or mutual TLS")
	}
	return nil
}
