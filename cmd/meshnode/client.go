package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Client timeouts: an unreachable agent is an error within a few seconds.
const (
	clientDialTimeout    = 3 * time.Second
	clientRequestTimeout = 15 * time.Second
)

// newClient returns an HTTP client for the agent API. timeout 0 means no
// overall deadline (tail's stream); the dial and the response headers
// are bounded either way.
func newClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: clientDialTimeout}).DialContext,
		ResponseHeaderTimeout: clientRequestTimeout,
		DisableKeepAlives:     true, // one request per process
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// baseURL turns --http (host:port, or a URL) into the API's base URL.
func baseURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("--http: must not be empty")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("--http: not an address: %q", addr)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// clientFlags is the flag set every client subcommand shares. --http
// defaults to $MESHNODE_HTTP_ADDR, else the agent's default address.
func clientFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	def := defaultHTTPAddr
	if v := os.Getenv(httpAddrEnv); v != "" {
		def = v
	}
	addr := fs.String("http", def, "the agent's HTTP API `address` (or $"+httpAddrEnv+")")
	return fs, addr
}

// positional returns the positional arguments left after fs parsed args,
// refusing a flag of fs among them: the flag package stops at the first
// positional argument, so `emit EVENT --http ADDR` would otherwise send
// "--http" and ADDR as event arguments to the default agent. Arguments
// after a "--" are taken as they are (the "--" itself dropped).
func positional(fs *flag.FlagSet, args []string) ([]string, error) {
	rest := fs.Args()
	if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
		return rest, nil
	}
	for i, arg := range rest {
		if arg == "--" {
			return append(rest[:i:i], rest[i+1:]...), nil
		}
		if !strings.HasPrefix(arg, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if fs.Lookup(name) != nil {
			return nil, fmt.Errorf("flag %s after the positional arguments: flags go first (meshnode %s [flags] ...); put -- before arguments that start with a dash", arg, fs.Name())
		}
	}
	return rest, nil
}

// do sends one request and decodes a JSON answer into out (when non-nil).
// Errors say whether the agent was unreachable or refused the request.
func do(ctx context.Context, c *http.Client, method, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the agent: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading the agent's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return apiError(resp.Status, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("unexpected answer from the agent: %w", err)
		}
	}
	return nil
}

func apiError(status string, body []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return fmt.Errorf("agent answered %s: %s", status, e.Error)
	}
	return fmt.Errorf("agent answered %s", status)
}

func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "meshnode %s: %v\n", cmd, err)
	return exitError
}

// emitArg is an ARG of `meshnode emit`: a JSON value if it parses, else
// the string itself.
func emitArg(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

func runEmit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, addr := clientFlags("emit")
	if code, done := parseFlags(fs, "meshnode emit [--http ADDR] EVENT [ARG...]", args, stdout, stderr); done {
		return code
	}
	pos, err := positional(fs, args)
	if err != nil {
		return usageErr(stderr, "emit", err)
	}
	if len(pos) < 1 {
		return usageErr(stderr, "emit", errors.New("missing EVENT"))
	}
	base, err := baseURL(*addr)
	if err != nil {
		return usageErr(stderr, "emit", err)
	}
	eargs := make([]json.RawMessage, 0, len(pos)-1)
	for _, a := range pos[1:] {
		eargs = append(eargs, emitArg(a))
	}
	body, err := json.Marshal(struct {
		Event string            `json:"event"`
		Args  []json.RawMessage `json:"args"`
	}{pos[0], eargs})
	if err != nil {
		return fail(stderr, "emit", err)
	}
	var res emitResultJSON
	if err := do(ctx, newClient(clientRequestTimeout), http.MethodPost, base+"/v1/emit", body, &res); err != nil {
		return fail(stderr, "emit", err)
	}
	if res.Warning != "" {
		fmt.Fprintf(stderr, "meshnode emit: warning: %s\n", res.Warning)
	}
	return exitOK
}

func runTail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, addr := clientFlags("tail")
	count := fs.Int("count", 0, "exit after this many events (0: until interrupted)")
	if code, done := parseFlags(fs, "meshnode tail [--http ADDR] [--count N] [EVENT...]", args, stdout, stderr); done {
		return code
	}
	pos, err := positional(fs, args)
	if err != nil {
		return usageErr(stderr, "tail", err)
	}
	if *count < 0 {
		return usageErr(stderr, "tail", fmt.Errorf("--count must not be negative, got %d", *count))
	}
	base, err := baseURL(*addr)
	if err != nil {
		return usageErr(stderr, "tail", err)
	}
	q := url.Values{}
	for _, e := range pos {
		q.Add("event", e)
	}
	u := base + "/v1/events"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(stderr, "tail", err)
	}
	resp, err := newClient(0).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK // interrupted before the stream began
		}
		return fail(stderr, "tail", fmt.Errorf("cannot reach the agent: %w", err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return fail(stderr, "tail", apiError(resp.Status, data))
	}
	// Line by line, so that each event is visible as soon as it arrives.
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	seen := 0
	for sc.Scan() {
		if _, err := fmt.Fprintf(stdout, "%s\n", sc.Bytes()); err != nil {
			return fail(stderr, "tail", err)
		}
		if bytes.HasPrefix(sc.Bytes(), []byte(`{"event"`)) {
			seen++
		}
		if *count > 0 && seen >= *count {
			return exitOK
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fail(stderr, "tail", fmt.Errorf("stream broken: %w", err))
	}
	return exitOK
}

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, addr := clientFlags("members")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if code, done := parseFlags(fs, "meshnode members [--http ADDR] [--json]", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "members", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	base, err := baseURL(*addr)
	if err != nil {
		return usageErr(stderr, "members", err)
	}
	var ms []memberJSON
	if err := do(ctx, newClient(clientRequestTimeout), http.MethodGet, base+"/v1/members", nil, &ms); err != nil {
		return fail(stderr, "members", err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, "members", ms)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tADDR\tRELAY\tSTATE")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Addr, dash(m.RelayAddr), m.State)
	}
	tw.Flush()
	return exitOK
}

func runPeers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, addr := clientFlags("peers")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if code, done := parseFlags(fs, "meshnode peers [--http ADDR] [--json]", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "peers", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	base, err := baseURL(*addr)
	if err != nil {
		return usageErr(stderr, "peers", err)
	}
	var ps []peerJSON
	if err := do(ctx, newClient(clientRequestTimeout), http.MethodGet, base+"/v1/peers", nil, &ps); err != nil {
		return fail(stderr, "peers", err)
	}
	if *asJSON {
		return printJSON(stdout, stderr, "peers", ps)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tADDR\tDIRECTION\tSTATE\tBUFFERED")
	for _, p := range ps {
		dir := "in"
		if p.Outbound {
			dir = "out"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", dash(p.ID), p.Addr, dir, p.State, p.Buffered)
	}
	tw.Flush()
	return exitOK
}

func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, addr := clientFlags("health")
	if code, done := parseFlags(fs, "meshnode health [--http ADDR]", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "health", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	base, err := baseURL(*addr)
	if err != nil {
		return usageErr(stderr, "health", err)
	}
	var h healthJSON
	if err := do(ctx, newClient(clientRequestTimeout), http.MethodGet, base+"/v1/health", nil, &h); err != nil {
		return fail(stderr, "health", err)
	}
	return printJSON(stdout, stderr, "health", h)
}

// runReady prints /v1/ready and exits 0 when the agent is ready, 1 when
// not (with the reason), so that it serves as an exec probe.
func runReady(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, addr := clientFlags("ready")
	if code, done := parseFlags(fs, "meshnode ready [--http ADDR]", args, stdout, stderr); done {
		return code
	}
	if fs.NArg() > 0 {
		return usageErr(stderr, "ready", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	base, err := baseURL(*addr)
	if err != nil {
		return usageErr(stderr, "ready", err)
	}
	c := newClient(clientRequestTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/ready", nil)
	if err != nil {
		return fail(stderr, "ready", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fail(stderr, "ready", fmt.Errorf("cannot reach the agent: %w", err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail(stderr, "ready", fmt.Errorf("reading the agent's answer: %w", err))
	}
	var r readyJSON
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(data, &r) != nil {
		return fail(stderr, "ready", apiError(resp.Status, data))
	}
	if code := printJSON(stdout, stderr, "ready", r); code != exitOK {
		return code
	}
	if !r.Ready {
		return fail(stderr, "ready", fmt.Errorf("not ready: %s", r.Reason))
	}
	return exitOK
}

func printJSON(stdout, stderr io.Writer, cmd string, v any) int {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fail(stderr, cmd, err)
	}
	return exitOK
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
