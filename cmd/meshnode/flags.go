package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

const agentSynopsis = `meshnode agent [--config FILE] [--node-id ID] [--channel NAME] [--gossip ADDR] [--advertise ADDR]
                 [--relay ADDR] [--http ADDR] [--metrics-addr ADDR] [--join ADDR]... [--connect ADDR]...
                 [--timeout D] [--buffer-timeout D] [--buffer-max N] [--ack-interval D] [--max-peers N] [--active-view N]
                 [--slow-consumer backpressure|drop] [--flood] [--topology-interval D] [--encrypt BASE64KEY | --encrypt-file FILE] [--tls-cert F --tls-key F --tls-ca F]
                 [--data-dir DIR] [--max-streams N] [--http-read-timeout D]
                 [--log-level LEVEL] [--log-json]

Every flag can also be set by an environment variable, MESHNODE_ and the flag's name in capitals
with '-' as '_' (MESHNODE_NODE_ID, MESHNODE_JOIN=a,b for a repeatable flag), except --http:
MESHNODE_HTTP_ADDR, which the client commands read too. --config FILE (or MESHNODE_CONFIG) reads
a JSON object of flag names to values ({"join": ["seed-1", "seed-2"], "buffer-timeout": "5m"}).
A flag on the command line beats the environment, which beats the file, which beats the default.`

// Default agent addresses. The HTTP API listens on loopback: it is not
// exposed unless asked.
const (
	defaultGossipAddr = "0.0.0.0:7946"
	defaultRelayAddr  = "0.0.0.0:7947"
	defaultHTTPAddr   = "127.0.0.1:7948"

	defaultMaxStreams  = 256              // concurrent GET /v1/events streams (~1 MB each when stalled)
	defaultReadTimeout = 30 * time.Second // a whole request, headers and body

	defaultGossipPort = "7946" // a --join seed without a port, as serf does
	defaultRelayPort  = "7947" // a --connect address without a port
)

// envPrefix starts the environment variable of every agent flag.
const envPrefix = "MESHNODE_"

// httpAddrEnv names the agent's HTTP API address for the agent and its
// clients alike (as CONSUL_HTTP_ADDR does).
const httpAddrEnv = "MESHNODE_HTTP_ADDR"

// envName is the environment variable that sets the agent flag name.
func envName(name string) string {
	if name == "http" {
		return httpAddrEnv
	}
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// agentOptions is the agent's command line, checked but not yet applied:
// the TLS files are read by tlsConfig.
type agentOptions struct {
	cfg         mesh.Config // without Logger, MetricSink and Transport
	relay       string      // "" = no relay listener (outbound links only)
	http        string      // "" = no HTTP API
	metricsAddr string      // "" = /metrics on the HTTP API's listener
	join        []string
	connect     []string
	tlsCert     string
	tlsKey      string
	tlsCA       string
	dataDir     string        // "" = no member snapshot: a restarted node knows only its --join seeds
	maxStreams  int           // most concurrent GET /v1/events streams
	readTimeout time.Duration // most time to read a request, headers and body
	logLevel    hclog.Level
	logJSON     bool
	// topologyInterval is how often the agent reports its links to the
	// cluster (the $topology event behind /v1/topology and /ui); 0: never.
	topologyInterval time.Duration

	// unknownEnv are MESHNODE_* variables that name no flag: the agent
	// warns about them at start (a typo must not pass silently).
	unknownEnv []string
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

// agentFlagValues holds the flags that agentOptions takes only after checks.
type agentFlagValues struct {
	encrypt, encryptFile, level, advertise, config string
}

// newAgentFlagSet defines the agent's flags over o and v. The manifests'
// test derives the flag and variable names from it.
func newAgentFlagSet(o *agentOptions, v *agentFlagValues) *flag.FlagSet {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&v.config, "config", "", "JSON `file` of settings (flag names as keys); flags and MESHNODE_* variables override it")
	fs.StringVar(&o.cfg.NodeID, "node-id", "", "this node's id (default: a random UUID); keep it across restarts to stay the same peer")
	fs.StringVar(&o.cfg.Channel, "channel", mesh.DefaultChannel, "cluster `name`: nodes of another channel are refused")
	fs.StringVar(&o.cfg.GossipAddr, "gossip", defaultGossipAddr, "gossip (memberlist) bind `address`; empty disables membership")
	fs.StringVar(&v.advertise, "advertise", "", "gossip `address` other members should use (host or host:port; default port: --gossip's)")
	fs.StringVar(&o.relay, "relay", defaultRelayAddr, "relay listener `address`; empty: accept no links")
	fs.StringVar(&o.http, "http", defaultHTTPAddr, "HTTP API `address`; empty disables the API")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "", "serve /metrics on this `address` instead of on the HTTP API's")
	fs.Var((*stringList)(&o.join), "join", "gossip `address` of a seed to join, host or host:port (default port "+defaultGossipPort+"); repeatable; a name resolving to several addresses joins them all")
	fs.Var((*stringList)(&o.connect), "connect", "relay `address` to link to directly (default port "+defaultRelayPort+"); repeatable")
	fs.DurationVar(&o.cfg.Timeout, "timeout", mesh.DefaultTimeout, "drop and redial a link silent for this `duration`")
	fs.DurationVar(&o.cfg.BufferTimeout, "buffer-timeout", mesh.DefaultBufferTimeout, "keep unacknowledged events for a gone peer this `duration`")
	fs.IntVar(&o.cfg.BufferMax, "buffer-max", mesh.DefaultBufferMax, "most unacknowledged events kept per peer")
	fs.DurationVar(&o.cfg.AcknowledgeInterval, "ack-interval", mesh.DefaultAcknowledgeInterval, "how often to acknowledge received events")
	fs.IntVar(&o.cfg.MaxPeers, "max-peers", mesh.DefaultMaxPeers, "most relay links at once")
	fs.IntVar(&o.cfg.ActiveView, "active-view", 0, "keep relay links with about N members (a HyParView partial view, for large clusters; 7 suits tens to thousands of nodes) instead of every member; 0: every member. Every agent of a cluster must agree on keeping a partial view: one that differs is reported and never linked")
	fs.TextVar(&o.cfg.SlowConsumer, "slow-consumer", mesh.Backpressure, "`policy` when handlers or a relayed-to link cannot keep up: backpressure (senders wait, nothing lost) or drop (this node's handlers drop past their queue, reported, and slow nobody)")
	fs.BoolVar(&o.cfg.Flood, "flood", false, "send every event over every link (no broadcast tree); set it alike on every agent")
	fs.DurationVar(&o.topologyInterval, "topology-interval", defaultTopologyInterval, "how often to report this agent's links and counters to the cluster for /v1/topology and /ui (a small $topology event); 0: never")
	fs.StringVar(&v.encrypt, "encrypt", "", "cluster key, base64 of 16, 24 or 32 bytes: encrypts gossip and, without --tls-cert, authenticates and encrypts relay links (visible in ps: prefer --encrypt-file)")
	fs.StringVar(&v.encryptFile, "encrypt-file", "", "`file` holding the cluster key (--encrypt) in base64")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate `file` for mutual TLS on relay links; its CN or a DNS SAN must be the --node-id")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.StringVar(&o.tlsCA, "tls-ca", "", "PEM CA `file` that peers' certificates must chain to")
	fs.StringVar(&o.dataDir, "data-dir", "", "`directory` for the agent's state: a snapshot of the members it knew, joined again at start (a restarted seed finds its cluster without --join)")
	fs.IntVar(&o.maxStreams, "max-streams", defaultMaxStreams, "most concurrent GET /v1/events streams; past it the API answers 503")
	fs.DurationVar(&o.readTimeout, "http-read-timeout", defaultReadTimeout, "most time a client may take to send a whole HTTP request, headers and body (a body trickled slower is cut off with 408)")
	fs.StringVar(&v.level, "log-level", "info", "log `level`: trace, debug, info, warn or error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " [$" + envName(f.Name) + "]" })
	return fs
}

// flagError is a bad setting: it names the flag, and where the value came
// from when not from the command line.
type flagError struct {
	flag string // without dashes
	msg  string
	from string // "" (command line), "MESHNODE_X" or "config file F"
}

func (e *flagError) Error() string {
	s := "--" + e.flag + ": " + e.msg
	if e.from != "" {
		s += " (set by " + e.from + ")"
	}
	return s
}

func bad(flag, format string, args ...any) error {
	return &flagError{flag: flag, msg: fmt.Sprintf(format, args...)}
}

// parseAgentFlags parses and checks the agent's command line alone (no
// environment). Every error names the flag; help is flag.ErrHelp.
func parseAgentFlags(args []string) (*agentOptions, *flag.FlagSet, error) {
	return parseAgentConfig(args, nil)
}

// parseAgentConfig parses the command line, then the MESHNODE_* variables
// of environ (KEY=VALUE, as os.Environ) for the flags the command line did
// not set, then the --config file for the flags neither set; then checks
// the result. Every error names the flag and, when it did not come from
// the command line, its source.
func parseAgentConfig(args, environ []string) (*agentOptions, *flag.FlagSet, error) {
	o := &agentOptions{}
	v := &agentFlagValues{}
	fs := newAgentFlagSet(o, v)
	if err := fs.Parse(args); err != nil {
		return nil, fs, err
	}
	if fs.NArg() > 0 {
		return nil, fs, fmt.Errorf("unexpected argument %q (flags go before any argument; the agent takes none)", fs.Arg(0))
	}
	from := map[string]string{} // flag name -> source, for the flags not set on the command line
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if err := applyEnv(fs, environ, set, from, o); err != nil {
		return nil, fs, err
	}
	if v.config != "" {
		if err := applyConfigFile(fs, v.config, set, from); err != nil {
			return nil, fs, err
		}
	}
	if err := o.check(v); err != nil {
		var fe *flagError
		if errors.As(err, &fe) && fe.from == "" {
			fe.from = from[fe.flag]
		}
		return nil, fs, err
	}
	return o, fs, nil
}

// applyEnv sets each flag not in set from its variable, if present. A
// repeatable flag takes a comma-separated list.
func applyEnv(fs *flag.FlagSet, environ []string, set map[string]bool, from map[string]string, o *agentOptions) error {
	env := map[string]string{}
	for _, kv := range environ {
		k, val, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, envPrefix) {
			env[k] = val
		}
	}
	known := map[string]bool{}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		known[name] = true
		val, ok := env[name]
		if !ok || set[f.Name] || err != nil {
			return
		}
		set[f.Name] = true
		from[f.Name] = name
		if serr := setFlag(f, val); serr != nil {
			err = &flagError{flag: f.Name, msg: fmt.Sprintf("invalid value %q: %v", val, serr), from: name}
		}
	})
	if err != nil {
		return err
	}
	for k := range env {
		if !known[k] {
			o.unknownEnv = append(o.unknownEnv, k)
		}
	}
	sort.Strings(o.unknownEnv)
	return nil
}

// setFlag sets f from one textual value: a repeatable flag from a
// comma-separated list (empty items ignored).
func setFlag(f *flag.Flag, val string) error {
	if _, ok := f.Value.(*stringList); ok {
		for _, item := range strings.Split(val, ",") {
			if item = strings.TrimSpace(item); item != "" {
				if err := f.Value.Set(item); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return f.Value.Set(val)
}

// applyConfigFile sets each flag not in set from the JSON file's key of
// the same name. Values are strings, numbers, booleans, or (for the
// repeatable flags) arrays of strings. An unknown key is an error.
func applyConfigFile(fs *flag.FlagSet, path string, set map[string]bool, from map[string]string) error {
	src := "config file " + path
	data, err := os.ReadFile(path)
	if err != nil {
		return &flagError{flag: "config", msg: err.Error()}
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return &flagError{flag: "config", msg: fmt.Sprintf("%s: not a JSON object: %v", path, err)}
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		f := fs.Lookup(k)
		if f == nil || k == "config" {
			return &flagError{flag: "config", msg: fmt.Sprintf("%s: unknown setting %q (the keys are the agent's flag names)", path, k)}
		}
		if set[k] {
			continue
		}
		set[k] = true
		from[k] = src
		vals, err := configValues(doc[k], f)
		if err != nil {
			return &flagError{flag: k, msg: err.Error(), from: src}
		}
		for _, val := range vals {
			if err := f.Value.Set(val); err != nil {
				return &flagError{flag: k, msg: fmt.Sprintf("invalid value %q: %v", val, err), from: src}
			}
		}
	}
	return nil
}

// configValues turns one JSON value into the flag's textual values.
func configValues(raw json.RawMessage, f *flag.Flag) ([]string, error) {
	_, list := f.Value.(*stringList)
	var x any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	scalar := func(x any) (string, error) {
		switch s := x.(type) {
		case string:
			return s, nil
		case json.Number:
			return s.String(), nil
		case bool:
			return strconv.FormatBool(s), nil
		}
		return "", fmt.Errorf("want a string, number or boolean, got %s", raw)
	}
	if arr, ok := x.([]any); ok {
		if !list {
			return nil, fmt.Errorf("takes one value, got a list %s", raw)
		}
		out := make([]string, 0, len(arr))
		for _, e := range arr {
			s, err := scalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	s, err := scalar(x)
	if err != nil {
		return nil, err
	}
	return []string{s}, nil
}

func (o *agentOptions) check(v *agentFlagValues) error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"timeout", o.cfg.Timeout},
		{"buffer-timeout", o.cfg.BufferTimeout},
		{"ack-interval", o.cfg.AcknowledgeInterval},
		{"http-read-timeout", o.readTimeout},
	} {
		if d.v <= 0 {
			return bad(d.flag, "must be positive, got %v", d.v)
		}
	}
	if o.topologyInterval != 0 && o.topologyInterval < minTopologyInterval {
		return bad("topology-interval", "must be 0 (off) or at least %v, got %v", minTopologyInterval, o.topologyInterval)
	}
	if o.cfg.BufferMax < 1 {
		return bad("buffer-max", "must be at least 1, got %d", o.cfg.BufferMax)
	}
	if o.cfg.MaxPeers < 1 {
		return bad("max-peers", "must be at least 1, got %d", o.cfg.MaxPeers)
	}
	if o.cfg.ActiveView < 0 || o.cfg.ActiveView > 64 {
		return bad("active-view", "must be 0 (every member) to 64, got %d", o.cfg.ActiveView)
	}
	if o.cfg.Channel == "" {
		return bad("channel", "must not be empty")
	}
	if o.maxStreams < 1 {
		return bad("max-streams", "must be at least 1, got %d", o.maxStreams)
	}
	if o.dataDir != "" && o.cfg.GossipAddr == "" {
		return bad("data-dir", "needs --gossip (it keeps the members gossip found)")
	}
	if err := o.checkKey(v); err != nil {
		return err
	}
	if len(o.join) > 0 && o.cfg.GossipAddr == "" {
		return bad("join", "needs --gossip (membership is disabled)")
	}
	for i, s := range o.join {
		addr, err := withDefaultPort(s, defaultGossipPort)
		if err != nil {
			return bad("join", "%v", err)
		}
		o.join[i] = addr
	}
	for i, s := range o.connect {
		addr, err := withDefaultPort(s, defaultRelayPort)
		if err != nil {
			return bad("connect", "%v", err)
		}
		o.connect[i] = addr
	}
	if v.advertise != "" {
		if o.cfg.GossipAddr == "" {
			return bad("advertise", "needs --gossip (it advertises the gossip address)")
		}
		_, port, err := net.SplitHostPort(o.cfg.GossipAddr)
		if err != nil || port == "0" {
			port = "" // no port to borrow: the address must carry its own
		}
		addr, err := withDefaultPort(v.advertise, port)
		if err != nil {
			return bad("advertise", "%v", err)
		}
		o.cfg.AdvertiseAddr = addr
	}
	if o.metricsAddr != "" && o.metricsAddr == o.http && !strings.HasSuffix(o.http, ":0") {
		return bad("metrics-addr", "must differ from --http (leave it empty to serve /metrics on the API's listener)")
	}
	if err := o.checkTLS(); err != nil {
		return err
	}
	o.logLevel = hclog.LevelFromString(v.level)
	if o.logLevel == hclog.NoLevel {
		return bad("log-level", "unknown level %q (trace, debug, info, warn, error)", v.level)
	}
	return nil
}

// checkKey takes the cluster key from --encrypt or --encrypt-file (one of
// them: the file keeps the key out of ps and /proc/PID/cmdline). It
// encrypts gossip and keys relay links.
func (o *agentOptions) checkKey(v *agentFlagValues) error {
	flagName, text := "encrypt", v.encrypt
	if v.encryptFile != "" {
		if v.encrypt != "" {
			return bad("encrypt-file", "give --encrypt or --encrypt-file, not both")
		}
		data, err := os.ReadFile(v.encryptFile)
		if err != nil {
			return bad("encrypt-file", "%v", err)
		}
		flagName, text = "encrypt-file", strings.TrimSpace(string(data))
		if text == "" {
			return bad("encrypt-file", "%s is empty", v.encryptFile)
		}
	}
	if text == "" {
		return nil
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return bad(flagName, "not valid base64: %v", err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return bad(flagName, "the key must be 16, 24 or 32 bytes, got %d", n)
	}
	// Without --gossip the key still keys relay links (--connect only).
	o.cfg.GossipKey = key
	return nil
}

// withDefaultPort checks a host[:port] address and gives it defPort when
// it has none ("" = a port is required). A bare IPv6 address is accepted.
func withDefaultPort(addr, defPort string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: a name, an IPv4 address, a bare or bracketed IPv6 address.
		h := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if strings.Contains(h, ":") && net.ParseIP(h) == nil || strings.ContainsAny(h, "[] /") {
			return "", fmt.Errorf("%q is not a host or host:port", addr)
		}
		if defPort == "" {
			return "", fmt.Errorf("%q has no port", addr)
		}
		host, port = h, defPort
	}
	if host == "" {
		return "", fmt.Errorf("%q has no host", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%q: port must be 1 to 65535", addr)
	}
	return net.JoinHostPort(host, port), nil
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
		return bad(strings.TrimPrefix(given[0], "--"), "needs %s (--tls-cert, --tls-key and --tls-ca go together)", strings.Join(missing, " and "))
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
	// Peers refuse a link whose certificate does not name the NodeID its
	// handshake claims: say so now rather than at every link.
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--tls-cert: %w", err)
	}
	names := append([]string{leaf.Subject.CommonName}, leaf.DNSNames...)
	if o.cfg.NodeID == "" {
		return nil, fmt.Errorf("--tls-cert: needs --node-id, which the certificate must name (its CN or a DNS SAN; it names %q)", names)
	}
	if !slices.Contains(names, o.cfg.NodeID) {
		return nil, fmt.Errorf("--tls-cert: the certificate names %q, not --node-id %q (its CN or a DNS SAN must be the node id)", names, o.cfg.NodeID)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		RootCAs:      pool,
	}, nil
}
