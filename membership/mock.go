package membership

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// MockNetwork is an in-memory network for memberlist: packets go through
// buffered channels, streams through net.Pipe. It lets testcluster run
// membership without sockets, also inside testing/synctest (create the
// network inside the bubble).
//
// memberlist ships a MockNetwork of its own, but it cannot model a node
// going away: it has no locking (adding a node while others run is a data
// race), its Shutdown does nothing, and a packet or dial towards a stopped
// node blocks the sender forever. This one is written for kill and restart:
// a stopped transport drops packets sent to it and refuses dials.
type MockNetwork struct {
	mu     sync.Mutex
	byAddr map[string]*mockTransport // live transports
	addrOf map[string]string         // node name → address, kept across restarts
	port   int
	allow  func(from, to string) bool
}

// mockPacketQueue is how many packets a transport buffers before it drops,
// as a full UDP socket buffer would.
const mockPacketQueue = 1024

// NewMockNetwork returns an empty network.
func NewMockNetwork() *MockNetwork {
	return &MockNetwork{
		byAddr: make(map[string]*mockTransport),
		addrOf: make(map[string]string),
	}
}

// Transport returns a transport for the node called name, for
// Config.Transport. A name keeps its address across calls, so a restarted
// node comes back where it was; a previous transport of that name still
// running is shut down first.
func (n *MockNetwork) Transport(name string) Transport {
	n.mu.Lock()
	addr, ok := n.addrOf[name]
	if !ok {
		n.port++
		addr = "127.0.0.1:" + strconv.Itoa(n.port)
		n.addrOf[name] = addr
	}
	old := n.byAddr[addr]
	t := &mockTransport{
		net:     n,
		name:    name,
		addr:    mockAddr(addr),
		packets: make(chan *memberlist.Packet, mockPacketQueue),
		streams: make(chan net.Conn),
		done:    make(chan struct{}),
	}
	n.byAddr[addr] = t
	n.mu.Unlock()
	if old != nil {
		old.stop()
	}
	return t
}

// SetFilter decides which node may reach which: allow(from, to) false drops
// packets and refuses new streams from node from to node to (by name).
// Streams already open are not cut. nil restores full connectivity.
func (n *MockNetwork) SetFilter(allow func(from, to string) bool) {
	n.mu.Lock()
	n.allow = allow
	n.mu.Unlock()
}

// route returns the live transport at addr if from may reach it.
func (n *MockNetwork) route(from *mockTransport, addr string) *mockTransport {
	n.mu.Lock()
	defer n.mu.Unlock()
	dest := n.byAddr[addr]
	if dest == nil || dest.stopped() {
		return nil
	}
	if n.allow != nil && !n.allow(from.name, dest.name) {
		return nil
	}
	return dest
}

func (n *MockNetwork) remove(t *mockTransport) {
	n.mu.Lock()
	if n.byAddr[string(t.addr)] == t {
		delete(n.byAddr, string(t.addr))
	}
	n.mu.Unlock()
}

type mockAddr string

func (a mockAddr) Network() string { return "mock" }
func (a mockAddr) String() string  { return string(a) }

// errNoRoute is what a dial to a stopped, unknown or filtered node gets.
var errNoRoute = errors.New("membership: mock network: no route")

type mockTransport struct {
	net     *MockNetwork
	name    string
	addr    mockAddr
	packets chan *memberlist.Packet
	streams chan net.Conn
	done    chan struct{}
	once    sync.Once
}

var _ memberlist.NodeAwareTransport = (*mockTransport)(nil)

func (t *mockTransport) stopped() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *mockTransport) stop() { t.once.Do(func() { close(t.done) }) }

// FinalAdvertiseAddr implements memberlist.Transport: a mock node is always
// reachable at its own address, whatever was asked.
func (t *mockTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	host, port, err := net.SplitHostPort(string(t.addr))
	if err != nil {
		return nil, 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return nil, 0, err
	}
	return net.ParseIP(host), p, nil
}

// WriteTo implements memberlist.Transport.
func (t *mockTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport with UDP's
// manners: a packet nobody can take is dropped, never an error and never a
// wait.
func (t *mockTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.stopped() {
		return now, nil
	}
	dest := t.net.route(t, a.Addr)
	if dest == nil {
		return now, nil
	}
	p := &memberlist.Packet{Buf: append([]byte(nil), b...), From: t.addr, Timestamp: now}
	select {
	case dest.packets <- p:
	default: // receiver's buffer full: dropped
	}
	return now, nil
}

// PacketCh implements memberlist.Transport.
func (t *mockTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// DialTimeout implements memberlist.Transport.
func (t *mockTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (t *mockTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.stopped() {
		return nil, fmt.Errorf("%w to %s: transport shut down", errNoRoute, a.Addr)
	}
	dest := t.net.route(t, a.Addr)
	if dest == nil {
		return nil, fmt.Errorf("%w to %s", errNoRoute, a.Addr)
	}
	local, remote := net.Pipe()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case dest.streams <- remote:
		return local, nil
	case <-dest.done:
	case <-t.done:
	case <-timer.C:
	}
	_ = local.Close()
	_ = remote.Close()
	return nil, fmt.Errorf("%w to %s: not accepted", errNoRoute, a.Addr)
}

// StreamCh implements memberlist.Transport.
func (t *mockTransport) StreamCh() <-chan net.Conn { return t.streams }

// Shutdown implements memberlist.Transport. Channels stay open: memberlist
// stops reading them on its own shutdown signal, and senders check done.
func (t *mockTransport) Shutdown() error {
	t.stop()
	t.net.remove(t)
	return nil
}
