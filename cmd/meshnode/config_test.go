package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMisplacedClientFlagsRefused(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{
		{"emit", "order.created", "A-1", "--http", "127.0.0.1:9999"},
		{"emit", "order.created", "--http=127.0.0.1:9999"},
		{"tail", "order.created", "--count", "1"},
		{"tail", "order.created", "-http", "127.0.0.1:9999"},
	} {
		code, stdout, stderr := runCmd(ctx, args...)
		if code != exitUsage || !strings.Contains(stderr, "flags go first") || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 naming the misplaced flag", args, code, stdout, stderr)
		}
	}
	// After "--", dashes are arguments; a dash that names no flag is one too.
	for _, tc := range []struct {
		args, want []string
	}{
		{[]string{"e", "--", "--http", "x"}, []string{"e", "--http", "x"}},
		{[]string{"--", "e", "--http"}, []string{"e", "--http"}},
		{[]string{"e", "-1", "--not-a-flag"}, []string{"e", "-1", "--not-a-flag"}},
	} {
		fs, _ := clientFlags("emit")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		got, err := positional(fs, tc.args)
		if err != nil || strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("positional(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}

}

func TestSeedsTakeTheDefaultPort(t *testing.T) {
	o, _, err := parseAgentFlags([]string{"--join", "127.0.0.1", "--join", "seeds.example:8000", "--join", "::1",
		"--join", "[fe80::1]", "--connect", "10.0.0.9", "--gossip", "0.0.0.0:7000", "--advertise", "10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.join, " "); got != "127.0.0.1:7946 seeds.example:8000 [::1]:7946 [fe80::1]:7946" {
		t.Errorf("join = %s", got)
	}
	if got := strings.Join(o.connect, " "); got != "10.0.0.9:7947" {
		t.Errorf("connect = %s", got)
	}
	if o.cfg.AdvertiseAddr != "10.0.0.5:7000" {
		t.Errorf("advertise = %q, want --gossip's port", o.cfg.AdvertiseAddr)
	}
	for _, bad := range [][]string{
		{"--join", "host:port"}, {"--join", "host:0"}, {"--join", ":7946"}, {"--join", "a b"}, {"--join", "1:2:3:x"},
		{"--connect", "h:99999"}, {"--gossip", "127.0.0.1:0", "--advertise", "10.0.0.5"}, {"--gossip", "", "--advertise", "h:1"},
	} {
		code, _, stderr := runCmd(context.Background(), append([]string{"agent"}, bad...)...)
		flagName := bad[len(bad)-2]
		if code != exitUsage || !strings.Contains(stderr, flagName) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s", bad, code, stderr, flagName)
		}
	}
}

func TestEnvironmentAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "meshnode.json")
	writeFile(t, cfg, `{"node-id": "from-file", "timeout": "3s", "join": ["a", "b:1"], "buffer-max": 7, "flood": true, "channel": "file"}`)
	env := []string{"MESHNODE_CONFIG=" + cfg, "MESHNODE_NODE_ID=from-env", "MESHNODE_BUFFER_MAX=9",
		"MESHNODE_CONNECT=x:1, y", "MESHNODE_HTTP_ADDR=127.0.0.1:1234", "MESHNODE_NODEID=typo", "OTHER=1"}
	o, _, err := parseAgentConfig([]string{"--node-id", "from-flag", "--channel", "flag"}, env)
	if err != nil {
		t.Fatal(err)
	}
	// flag > environment > file > default
	if o.cfg.NodeID != "from-flag" || o.cfg.Channel != "flag" || o.cfg.BufferMax != 9 || o.cfg.Timeout != 3*time.Second ||
		!o.cfg.Flood || o.http != "127.0.0.1:1234" || strings.Join(o.join, ",") != "a:7946,b:1" ||
		strings.Join(o.connect, ",") != "x:1,y:7947" || o.cfg.BufferTimeout != 15*time.Minute {
		t.Errorf("merged settings = %+v", o)
	}
	if strings.Join(o.unknownEnv, ",") != "MESHNODE_NODEID" {
		t.Errorf("unknown variables = %v, want MESHNODE_NODEID", o.unknownEnv)
	}
	// A list from the environment replaces the file's, it does not add to it.
	o, _, err = parseAgentConfig(nil, []string{"MESHNODE_CONFIG=" + cfg, "MESHNODE_JOIN=c"})
	if err != nil || strings.Join(o.join, ",") != "c:7946" || o.cfg.NodeID != "from-file" {
		t.Errorf("join = %v, node %q, err %v", o.join, o.cfg.NodeID, err)
	}

	for _, tc := range []struct {
		file string
		env  []string
		want []string // all in the error
	}{
		{"", []string{"MESHNODE_TIMEOUT=soon"}, []string{"--timeout", "MESHNODE_TIMEOUT"}},
		{"", []string{"MESHNODE_BUFFER_MAX=0"}, []string{"--buffer-max", "MESHNODE_BUFFER_MAX"}},
		{`{"timeout": "0s"}`, nil, []string{"--timeout", "config file"}},
		{`{"nodeid": "x"}`, nil, []string{"--config", `"nodeid"`}},
		{`{"node-id": ["a", "b"]}`, nil, []string{"--node-id", "list"}},
		{`{"join": [{"x": 1}]}`, nil, []string{"--join"}},
		{`not json`, nil, []string{"--config", "JSON"}},
		{`{"join": "noport:x"}`, nil, []string{"--join", "config file"}},
	} {
		env := tc.env
		if tc.file != "" {
			p := filepath.Join(dir, "bad.json")
			writeFile(t, p, tc.file)
			env = append(env, "MESHNODE_CONFIG="+p)
		}
		_, _, err := parseAgentConfig(nil, env)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("file %q env %v: error %v, want it to mention %q", tc.file, tc.env, err, w)
			}
		}
	}
	if _, _, err := parseAgentConfig([]string{"--config", filepath.Join(dir, "missing.json")}, nil); err == nil || !strings.Contains(err.Error(), "--config") {
		t.Errorf("missing config file: %v", err)
	}
}

func TestEncryptFile(t *testing.T) {
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	good := filepath.Join(dir, "key")
	writeFile(t, good, key+"\n")
	o, _, err := parseAgentConfig(nil, []string{"MESHNODE_ENCRYPT_FILE=" + good})
	if err != nil || len(o.cfg.GossipKey) != 32 {
		t.Fatalf("key from file: %v, %d bytes", err, len(o.cfg.GossipKey))
	}
	short := filepath.Join(dir, "short")
	writeFile(t, short, base64.StdEncoding.EncodeToString(make([]byte, 15)))
	for _, args := range [][]string{
		{"--encrypt-file", filepath.Join(dir, "none")},
		{"--encrypt-file", short},
		{"--encrypt-file", good, "--encrypt", key},
	} {
		if _, _, err := parseAgentFlags(args); err == nil || !strings.Contains(err.Error(), "--encrypt-file") {
			t.Errorf("%v: error %v, want one naming --encrypt-file", args, err)
		}
	}
	// Without gossip, the key keys the relay links.
	if o, _, err := parseAgentFlags([]string{"--encrypt-file", good, "--gossip", ""}); err != nil || len(o.cfg.GossipKey) != 32 {
		t.Errorf("--encrypt-file without --gossip: %v", err)
	}
}

func TestLogJSON(t *testing.T) {
	code, _, stderr := runCmd(context.Background(), "agent", "--log-json", "--gossip", "", "--relay", "nonsense", "--http", "")
	if code != exitError {
		t.Fatalf("exit %d", code)
	}
	// The log lines are JSON records (the node's start-up warning that it
	// is open comes first), and the failure is one at error level; the
	// command's own last word is plain text.
	errors := 0
	for line := range strings.Lines(strings.TrimSpace(stderr)) {
		if strings.HasPrefix(line, "meshnode ") {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["@level"] == "error" {
			errors++
		}
	}
	if errors != 1 {
		t.Errorf("%d JSON error records in %q, want 1", errors, stderr)
	}
}

func TestMetricsOnTheirOwnListener(t *testing.T) {
	a := startTestAgent(t, "--metrics-addr", "127.0.0.1:0")
	if code, _ := httpDo(t, http.MethodGet, a.url("/metrics"), "", nil); code != http.StatusNotFound {
		t.Errorf("/metrics on the API listener: %d, want 404", code)
	}
	code, body := httpDo(t, http.MethodGet, "http://"+a.metricsAddr()+"/metrics", "", nil)
	if code != http.StatusOK || !strings.Contains(string(body), "verbose_events_emitted_total") ||
		!strings.Contains(string(body), "verbose_stream_dropped_events_total") {
		t.Errorf("/metrics on --metrics-addr: %d %.200s", code, body)
	}
	if code, _ := httpDo(t, http.MethodPost, "http://"+a.metricsAddr()+"/v1/emit", "application/json", strings.NewReader(`{"event":"x"}`)); code != http.StatusNotFound {
		t.Errorf("emit on the metrics listener: %d, want 404", code)
	}
}

func TestLocalEmitReachesOwnStreams(t *testing.T) {
	a, b := linkedPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	own, _ := openStream(t, ctx, a.url("/v1/events?event=greet"), "")
	all, _ := openStream(t, ctx, a.url("/v1/events"), "")
	emitJSON(t, a, `{"event":"other","args":[]}`)
	emitJSON(t, a, `{"event":"greet","args":["hi",1]}`)
	emitJSON(t, b, `{"event":"greet","args":["from b"]}`)

	type line struct {
		Event  string `json:"event"`
		Args   []any  `json:"args"`
		Origin string `json:"origin"`
		Seq    uint64 `json:"seq"`
		Local  bool   `json:"local"`
	}
	read := func(name string, r interface{ ReadBytes(byte) ([]byte, error) }) line {
		t.Helper()
		data, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("%s stream: %v", name, err)
		}
		var l line
		if err := json.Unmarshal(data, &l); err != nil {
			t.Fatalf("%s stream line %q: %v", name, data, err)
		}
		return l
	}
	if l := read("filtered", own); l.Event != "greet" || l.Origin != "node-a" || !l.Local || l.Seq != 0 || len(l.Args) != 2 {
		t.Errorf("own filtered stream: %+v, want node-a's local greet", l)
	}
	if l := read("filtered", own); l.Event != "greet" || l.Origin != "node-b" || l.Local || l.Seq == 0 {
		t.Errorf("own filtered stream: %+v, want node-b's greet", l)
	}
	for _, want := range []string{"other", "greet"} {
		if l := read("unfiltered", all); l.Event != want || l.Origin != "node-a" || !l.Local {
			t.Errorf("unfiltered stream: %+v, want node-a's local %s", l, want)
		}
	}
}

func TestReadyNeedsJoinAndLinks(t *testing.T) {
	// A seed that never answers: alive, not ready.
	lone := startTestAgent(t, "--node-id", "lone", "--join", "127.0.0.1:1")
	code, body := httpDo(t, http.MethodGet, lone.url("/v1/ready"), "", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "not joined") {
		t.Errorf("/v1/ready before joining: %d %s", code, body)
	}
	if code, _ := httpDo(t, http.MethodGet, lone.url("/v1/health"), "", nil); code != http.StatusOK {
		t.Errorf("/v1/health: %d", code)
	}
	if code, stdout, stderr := runCmd(context.Background(), "ready", "--http", lone.httpAddr()); code != exitError ||
		!strings.Contains(stdout, `"ready": false`) || !strings.Contains(stderr, "not joined") {
		t.Errorf("meshnode ready (not ready): exit %d, %q %q", code, stdout, stderr)
	}

	// Two agents joined by gossip: ready once linked.
	a := startTestAgent(t, "--node-id", "a")
	b := startTestAgent(t, "--node-id", "b", "--join", a.node.GossipAddr())
	for _, x := range []*agent{a, b} {
		waitFor(t, 15*time.Second, x.node.ID()+" ready", func() bool {
			code, _ := httpDo(t, http.MethodGet, x.url("/v1/ready"), "", nil)
			return code == http.StatusOK
		})
	}
	var r readyJSON
	getJSON(t, b.url("/v1/ready"), &r)
	if !r.Ready || r.Members != 1 || r.Connected != 1 {
		t.Errorf("ready = %+v", r)
	}
	t.Setenv(httpAddrEnv, b.httpAddr()) // the client's address from the environment
	if code, stdout, stderr := runCmd(context.Background(), "ready"); code != exitOK || !strings.Contains(stdout, `"ready": true`) {
		t.Errorf("meshnode ready: exit %d, %q %q", code, stdout, stderr)
	}

	// Without membership, the --connect links count.
	c := startTestAgent(t, "--node-id", "c", "--gossip", "", "--connect", "127.0.0.1:1")
	code, body = httpDo(t, http.MethodGet, c.url("/v1/ready"), "", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "--connect") {
		t.Errorf("/v1/ready with a dead --connect: %d %s", code, body)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
