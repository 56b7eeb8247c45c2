package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/testca"
	"github.com/verbosemesh/verbose/mesh"
)

func TestAgentFlagDefaults(t *testing.T) {
	o, _, err := parseAgentFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.GossipAddr != "0.0.0.0:7946" || o.relay != "0.0.0.0:7947" || o.http != "127.0.0.1:7948" {
		t.Errorf("addresses = %q %q %q", o.cfg.GossipAddr, o.relay, o.http)
	}
	if o.cfg.Timeout != time.Minute || o.cfg.BufferTimeout != 15*time.Minute || o.cfg.BufferMax != 1000 ||
		o.cfg.AcknowledgeInterval != time.Second || o.cfg.MaxPeers != 1000 || o.cfg.Channel != "default" || o.logLevel != hclog.Info {
		t.Errorf("defaults = %+v level %v", o.cfg, o.logLevel)
	}
}

func TestAgentFlagsParsed(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	o, _, err := parseAgentFlags([]string{"--node-id", "n1", "--channel", "c", "--gossip", "", "--relay", "127.0.0.1:1",
		"--http", "", "--connect", "a:1", "--connect", "b:2", "--timeout", "3s", "--buffer-timeout", "1m",
		"--buffer-max", "7", "--ack-interval", "10ms", "--max-peers", "9", "--log-level", "debug", "--slow-consumer", "drop"})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.NodeID != "n1" || o.cfg.Channel != "c" || o.cfg.GossipAddr != "" || o.relay != "127.0.0.1:1" || o.http != "" ||
		strings.Join(o.connect, ",") != "a:1,b:2" || o.cfg.Timeout != 3*time.Second || o.cfg.BufferTimeout != time.Minute ||
		o.cfg.BufferMax != 7 || o.cfg.AcknowledgeInterval != 10*time.Millisecond || o.cfg.MaxPeers != 9 || o.logLevel != hclog.Debug ||
		o.cfg.SlowConsumer != mesh.Drop {
		t.Errorf("parsed = %+v", o)
	}
	o, _, err = parseAgentFlags([]string{"--encrypt", key, "--join", "x:1", "--join", "y:2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.cfg.GossipKey) != 32 || strings.Join(o.join, ",") != "x:1,y:2" {
		t.Errorf("key %d bytes, join %v", len(o.cfg.GossipKey), o.join)
	}
}

func TestAgentFlagErrorsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--timeout", "soon"}, "timeout"},
		{[]string{"--buffer-timeout", "-1s"}, "--buffer-timeout"},
		{[]string{"--ack-interval", "0s"}, "--ack-interval"},
		{[]string{"--buffer-max", "0"}, "--buffer-max"},
		{[]string{"--buffer-max", "lots"}, "buffer-max"},
		{[]string{"--max-peers", "-2"}, "--max-peers"},
		{[]string{"--slow-consumer", "sometimes"}, "slow-consumer"},
		{[]string{"--encrypt", "not base64!"}, "--encrypt"},
		{[]string{"--encrypt", base64.StdEncoding.EncodeToString(make([]byte, 15))}, "--encrypt"},
		{[]string{"--gossip", "", "--join", "a:1"}, "--join"},
		{[]string{"--join", ""}, "join"},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert"},
		{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, "--tls-ca"},
		{[]string{"--tls-ca", "ca.pem"}, "--tls-cert"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--channel", ""}, "--channel"},
		{[]string{"--max-streams", "0"}, "--max-streams"},
		{[]string{"--http-read-timeout", "0s"}, "--http-read-timeout"},
		{[]string{"--gossip", "", "--data-dir", "d"}, "--data-dir"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"stray"}, "stray"},
	} {
		_, _, err := parseAgentFlags(tc.args)
		if err == nil {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		if !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("%v: error %q does not name %s", tc.args, err, tc.flag)
		}
	}
}

// runCmd runs a meshnode command line in-process.
func runCmd(ctx context.Context, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(ctx, func() {}, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	ctx := context.Background()
	if code, _, stderr := runCmd(ctx, "agent", "--timeout", "x"); code != exitUsage || !strings.Contains(stderr, "timeout") {
		t.Errorf("bad flag: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCmd(ctx, "agent", "--help"); code != exitOK || !strings.Contains(stdout, "--buffer-timeout") {
		t.Errorf("agent --help: exit %d, stdout %q", code, stdout)
	}
	for _, cmd := range []string{"emit", "tail", "members", "peers", "health"} {
		if code, stdout, _ := runCmd(ctx, cmd, "--help"); code != exitOK || !strings.Contains(stdout, "--http") {
			t.Errorf("%s --help: exit %d, stdout %q", cmd, code, stdout)
		}
	}
	if code, _, _ := runCmd(ctx); code != exitUsage {
		t.Errorf("no command: exit %d", code)
	}
	if code, _, stderr := runCmd(ctx, "frobnicate"); code != exitUsage || !strings.Contains(stderr, "frobnicate") {
		t.Errorf("unknown command: exit %d %q", code, stderr)
	}
	if code, stdout, _ := runCmd(ctx, "version"); code != exitOK || !strings.HasPrefix(stdout, "meshnode ") {
		t.Errorf("version: exit %d %q", code, stdout)
	}
	if code, _, stderr := runCmd(ctx, "emit"); code != exitUsage || !strings.Contains(stderr, "EVENT") {
		t.Errorf("emit without EVENT: exit %d %q", code, stderr)
	}
	// A config error mesh.New or the listeners find is exit 1 with the message.
	if code, _, stderr := runCmd(ctx, "agent", "--gossip", "", "--relay", "nonsense", "--http", ""); code != exitError || !strings.Contains(stderr, "nonsense") {
		t.Errorf("bad relay address: exit %d, stderr %q", code, stderr)
	}
	if code, _, stderr := runCmd(ctx, "agent", "--gossip", "no-port", "--relay", "", "--http", ""); code != exitError || !strings.Contains(stderr, "GossipAddr") {
		t.Errorf("bad gossip address: exit %d, stderr %q", code, stderr)
	}
}

func TestClientUnreachableAgent(t *testing.T) {
	// A port that was just free: nothing listens there.
	a := startTestAgent(t, "--gossip", "", "--relay", "")
	addr := a.httpAddr()
	a.close()
	for _, args := range [][]string{{"emit", "--http", addr, "x"}, {"tail", "--http", addr}, {"members", "--http", addr},
		{"peers", "--http", addr}, {"health", "--http", addr}} {
		start := time.Now()
		code, _, stderr := runCmd(context.Background(), args...)
		if code == exitOK || !strings.Contains(stderr, "cannot reach the agent") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%v took %v", args, d)
		}
	}
}

func TestClientCommandsAgainstAgent(t *testing.T) {
	a, b := linkedPair(t)
	ctx := context.Background()
	code, stdout, stderr := runCmd(ctx, "peers", "--http", a.httpAddr())
	if code != exitOK || !strings.Contains(stdout, "node-b") || !strings.Contains(stdout, "connected") || !strings.Contains(stdout, "BUFFERED") {
		t.Errorf("peers: exit %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(ctx, "members", "--http", "http://"+a.httpAddr(), "--json")
	if code != exitOK || !strings.Contains(stdout, `"name": "node-a"`) {
		t.Errorf("members --json: exit %d %q", code, stdout)
	}
	code, _, stderr = runCmd(ctx, "emit", "--http", a.httpAddr(), strings.Repeat("n", 2000))
	if code != exitError || !strings.Contains(stderr, "too long") {
		t.Errorf("emit with a long name: exit %d %q", code, stderr)
	}

	// tail on b sees what emit on a sends; each ARG is JSON if it parses.
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var tailOut syncBuffer
	tailDone := make(chan int, 1)
	go func() {
		tailDone <- run(tctx, func() {}, []string{"tail", "--http", b.httpAddr(), "cli"}, &tailOut, &tailOut)
	}()
	want := `{"event":"cli","args":[1,"two",{"x":true},"not json"],"origin":"node-a"`
	waitFor(t, 10*time.Second, "the emitted event in tail's output", func() bool {
		if code, _, stderr := runCmd(ctx, "emit", "--http", a.httpAddr(), "cli", "1", `"two"`, `{"x":true}`, "not json"); code != exitOK {
			t.Fatalf("emit: exit %d %s", code, stderr)
		}
		return strings.Contains(tailOut.String(), want)
	})
	cancel()
	if code := <-tailDone; code != exitOK {
		t.Errorf("tail interrupted: exit %d, output %q", code, tailOut.String())
	}
}

func TestTLSFlagsBuildMutualTLS(t *testing.T) {
	ca := testca.New(t)
	dir := t.TempDir()
	// Each certificate names its node id (a DNS SAN), as links require.
	certB, keyB, caFile := ca.WriteFiles(dir, "127.0.0.1", "tls-b")
	cert, key, _ := ca.WriteFiles(dir, "127.0.0.1", "tls-a")
	b := startTestAgent(t, "--tls-cert", certB, "--tls-key", keyB, "--tls-ca", caFile, "--gossip", "", "--node-id", "tls-b")
	a := startTestAgent(t, "--tls-cert", cert, "--tls-key", key, "--tls-ca", caFile, "--gossip", "", "--node-id", "tls-a", "--connect", b.node.Addr().String())
	waitFor(t, 10*time.Second, "a TLS link a→b", func() bool {
		var ps []peerJSON
		getJSON(t, a.url("/v1/peers"), &ps)
		return len(ps) == 1 && ps[0].State == "connected" && ps[0].ID == "tls-b"
	})
	// A file that is not there is a config error naming the flag.
	o, _, err := parseAgentFlags([]string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", dir + "/missing.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.tlsConfig(); err == nil || !strings.Contains(err.Error(), "--tls-ca") {
		t.Errorf("missing CA file: %v", err)
	}
	// A certificate that does not name --node-id (or no --node-id at all).
	for _, id := range []string{"tls-b", ""} {
		o, _, err := parseAgentFlags([]string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", caFile, "--node-id", id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.tlsConfig(); err == nil || !strings.Contains(err.Error(), "--tls-cert") || !strings.Contains(err.Error(), "node-id") {
			t.Errorf("certificate for tls-a with --node-id %q: %v", id, err)
		}
	}
	if _, _, err := parseAgentFlags([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}
