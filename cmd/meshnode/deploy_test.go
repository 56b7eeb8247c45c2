package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/verbosemesh/verbose/mesh"
)

// The deployment kit in deploy/ is checked against the agent itself: no
// Docker or Kubernetes runs here, so a renamed flag, a moved port or a
// misspelt metric must fail this test instead of a rollout.

const deployDir = "../../deploy"

// obj is a parsed YAML or JSON document.
type obj = map[string]any

func loadYAMLDocs(t *testing.T, path string) []obj {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []obj
	for _, part := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		if strings.TrimSpace(stripComments(part)) == "" {
			continue
		}
		var d obj
		if err := yaml.Unmarshal([]byte(part), &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, d)
	}
	return docs
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// at walks a document: keys for maps, ints for lists. It fails the test
// when the path does not exist.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok || m[k] == nil {
				t.Fatalf("no %q in %v (path %v)", k, v, path)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("no item %d in %v (path %v)", k, v, path)
			}
			v = l[k]
		}
	}
	return v
}

func str(t *testing.T, v any, path ...any) string {
	t.Helper()
	s, ok := at(t, v, path...).(string)
	if !ok {
		t.Fatalf("%v: not a string", path)
	}
	return s
}

func num(t *testing.T, v any, path ...any) int {
	t.Helper()
	f, ok := at(t, v, path...).(float64)
	if !ok {
		t.Fatalf("%v: not a number", path)
	}
	return int(f)
}

func list(t *testing.T, v any, path ...any) []any {
	t.Helper()
	l, ok := at(t, v, path...).([]any)
	if !ok {
		t.Fatalf("%v: not a list", path)
	}
	return l
}

func portOf(t *testing.T, flagName, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("--%s %q: %v", flagName, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("--%s %q: %v", flagName, addr, err)
	}
	return n
}

// agentEnvNames is every MESHNODE_* variable the agent reads, from its
// flag set.
func agentEnvNames() map[string]string {
	out := map[string]string{}
	newAgentFlagSet(&agentOptions{}, &agentFlagValues{}).VisitAll(func(f *flag.Flag) { out[envName(f.Name)] = f.Name })
	return out
}

// keyFile writes a valid gossip key and returns its path.
func keyFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "gossip.key")
	writeFile(t, p, base64.StdEncoding.EncodeToString(make([]byte, 32))+"\n")
	return p
}

// agentSettings are the StatefulSet container's parsed settings.
type agentSettings struct {
	opts      *agentOptions
	container obj
	podLabels obj
	ports     map[string]obj // by name
}

func TestKubernetesManifestsMatchTheAgent(t *testing.T) {
	var sts obj
	services := map[string]obj{}
	var policies []obj
	for _, f := range []string{"service.yaml", "statefulset.yaml", "networkpolicy.yaml"} {
		for _, d := range loadYAMLDocs(t, filepath.Join(deployDir, "kubernetes", f)) {
			switch d["kind"] {
			case "StatefulSet":
				sts = d
			case "Service":
				services[str(t, d, "metadata", "name")] = d
			case "NetworkPolicy":
				policies = append(policies, d)
			}
		}
	}
	kust := loadYAMLDocs(t, filepath.Join(deployDir, "kubernetes", "kustomization.yaml"))
	for _, f := range []string{"service.yaml", "statefulset.yaml", "networkpolicy.yaml"} {
		if !slices.Contains(list(t, kust[0], "resources"), any(f)) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}
	if sts == nil {
		t.Fatal("no StatefulSet")
	}
	a := parseContainer(t, sts)
	o := a.opts

	// Node id from the pod name: a restarted pod is the same peer.
	if o.cfg.NodeID != "verbose-0" {
		t.Errorf("node id = %q, want the pod name", o.cfg.NodeID)
	}
	if o.cfg.AdvertiseAddr != "10.1.2.3:"+strconv.Itoa(portOf(t, "gossip", o.cfg.GossipAddr)) {
		t.Errorf("advertise = %q, want the pod IP and the gossip port", o.cfg.AdvertiseAddr)
	}
	if len(o.cfg.GossipKey) != 32 {
		t.Errorf("gossip key not read from the Secret's file")
	}
	if o.metricsAddr == "" || o.logLevel == 0 || !o.logJSON {
		t.Errorf("metrics %q, log json %v", o.metricsAddr, o.logJSON)
	}

	// Container ports are the agent's.
	want := map[string]struct {
		port  int
		proto string
	}{
		"gossip-tcp": {portOf(t, "gossip", o.cfg.GossipAddr), "TCP"},
		"gossip-udp": {portOf(t, "gossip", o.cfg.GossipAddr), "UDP"},
		"relay":      {portOf(t, "relay", o.relay), "TCP"},
		"http":       {portOf(t, "http", o.http), "TCP"},
		"metrics":    {portOf(t, "metrics-addr", o.metricsAddr), "TCP"},
	}
	for name, w := range want {
		p := a.ports[name]
		if p == nil {
			t.Errorf("no container port %q", name)
			continue
		}
		if num(t, p, "containerPort") != w.port || str(t, p, "protocol") != w.proto {
			t.Errorf("container port %s = %v, want %d/%s", name, p, w.port, w.proto)
		}
	}
	if len(a.ports) != len(want) {
		t.Errorf("container ports %v, want exactly %v", a.ports, want)
	}
	ann := at(t, sts, "spec", "template", "metadata", "annotations").(obj)
	if ann["prometheus.io/port"] != strconv.Itoa(want["metrics"].port) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want port %d", ann, want["metrics"].port)
	}

	// The join name is the headless Service's, resolving to every pod,
	// not-ready ones included (readiness needs the join).
	host, _, _ := net.SplitHostPort(o.join[0])
	svcName, _, _ := strings.Cut(host, ".")
	if len(o.join) != 1 || host != svcName+".default.svc.cluster.local" || str(t, sts, "spec", "serviceName") != svcName {
		t.Errorf("join %v, serviceName %q: want the headless Service's DNS name", o.join, str(t, sts, "spec", "serviceName"))
	}
	headless := services[svcName]
	if headless == nil {
		t.Fatalf("no Service %q", svcName)
	}
	if at(t, headless, "spec", "clusterIP") != "None" || at(t, headless, "spec", "publishNotReadyAddresses") != true {
		t.Errorf("Service %s must be headless with publishNotReadyAddresses", svcName)
	}
	for name, svc := range services {
		sel := at(t, svc, "spec", "selector").(obj)
		for k, v := range sel {
			if a.podLabels[k] != v {
				t.Errorf("Service %s selects %s=%v, not a pod label", name, k, v)
			}
		}
		for _, sp := range list(t, svc, "spec", "ports") {
			target := str(t, sp, "targetPort")
			cp := a.ports[target]
			if cp == nil {
				t.Errorf("Service %s targets port %q, not a container port", name, target)
				continue
			}
			if num(t, sp, "port") != num(t, cp, "containerPort") || str(t, sp, "protocol") != str(t, cp, "protocol") {
				t.Errorf("Service %s port %v does not match container port %v", name, sp, cp)
			}
		}
	}
	for _, np := range policies {
		for _, rule := range list(t, np, "spec", "ingress") {
			for _, p := range list(t, rule, "ports") {
				if a.ports[str(t, p, "port")] == nil {
					t.Errorf("NetworkPolicy names port %v, not a container port", p)
				}
			}
		}
	}

	// Probes: readiness on /v1/ready, liveness on /v1/health, both on the
	// API's port, and both served by the agent.
	probes := map[string]string{"readinessProbe": "/v1/ready", "livenessProbe": "/v1/health"}
	for probe, path := range probes {
		if got := str(t, a.container, probe, "httpGet", "path"); got != path {
			t.Errorf("%s path %q, want %q", probe, got, path)
		}
		if got := str(t, a.container, probe, "httpGet", "port"); got != "http" {
			t.Errorf("%s port %q, want the API's (http)", probe, got)
		}
	}
	agent := startTestAgent(t)
	for _, path := range probes {
		if code, body := httpDo(t, http.MethodGet, agent.url(path), "", nil); code != http.StatusOK {
			t.Errorf("agent GET %s: %d %s", path, code, body)
		}
	}

	// Shutdown: SIGTERM leaves (up to 3s) and the HTTP server drains
	// (shutdownTimeout); the grace period must cover both.
	if g := num(t, sts, "spec", "template", "spec", "terminationGracePeriodSeconds"); g < 3+int(shutdownTimeout.Seconds())+2 {
		t.Errorf("terminationGracePeriodSeconds %d is too short for the agent's leave and drain", g)
	}
	sc := at(t, sts, "spec", "template", "spec", "securityContext").(obj)
	if sc["runAsNonRoot"] != true || sc["runAsUser"] == float64(0) {
		t.Errorf("pod securityContext %v: want non-root", sc)
	}
}

// parseContainer runs the StatefulSet's container settings through the
// agent's own parser: its env with the downward API filled in as for pod
// verbose-0 in namespace default, and the Secret file replaced by a key.
func parseContainer(t *testing.T, sts obj) agentSettings {
	t.Helper()
	c := at(t, sts, "spec", "template", "spec", "containers", 0).(obj)
	args := list(t, c, "args")
	if len(args) == 0 || args[0] != "agent" {
		t.Fatalf("container args %v: want agent first", args)
	}
	var argv []string
	for _, x := range args[1:] {
		argv = append(argv, x.(string))
	}
	downward := map[string]string{"metadata.name": "verbose-0", "metadata.namespace": "default", "status.podIP": "10.1.2.3"}
	mounts := map[string]string{} // mountPath -> volume name
	if vm, ok := c["volumeMounts"].([]any); ok {
		for _, m := range vm {
			mounts[str(t, m, "mountPath")] = str(t, m, "name")
		}
	}
	volumes := map[string]obj{}
	if vs, ok := at(t, sts, "spec", "template", "spec").(obj)["volumes"].([]any); ok {
		for _, v := range vs {
			volumes[str(t, v, "name")] = v.(obj)
		}
	}
	known := agentEnvNames()
	vars := map[string]string{}
	var env []string
	for _, e := range list(t, c, "env") {
		name := str(t, e, "name")
		var val string
		if from, ok := e.(obj)["valueFrom"]; ok {
			field := str(t, from, "fieldRef", "fieldPath")
			v, ok := downward[field]
			if !ok {
				t.Fatalf("env %s from %s: not a field this test fills in", name, field)
			}
			val = v
		} else {
			val = regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllStringFunc(str(t, e, "value"), func(ref string) string {
				v, ok := vars[ref[2:len(ref)-1]]
				if !ok {
					t.Errorf("env %s refers to %s, not defined before it", name, ref)
				}
				return v
			})
		}
		vars[name] = val
		if strings.HasPrefix(name, envPrefix) {
			if _, ok := known[name]; !ok {
				t.Errorf("env %s is not a variable the agent reads", name)
			}
			if name == envName("encrypt-file") {
				dir := filepath.Dir(val)
				vol := volumes[mounts[dir]]
				if vol == nil || vol["secret"] == nil {
					t.Errorf("%s=%s is not in a mounted Secret", name, val)
				}
				val = keyFile(t)
			}
		}
		env = append(env, name+"="+val)
	}
	opts, _, err := parseAgentConfig(argv, env)
	if err != nil {
		t.Fatalf("the agent refuses the StatefulSet's settings: %v", err)
	}
	if len(opts.unknownEnv) > 0 {
		t.Errorf("unknown variables %v", opts.unknownEnv)
	}
	ports := map[string]obj{}
	for _, p := range list(t, c, "ports") {
		ports[str(t, p, "name")] = p.(obj)
	}
	return agentSettings{opts: opts, container: c, podLabels: at(t, sts, "spec", "template", "metadata", "labels").(obj), ports: ports}
}

func TestDockerfileMatchesTheAgent(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	var user, entry string
	var expose []string
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "USER":
			user = f[1]
		case "EXPOSE":
			expose = append(expose, f[1:]...)
		case "ENTRYPOINT":
			entry = strings.Join(f[1:], " ")
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("USER %q: want a non-root user", user)
	}
	if !strings.Contains(text, "CGO_ENABLED=0") || !strings.Contains(text, "FROM scratch") {
		t.Error("want a static binary on an empty base")
	}
	if !strings.Contains(entry, "meshnode") {
		t.Errorf("ENTRYPOINT %s", entry)
	}
	fs := newAgentFlagSet(&agentOptions{}, &agentFlagValues{})
	gossip := portOf(t, "gossip", fs.Lookup("gossip").DefValue)
	wantPorts := []string{
		fmt.Sprintf("%d/tcp", gossip), fmt.Sprintf("%d/udp", gossip),
		fmt.Sprintf("%d/tcp", portOf(t, "relay", fs.Lookup("relay").DefValue)),
		fmt.Sprintf("%d/tcp", portOf(t, "http", fs.Lookup("http").DefValue)),
	}
	var sts obj
	for _, d := range loadYAMLDocs(t, filepath.Join(deployDir, "kubernetes", "statefulset.yaml")) {
		if d["kind"] == "StatefulSet" {
			sts = d
		}
	}
	wantPorts = append(wantPorts, fmt.Sprintf("%d/tcp", portOf(t, "metrics-addr", parseContainer(t, sts).opts.metricsAddr)))
	slices.Sort(expose)
	slices.Sort(wantPorts)
	if !slices.Equal(expose, wantPorts) {
		t.Errorf("EXPOSE %v, want the agent's ports %v", expose, wantPorts)
	}
}

func TestSystemdUnitMatchesTheAgent(t *testing.T) {
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "meshnode.service"))
	if err != nil {
		t.Fatal(err)
	}
	envFile, err := os.ReadFile(filepath.Join(deployDir, "systemd", "meshnode.env"))
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(unit)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			keys[k] = append(keys[k], v)
		}
	}
	if len(keys["ExecStart"]) != 1 || keys["DynamicUser"][0] != "yes" || keys["KillSignal"][0] != "SIGTERM" {
		t.Fatalf("unit: ExecStart %v, DynamicUser %v, KillSignal %v", keys["ExecStart"], keys["DynamicUser"], keys["KillSignal"])
	}
	argv := strings.Fields(keys["ExecStart"][0])
	if len(argv) < 2 || !strings.HasSuffix(argv[0], "/meshnode") || argv[1] != "agent" {
		t.Fatalf("ExecStart %v", argv)
	}
	var env []string
	for _, l := range strings.Split(string(envFile), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			env = append(env, l)
		}
	}
	key := keyFile(t)
	for _, e := range keys["Environment"] {
		env = append(env, strings.ReplaceAll(e, "%d/gossip.key", key))
	}
	if !strings.Contains(keys["LoadCredential"][0], "gossip.key") {
		t.Errorf("LoadCredential %v", keys["LoadCredential"])
	}
	o, _, err := parseAgentConfig(argv[2:], env)
	if err != nil {
		t.Fatalf("the agent refuses the unit's settings: %v", err)
	}
	if len(o.unknownEnv) > 0 || len(o.cfg.GossipKey) != 32 || o.cfg.NodeID == "" || len(o.join) != 1 {
		t.Errorf("unit settings: unknown %v, key %d bytes, node %q, join %v", o.unknownEnv, len(o.cfg.GossipKey), o.cfg.NodeID, o.join)
	}
	if stop, err := strconv.Atoi(strings.TrimSuffix(keys["TimeoutStopSec"][0], "s")); err != nil || stop < 3+int(shutdownTimeout.Seconds()) {
		t.Errorf("TimeoutStopSec %v is too short for the agent's leave and drain", keys["TimeoutStopSec"])
	}
}

var metricName = regexp.MustCompile(`\bverbose_[a-z_]+\b`)

func TestAlertsAndDashboardUseExportedMetrics(t *testing.T) {
	// Two linked agents, one event, so that the per-peer series exist.
	a, _ := linkedPair(t)
	emitJSON(t, a, `{"event":"x","args":[]}`)
	families, err := a.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string][]string{} // name -> label names
	for _, mf := range families {
		var labels []string
		if len(mf.GetMetric()) > 0 {
			for _, lp := range mf.GetMetric()[0].GetLabel() {
				labels = append(labels, lp.GetName())
			}
		}
		exported[mf.GetName()] = labels
	}
	check := func(where, expr string) {
		t.Helper()
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			return
		}
		for _, n := range names {
			labels, ok := exported[n]
			if !ok {
				t.Errorf("%s: %s is not exported by the agent (in %q)", where, n, expr)
				continue
			}
			if strings.Contains(expr, "(instance, peer)") && strings.HasPrefix(n, "verbose_peer_") && n != "verbose_peer_events_total" &&
				!slices.Contains(labels, "peer") {
				t.Errorf("%s: %s has no peer label (labels %v)", where, n, labels)
			}
		}
		for _, kinds := range regexp.MustCompile(`kind=~"([a-z|]+)"`).FindAllStringSubmatch(expr, -1) {
			for _, k := range strings.Split(kinds[1], "|") {
				if !slices.ContainsFunc(trackedPeerEvents, func(pk mesh.PeerEventKind) bool { return pk.String() == k }) {
					t.Errorf("%s: peer event kind %q is not counted", where, k)
				}
			}
		}
	}

	rules := loadYAMLDocs(t, filepath.Join(deployDir, "prometheus", "verbose-alerts.yaml"))
	nrules := 0
	for _, g := range list(t, rules[0], "groups") {
		for _, r := range list(t, g, "rules") {
			nrules++
			check("alert "+str(t, r, "alert"), str(t, r, "expr"))
		}
	}
	used := map[string]bool{}
	data, err := os.ReadFile(filepath.Join(deployDir, "grafana", "verbose-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash obj
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, p := range list(t, dash, "panels") {
		for _, tg := range list(t, p, "targets") {
			expr := str(t, tg, "expr")
			check("panel "+str(t, p, "title"), expr)
			for _, n := range metricName.FindAllString(expr, -1) {
				used[n] = true
			}
		}
	}
	// The metrics that matter are on the dashboard.
	for _, n := range []string{"verbose_peer_ack_lag_seconds", "verbose_peer_buffered_events", "verbose_events_overflow_dropped_total",
		"verbose_events_expired_dropped_total", "verbose_events_skipped_total", "verbose_events_handler_dropped_total",
		"verbose_stream_dropped_events_total"} {
		if !used[n] {
			t.Errorf("dashboard does not show %s", n)
		}
	}
	if nrules < 5 {
		t.Errorf("%d alert rules", nrules)
	}
}
