package memnet_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"

	"github.com/verbosemesh/verbose/relay/memnet"
)

func dial(n *memnet.Network, from, addr string) (net.Conn, error) {
	c, err := n.Host(from).Dial(context.Background(), addr)
	if err == nil {
		c.Close() // a probe: the caller only wants to know whether it connects
	}
	return c, err
}

func TestListenAddresses(t *testing.T) {
	n := memnet.New(42)
	h := n.Host("a")
	l1, err := h.Listen("a:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l1.Close()
	l2, err := h.Listen("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if l1.Addr().String() == l2.Addr().String() {
		t.Errorf("two port-0 listeners share %s", l1.Addr())
	}
	if a := l2.Addr().(memnet.Addr); a.Host != "a" || a.Port == 0 {
		t.Errorf("unspecified host listened on %v, want a:<port>", a)
	}
	if _, err := n.Host("b").Listen(l1.Addr().String()); !errors.Is(err, memnet.ErrAddrInUse) {
		t.Errorf("listen on a used address: %v, want ErrAddrInUse", err)
	}
	if _, err := h.Listen("a:notaport"); err == nil {
		t.Error("listen on a bad port succeeded")
	}
	l3, err := h.Listen("a:7947")
	if err != nil {
		t.Fatal(err)
	}
	l3.Close()
	if !errors.Is(l3.Close(), net.ErrClosed) {
		t.Error("second listener close did not report net.ErrClosed")
	}
	l3, err = h.Listen("a:7947")
	if err != nil {
		t.Fatalf("address not reusable after close: %v", err)
	}
	l3.Close()

	// Same seed, same operations: same ports.
	m := memnet.New(42)
	k1, _ := m.Host("a").Listen("a:0")
	defer k1.Close()
	if k1.Addr().String() != l1.Addr().String() {
		t.Errorf("seeded port choice differs: %s vs %s", k1.Addr(), l1.Addr())
	}
}

func TestDialErrors(t *testing.T) {
	n := memnet.New(1)
	if _, err := dial(n, "a", "b:7947"); !errors.Is(err, memnet.ErrRefused) {
		t.Errorf("dial without a listener: %v, want ErrRefused", err)
	}
	l, _ := n.Host("b").Listen("b:7947")
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := n.Host("a").Dial(ctx, "b:7947"); !errors.Is(err, context.Canceled) {
		t.Errorf("dial with a cancelled ctx: %v, want context.Canceled", err)
	}
	if _, err := dial(n, "a", "b:0"); err == nil {
		t.Error("dial to port 0 succeeded")
	}
	if _, err := dial(n, "a", "nonsense"); err == nil {
		t.Error("dial to a malformed address succeeded")
	}
}

func TestListenerClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		l, _ := n.Host("b").Listen("b:1")
		pending, err := n.Host("a").Dial(context.Background(), "b:1")
		if err != nil {
			t.Fatal(err)
		}
		defer pending.Close()
		if c, err := l.Accept(); err != nil {
			t.Fatal(err)
		} else {
			defer c.Close()
		}
		pending2, _ := n.Host("a").Dial(context.Background(), "b:1")
		defer pending2.Close()
		done := make(chan error)
		go func() {
			l.Accept() // takes pending2
			_, err := l.Accept()
			done <- err
		}()
		synctest.Wait()
		l.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked Accept: %v, want net.ErrClosed", err)
		}
		// A connection dialled but never accepted is closed with the listener.
		l2, _ := n.Host("b").Listen("b:2")
		orphan, _ := n.Host("a").Dial(context.Background(), "b:2")
		l2.Close()
		if _, err := orphan.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("unaccepted conn after listener close: %v, want io.EOF", err)
		}
		orphan.Close()
	})
}

func TestCut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		c, s := connect(t, n, "a", "b")
		_, s2 := connect(t, n, "b", "a") // the other way round counts too
		other, _ := connect(t, n, "a", "c")
		mustWrite(t, c, "lost in flight")
		blocked := make(chan error)
		go func() {
			_, err := s2.Read(make([]byte, 1))
			blocked <- err
		}()
		synctest.Wait()
		if got := n.Cut("b", "a"); got != 2 {
			t.Errorf("Cut = %d, want 2", got)
		}
		if err := <-blocked; !errors.Is(err, memnet.ErrCut) {
			t.Errorf("blocked read: %v, want ErrCut", err)
		}
		for _, conn := range []net.Conn{c, s} {
			if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, memnet.ErrCut) {
				t.Errorf("read after cut: %v, want ErrCut", err)
			}
			if _, err := conn.Write([]byte("x")); !errors.Is(err, memnet.ErrCut) {
				t.Errorf("write after cut: %v, want ErrCut", err)
			}
		}
		if got := n.Cut("a", "b"); got != 0 {
			t.Errorf("second Cut = %d, want 0", got)
		}
		mustWrite(t, other, "untouched")
		if n.Conns() != 1 {
			t.Errorf("Conns() = %d, want 1", n.Conns())
		}
		c3, s3 := connect(t, n, "a", "b") // a cut does not stop new dials
		mustWrite(t, c3, "ok")
		if got := readN(t, s3, 2); got != "ok" {
			t.Errorf("conn dialled after a cut: %q", got)
		}
		c3.Close()
		s3.Close()
		if got := n.CutHost("c"); got != 1 || n.Conns() != 0 {
			t.Errorf("CutHost = %d, Conns() = %d; want 1, 0", got, n.Conns())
		}
	})
}

func TestPartitionHeal(t *testing.T) {
	n := memnet.New(1)
	ab, _ := connect(t, n, "a", "b")
	bc, _ := connect(t, n, "b", "c")
	cd, _ := connect(t, n, "c", "d")
	ls := map[string]net.Listener{}
	for _, h := range []string{"a", "b", "c", "d"} {
		l, err := n.Host(h).Listen(h + ":7947")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ls[h] = l
	}
	n.Partition([]string{"a", "b"}, []string{"c"}) // d is in no group: a group of its own
	if _, err := ab.Write([]byte("x")); err != nil {
		t.Errorf("conn within a group: %v", err)
	}
	for _, conn := range []net.Conn{bc, cd} {
		if _, err := conn.Write([]byte("x")); !errors.Is(err, memnet.ErrCut) {
			t.Errorf("conn across groups: %v, want ErrCut", err)
		}
	}
	for _, p := range [][2]string{{"a", "c"}, {"c", "b"}, {"d", "a"}, {"c", "d"}} {
		if _, err := dial(n, p[0], p[1]+":7947"); !errors.Is(err, memnet.ErrUnreachable) {
			t.Errorf("dial %s→%s across the partition: %v, want ErrUnreachable", p[0], p[1], err)
		}
	}
	if _, err := dial(n, "b", "a:7947"); err != nil {
		t.Errorf("dial within a group: %v", err)
	}
	if _, err := dial(n, "c", "c:7947"); err != nil {
		t.Errorf("dial to self: %v", err)
	}
	n.Heal()
	for _, p := range [][2]string{{"a", "c"}, {"c", "b"}, {"d", "a"}} {
		if _, err := dial(n, p[0], p[1]+":7947"); err != nil {
			t.Errorf("dial %s→%s after heal: %v", p[0], p[1], err)
		}
	}
	// Ungrouped hosts share one group.
	n.Partition([]string{"a"})
	if _, err := dial(n, "c", "d:7947"); err != nil {
		t.Errorf("dial between two ungrouped hosts: %v", err)
	}
	n.Heal()
}

func TestRefuse(t *testing.T) {
	n := memnet.New(1)
	c, s := connect(t, n, "a", "b")
	l, _ := n.Host("b").Listen("b:7947")
	defer l.Close()
	n.Refuse("b", "a", true)
	if _, err := dial(n, "a", "b:7947"); !errors.Is(err, memnet.ErrRefused) {
		t.Errorf("refused dial: %v, want ErrRefused", err)
	}
	mustWrite(t, c, "still up")
	if got := readN(t, s, 8); got != "still up" {
		t.Errorf("existing conn after Refuse: %q", got)
	}
	if _, err := dial(n, "c", "b:7947"); err != nil {
		t.Errorf("dial from an unrelated host: %v", err)
	}
	n.Refuse("a", "b", false)
	if _, err := dial(n, "a", "b:7947"); err != nil {
		t.Errorf("dial after Refuse off: %v", err)
	}
	n.Refuse("a", "b", true)
	n.Heal()
	if _, err := dial(n, "a", "b:7947"); err != nil {
		t.Errorf("dial after Heal: %v", err)
	}
}

func TestIsolate(t *testing.T) {
	n := memnet.New(1)
	ab, _ := connect(t, n, "a", "b")
	ca, _ := connect(t, n, "c", "a")
	bc, _ := connect(t, n, "b", "c")
	l, _ := n.Host("a").Listen("a:7947")
	defer l.Close()
	lb, _ := n.Host("b").Listen("b:7947")
	defer lb.Close()
	n.Isolate("a")
	for _, conn := range []net.Conn{ab, ca} {
		if _, err := conn.Write([]byte("x")); !errors.Is(err, memnet.ErrCut) {
			t.Errorf("isolated host's conn: %v, want ErrCut", err)
		}
	}
	mustWrite(t, bc, "fine")
	if _, err := dial(n, "b", "a:7947"); !errors.Is(err, memnet.ErrUnreachable) {
		t.Errorf("dial to isolated host: %v, want ErrUnreachable", err)
	}
	if _, err := dial(n, "a", "b:7947"); !errors.Is(err, memnet.ErrUnreachable) {
		t.Errorf("dial from isolated host: %v, want ErrUnreachable", err)
	}
	n.Unisolate("a")
	if _, err := dial(n, "b", "a:7947"); err != nil {
		t.Errorf("dial after Unisolate: %v", err)
	}
}
