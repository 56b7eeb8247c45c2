package memnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// network is the name memnet addresses report from Network().
const network = "memnet"

// Errors of the in-memory network. Connection and dial errors are
// *net.OpError values wrapping these; match them with errors.Is.
var (
	ErrRefused     = errors.New("memnet: connection refused")
	ErrUnreachable = errors.New("memnet: host unreachable")
	ErrCut         = errors.New("memnet: connection cut")
	ErrBrokenPipe  = errors.New("memnet: broken pipe")
	ErrAddrInUse   = errors.New("memnet: address already in use")

	// errTimeout is what an expired deadline returns: it satisfies
	// errors.Is(err, os.ErrDeadlineExceeded) and net.Error's Timeout.
	errTimeout = os.ErrDeadlineExceeded
)

// backlog bounds the connections dialled to a listener and not yet accepted.
const backlog = 1024

// Addr is a memnet address, "host:port".
type Addr struct {
	Host string
	Port int
}

func (Addr) Network() string  { return network }
func (a Addr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// pair names two hosts regardless of order.
type pair struct{ a, b string }

func pairOf(a, b string) pair {
	if b < a {
		a, b = b, a
	}
	return pair{a, b}
}

// Network is a set of hosts and the connections between them, with faults.
type Network struct {
	mu             sync.Mutex
	rng            *rand.Rand
	hosts          map[string]*Host
	listeners      map[Addr]*listener
	wires          map[*wire]struct{}
	groups         map[string]int // host → partition group; nil: no partition
	refused        map[pair]bool
	isolated       map[string]bool
	latency        map[pair]time.Duration
	defaultLatency time.Duration
	nextEphemeral  int
}

// New returns an empty network whose port choices derive from seed.
func New(seed int64) *Network {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d656d6e6574))
	return &Network{
		rng:           rng,
		hosts:         make(map[string]*Host),
		listeners:     make(map[Addr]*listener),
		wires:         make(map[*wire]struct{}),
		refused:       make(map[pair]bool),
		isolated:      make(map[string]bool),
		latency:       make(map[pair]time.Duration),
		nextEphemeral: 32768 + rng.IntN(16384),
	}
}

// Host returns the transport of the host named name. It satisfies
// relay.Transport; connections it dials come from name.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.hosts[name]
	if h == nil {
		h = &Host{net: n, name: name}
		n.hosts[name] = h
	}
	return h
}

// Host is one machine of a Network: its Listen and Dial make it a
// relay.Transport.
type Host struct {
	net  *Network
	name string
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Listen listens on addr, "host:port"; an empty or unspecified host
// ("0.0.0.0", "::") means this host's name, and port 0 picks a free port.
func (h *Host) Listen(addr string) (net.Listener, error) {
	a, err := h.parse(addr)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	if a.Port == 0 {
		for {
			a.Port = 1024 + n.rng.IntN(64511)
			if n.listeners[a] == nil {
				break
			}
		}
	} else if n.listeners[a] != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: a, Err: ErrAddrInUse}
	}
	l := &listener{net: n, host: h.name, addr: a, changed: make(chan struct{})}
	n.listeners[a] = l
	return l, nil
}

// Dial connects to addr. It fails at once when no listener is there, when
// the hosts are partitioned or isolated, or when their dials are refused.
// The connection exists as soon as Dial returns, before it is accepted.
func (h *Host) Dial(ctx context.Context, addr string) (net.Conn, error) {
	a, err := h.parse(addr)
	if err == nil && a.Port == 0 {
		err = fmt.Errorf("memnet: dial %s: port 0", addr)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	n := h.net
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.listeners[a]
	switch {
	case l == nil:
		err = ErrRefused
	case !n.reachable(h.name, l.host):
		err = ErrUnreachable
	case n.refused[pairOf(h.name, l.host)]:
		err = ErrRefused
	case len(l.queue) >= backlog:
		err = ErrRefused
	}
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: a, Err: err}
	}
	local := Addr{Host: h.name, Port: n.nextEphemeral}
	n.nextEphemeral++
	if n.nextEphemeral > 60999 {
		n.nextEphemeral = 32768
	}
	w := newWire(n, [2]string{h.name, l.host}, [2]Addr{local, a}, n.latencyFor(h.name, l.host))
	n.wires[w] = struct{}{}
	l.queue = append(l.queue, newConn(w, 1))
	l.signal()
	return newConn(w, 0), nil
}

func (h *Host) parse(addr string) (Addr, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Addr{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return Addr{}, fmt.Errorf("memnet: bad port in %q", addr)
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = h.name
	}
	return Addr{Host: host, Port: int(p)}, nil
}

// reachable reports whether partitions and isolation let from reach to; the
// caller holds n.mu. A host always reaches itself.
func (n *Network) reachable(from, to string) bool {
	if from == to {
		return true
	}
	if n.isolated[from] || n.isolated[to] {
		return false
	}
	return n.group(from) == n.group(to)
}

// group returns the partition group of host; hosts named in no group share
// group -1.
func (n *Network) group(host string) int {
	if g, ok := n.groups[host]; ok {
		return g
	}
	return -1
}

func (n *Network) latencyFor(a, b string) time.Duration {
	if d, ok := n.latency[pairOf(a, b)]; ok {
		return d
	}
	return n.defaultLatency
}

// forget drops a wire that both ends closed.
func (n *Network) forget(w *wire) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.wires, w)
}

// listener is a Host's net.Listener. Its state is guarded by net.mu.
type listener struct {
	net     *Network
	host    string
	addr    Addr
	queue   []*conn
	closed  bool
	changed chan struct{}
}

func (l *listener) signal() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// Accept returns the next dialled connection; after Close it returns an
// error wrapping net.ErrClosed.
func (l *listener) Accept() (net.Conn, error) {
	n := l.net
	n.mu.Lock()
	for {
		if l.closed {
			n.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: network, Addr: l.addr, Err: net.ErrClosed}
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			n.mu.Unlock()
			return c, nil
		}
		changed := l.changed
		n.mu.Unlock()
		<-changed
		n.mu.Lock()
	}
}

// Close stops the listener, frees its address and closes the connections
// not yet accepted (their dialers read io.EOF).
func (l *listener) Close() error {
	n := l.net
	n.mu.Lock()
	if l.closed {
		n.mu.Unlock()
		return &net.OpError{Op: "close", Net: network, Addr: l.addr, Err: net.ErrClosed}
	}
	l.closed = true
	delete(n.listeners, l.addr)
	pending := l.queue
	l.queue = nil
	l.signal()
	n.mu.Unlock()
	for _, c := range pending {
		_ = c.Close()
	}
	return nil
}

func (l *listener) Addr() net.Addr { return l.addr }
