package relay_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/verbosemesh/verbose/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Handler that keeps what it is given.
type recorder struct {
	mu       sync.Mutex
	got      map[string][]string // payloads by the sending NodeID
	order    []string            // "data p", as the handler got them
	batches  []int               // the length of each Receive's batch
	events   []relay.Event
	identify func(relay.Hello) error
}

func newRecorder() *recorder { return &recorder{got: map[string][]string{}} }

func (r *recorder) Receive(l *relay.Link, ps [][]byte) {
	id := l.RemoteID()
	r.mu.Lock()
	for _, p := range ps {
		r.got[id] = append(r.got[id], string(p))
		r.order = append(r.order, "data "+string(p))
	}
	r.batches = append(r.batches, len(ps))
	r.mu.Unlock()
}

func (r *recorder) Event(l *relay.Link, ev relay.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *recorder) Identify(l *relay.Link, h relay.Hello) error {
	if r.identify != nil {
		return r.identify(h)
	}
	return nil
}

func (r *recorder) received(from string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[from])
}

func (r *recorder) eventsOf(kind relay.EventKind) []relay.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []relay.Event
	for _, ev := range r.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

func (r *recorder) count(kind relay.EventKind) int { return len(r.eventsOf(kind)) }

// waitFor polls cond until it holds or within passes. Under synctest the
// clock is fake, so the wait costs no real time.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func payloads(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%05d", prefix, i))
	}
	return out
}

func sendAll(l *relay.Link, ps []string) {
	for _, p := range ps {
		l.Send([]byte(p))
	}
}

// server accepts connections, runs relay.Accept and attaches each to the
// inbound link of its NodeID, as mesh does.
type server struct {
	cfg   relay.Config
	h     relay.Handler
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	links map[string]*relay.Link
	errs  []error
}

func startServer(t testing.TB, tr relay.Transport, addr string, cfg relay.Config, h relay.Handler) *server {
	t.Helper()
	ln, err := tr.Listen(addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &server{cfg: cfg, h: h, ln: ln, links: map[string]*relay.Link{}}
	s.wg.Add(1)
	go s.loop()
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) loop() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			hello, err := relay.Accept(s.cfg, conn)
			s.mu.Lock()
			defer s.mu.Unlock()
			if err != nil {
				s.errs = append(s.errs, err)
				return
			}
			l := s.links[hello.NodeID]
			if l == nil {
				if l, err = relay.NewInbound(s.cfg, s.h); err != nil {
					panic(err)
				}
				s.links[hello.NodeID] = l
			}
			l.Attach(conn, hello)
		}()
	}
}

func (s *server) link(id string) *relay.Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.links[id]
}

func (s *server) acceptErrors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errs)
}

// close stops accepting and closes every link; idempotent.
func (s *server) close() {
	s.ln.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.links {
		l.Close()
	}
}

func mustDial(t testing.TB, cfg relay.Config, addr string, h relay.Handler) *relay.Link {
	t.Helper()
	l, err := relay.Dial(cfg, addr, h)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func isRejected(err error) bool { return errors.Is(err, relay.ErrRejected) }
