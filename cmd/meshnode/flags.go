package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

const agentSynopsis = `meshnode agent [--node-id ID] [--channel NAME] [--gossip ADDR] [--relay ADDR] [--http ADDR]
                 [--join ADDR]... [--connect ADDR]... [--timeout D] [--buffer-timeout D]
                 [--buffer-max N] [--ack-interval D] [--max-peers N] [--flood] [--encrypt BASE64KEY]
                 [--tls-cert F --tls-key F --tls-ca F] [--log-level LEVEL]`

// Default agent addresses. The HTTP API listens on loopback: it is not
// exposed unless asked.
const (
	defaultGossipAddr = "0.0.0.0:7946"
	defaultRelayAddr  = "0.0.0.0:7947"
	defaultHTTPAddr   = "127.0.0.1:7948"
)

// agentOptions is the agent's command line, checked but not yet applied:
// files named by flags are read by buildConfig.
type agentOptions struct {
	cfg      mesh.Config // without Logger, MetricSink and Transport
	relay    string      // "" = no relay listener (outbound links only)
	http     string      // "" = no HTTP API
	join     []string
	connect  []string
	tlsCert  string
	tlsKey   string
	tlsCA    string
	logLevel hclog.Level
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	*s = append(*s, v)
	return nil
}

// parseAgentFlags parses and checks the agent's flags. Every error names
// the flag; help is flag.ErrHelp.
func parseAgentFlags(args []string) (*agentOptions, *flag.FlagSet, error) {
	o := &agentOptions{}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.cfg.NodeID, "node-id", "", "this node's id (default: a random UUID)")
	fs.StringVar(&o.cfg.Channel, "channel", mesh.DefaultChannel, "cluster `name`: nodes of another channel are refused")
	fs.StringVar(&o.cfg.GossipAddr, "gossip", defaultGossipAddr, "gossip (memberlist) bind `address`; empty disables membership")
	fs.StringVar(&o.relay, "relay", defaultRelayAddr, "relay listener `address`; empty: accept no links")
	fs.StringVar(&o.http, "http", defaultHTTPAddr, "HTTP API `address`; empty disables the API")
	fs.Var((*stringList)(&o.join), "join", "gossip `address` of a seed to join (repeatable)")
	fs.Var((*stringList)(&o.connect), "connect", "relay `address` to link to directly (repeatable)")
	fs.DurationVar(&o.cfg.Timeout, "timeout", mesh.DefaultTimeout, "drop and redial a link silent for this `duration`")
	fs.DurationVar(&o.cfg.BufferTimeout, "buffer-timeout", mesh.DefaultBufferTimeout, "keep unacknowledged events for a gone peer this `duration`")
	fs.IntVar(&o.cfg.BufferMax, "buffer-max", mesh.DefaultBufferMax, "most unacknowledged events kept per peer")
	fs.DurationVar(&o.cfg.AcknowledgeInterval, "ack-interval", mesh.DefaultAcknowledgeInterval, "how often to acknowledge received events")
	fs.IntVar(&o.cfg.MaxPeers, "max-peers", mesh.DefaultMaxPeers, "most relay links at once")
	fs.BoolVar(&o.cfg.Flood, "flood", false, "send every event over every link (no broadcast tree); set it alike on every agent")
	encrypt := fs.String("encrypt", "", "gossip encryption key, base64 of 16, 24 or 32 bytes")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file` for mutual TLS on relay links")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA `file` that peers' certificates must chain to")
	level := fs.String("log-level", "info", "log `level`: trace, debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := o.check(*encrypt, *level); err != nil {
		return nil, fs, err
	}
	return o, fs, nil
}

func (o *agentOptions) check(encrypt, level string) error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--timeout", o.cfg.Timeout},
		{"--buffer-timeout", o.cfg.BufferTimeout},
		{"--ack-interval", o.cfg.AcknowledgeInterval},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive, got %v", d.flag, d.v)
		}
	}
	if o.cfg.BufferMax < 1 {
		return fmt.Errorf("--buffer-max: must be at least 1, got %d", o.cfg.BufferMax)
	}
	if o.cfg.MaxPeers < 1 {
		return fmt.Errorf("--max-peers: must be at least 1, got %d", o.cfg.MaxPeers)
	}
	if o.cfg.Channel == "" {
		return errors.New("--channel: must not be empty")
	}
	if encrypt != "" {
		key, err := base64.StdEncoding.DecodeString(encrypt)
		if err != nil {
			return fmt.Errorf("--encrypt: not valid base64: %v", err)
		}
		if n := len(key); n != 16 && n != 24 && n != 32 {
			return fmt.Errorf("--encrypt: the key must be 16, 24 or 32 bytes, got %d", n)
		}
		if o.cfg.GossipAddr == "" {
			return errors.New("--encrypt: needs --gossip (it encrypts gossip)")
		}
		o.cfg.GossipKey = key
	}
	if len(o.join) > 0 && o.cfg.GossipAddr == "" {
		return errors.New("--join: needs --gossip (membership is disabled)")
	}
	if err := o.checkTLS(); err != nil {
		return err
	}
	o.logLevel = hclog.LevelFromString(level)
	if o.logLevel == hclog.NoLevel {
		return fmt.Errorf("--log-level: unknown level %q (trace, debug, info, warn, error)", level)
	}
	return nil
}

// checkTLS requires the three TLS flags together: a certificate without a
// CA to verify peers by would not be mutual TLS.
func (o *agentOptions) checkTLS() error {
	set := map[string]bool{"--tls-cert": o.tlsCert != "", "--tls-key": o.tlsKey != "", "--tls-ca": o.tlsCA != ""}
	var given, missing []string
	for _, f := range []string{"--tls-cert", "--tls-key", "--tls-ca"} {
		if set[f] {
			given = append(given, f)
		} else {
			missing = append(missing, f)
		}
	}
	if len(given) > 0 && len(missing) > 0 {
		return fmt.Errorf("%s: needs %s (--tls-cert, --tls-key and --tls-ca go together)", given[0], strings.Join(missing, " and "))
	}
	return nil
}

// tlsConfig loads the TLS files: mutual TLS, the certificate presented as
// both server and client, peers verified against the CA in both roles.
func (o *agentOptions) tlsConfig() (*tls.Config, error) {
	if o.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	caPEM, err := os.ReadFile(o.tlsCA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("--tls-ca: no PEM certificate in %s", o.tlsCA)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		RootCAs:      pool,
	}, nil
}
