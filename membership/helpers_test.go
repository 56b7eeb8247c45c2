package membership

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// memberlist's goroutines exit on their own shortly after Shutdown;
	// goleak retries for a while before it reports, which covers that.
	goleak.VerifyTestMain(m)
}

// testLogger is silent unless MEMBERSHIP_TEST_LOG names a level: memberlist
// logs from its goroutines after a test has returned, where t.Log panics.
func testLogger() hclog.Logger {
	lvl := os.Getenv("MEMBERSHIP_TEST_LOG")
	if lvl == "" {
		return hclog.NewNullLogger()
	}
	return hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(lvl), Output: os.Stderr})
}

// recorder collects the events of one node.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// find returns the first event matching pred.
func (r *recorder) find(pred func(Event) bool) (Event, bool) {
	for _, e := range r.snapshot() {
		if pred(e) {
			return e, true
		}
	}
	return Event{}, false
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// newNode starts a ProbeFast member on 127.0.0.1:0 and shuts it down at the
// end of the test.
func newNode(t *testing.T, name string, edit func(*Config)) (*Membership, *recorder) {
	t.Helper()
	rec := &recorder{}
	cfg := Config{
		NodeID:    name,
		Channel:   "test",
		BindAddr:  "127.0.0.1:0",
		Meta:      Meta{RelayAddr: "relay-" + name, Version: 1},
		Logger:    testLogger(),
		Events:    rec.add,
		ProbeFast: true,
	}
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m, rec
}

// stateOf returns the state m lists for name, or "" if it does not list it.
func stateOf(m *Membership, name string) string {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem.State
		}
	}
	return ""
}

func memberOf(m *Membership, name string) (Member, bool) {
	for _, mem := range m.Members() {
		if mem.Name == name {
			return mem, true
		}
	}
	return Member{}, false
}

func aliveCount(m *Membership) int {
	n := 0
	for _, mem := range m.Members() {
		if mem.State == StateAlive {
			n++
		}
	}
	return n
}

func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }
