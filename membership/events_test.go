package membership

import (
	"fmt"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	metrics "github.com/hashicorp/go-metrics"
	"github.com/hashicorp/memberlist"
)

func testNode(t testing.TB, name, channel string, leaving bool) *memberlist.Node {
	t.Helper()
	b, err := encodeMeta(Meta{RelayAddr: "r-" + name, Channel: channel, Version: 1}, leaving)
	if err != nil {
		t.Fatal(err)
	}
	return &memberlist.Node{Name: name, Addr: net.ParseIP("127.0.0.1"), Port: 7946, Meta: b}
}

// memberlist must never wait for Config.Events: notifications made while
// the callback is stuck are queued, then delivered in order, none dropped.
func TestEventsNeverBlockMemberlist(t *testing.T) {
	cfg := Config{NodeID: "self", Channel: "c", BindAddr: "127.0.0.1:0", Events: func(Event) {}}
	if err := (&cfg).validate(); err != nil {
		t.Fatal(err)
	}
	d := newDelegate(&cfg, nil)

	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	fn := func(e Event) {
		<-release
		mu.Lock()
		got = append(got, e.Kind.String()+" "+e.Member.Name+" "+e.Member.State)
		mu.Unlock()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); d.run(fn, done) }()

	const n = 1000
	var want []string
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range n {
			name := fmt.Sprintf("m%04d", i)
			d.NotifyJoin(testNode(t, name, "c", false))
			d.NotifyLeave(testNode(t, name, "c", i%2 == 0))
		}
	}()
	for i := range n {
		name := fmt.Sprintf("m%04d", i)
		state := StateDead
		if i%2 == 0 {
			state = StateLeft
		}
		want = append(want, "join "+name+" alive", "leave "+name+" "+state)
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("delegate blocked while the Events callback was stuck")
	}
	close(release)
	waitFor(t, 10*time.Second, "all events delivered", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want)
	})
	close(done)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestDelegateFiltersAndStates(t *testing.T) {
	cfg := Config{NodeID: "self", Channel: "c", BindAddr: "127.0.0.1:0", Events: func(Event) {}}
	if err := (&cfg).validate(); err != nil {
		t.Fatal(err)
	}
	d := newDelegate(&cfg, nil)
	d.reap = time.Minute
	now := time.Now()

	d.notify(testNode(t, "self", "c", false), MemberJoin, now)  // ourselves
	d.notify(testNode(t, "x", "other", false), MemberJoin, now) // another channel
	d.notify(&memberlist.Node{Name: "junk", Meta: []byte{0xc1}}, MemberJoin, now)
	d.notify(testNode(t, "ghost", "c", false), MemberLeave, now) // never joined
	d.notify(testNode(t, "a", "c", false), MemberJoin, now)
	d.notify(testNode(t, "a", "c", true), MemberUpdate, now) // leave signal: no event
	d.notify(testNode(t, "a", "c", true), MemberLeave, now)
	d.notify(testNode(t, "b", "c", false), MemberUpdate, now) // first heard as update
	d.notify(testNode(t, "b", "c", false), MemberLeave, now)
	// memberlist's own verdict: a dead message the node sent about itself.
	d.notify(testNode(t, "c", "c", false), MemberJoin, now)
	left := testNode(t, "c", "c", false)
	left.State = memberlist.StateLeft
	d.notify(left, MemberLeave, now)

	var kinds []string
	for _, e := range d.take() {
		kinds = append(kinds, e.Kind.String()+" "+e.Member.Name+" "+e.Member.State)
	}
	want := "join a alive,leave a left,join b alive,leave b dead,join c alive,leave c left"
	if got := strings.Join(kinds, ","); got != want {
		t.Fatalf("events = %s\nwant     %s", got, want)
	}
	if ms := d.members(now.Add(30 * time.Second)); len(ms) != 3 {
		t.Fatalf("members before reap = %+v", ms)
	}
	if ms := d.members(now.Add(2 * time.Minute)); len(ms) != 0 {
		t.Fatalf("members after reap = %+v", ms)
	}
	if s := EventKind(9).String(); s != "EventKind(9)" {
		t.Errorf("String() = %q", s)
	}
}

func TestMetaRoundTrip(t *testing.T) {
	for _, view := range []int{0, 7, -1} {
		in := Meta{RelayAddr: "10.1.2.3:7947", Channel: "prod", Version: 3, ActiveView: view}
		for _, leaving := range []bool{false, true} {
			b, err := encodeMeta(in, leaving)
			if err != nil {
				t.Fatal(err)
			}
			out, l, err := decodeMeta(b)
			if err != nil || out != in || l != leaving {
				t.Fatalf("round trip: %+v %v %v", out, l, err)
			}
		}
	}
}

// The partial-view size is a key that builds before it skip, and a member
// of such a build reads as not saying (-1), not as linking every member.
func TestMetaActiveViewAcrossBuilds(t *testing.T) {
	type before struct {
		RelayAddr string `codec:"r"`
		Channel   string `codec:"c"`
		Version   int    `codec:"v"`
		Leaving   bool   `codec:"l,omitempty"`
	}
	b, err := encodeMeta(Meta{RelayAddr: "a:1", Channel: "c", Version: 6, ActiveView: 7}, false)
	if err != nil {
		t.Fatal(err)
	}
	var old before
	if err := codec.NewDecoderBytes(b, metaHandle).Decode(&old); err != nil || old != (before{RelayAddr: "a:1", Channel: "c", Version: 6}) {
		t.Fatalf("an older build decodes %+v, %v", old, err)
	}
	var fromOld []byte
	if err := codec.NewEncoderBytes(&fromOld, metaHandle).Encode(&old); err != nil {
		t.Fatal(err)
	}
	m, _, err := decodeMeta(fromOld)
	if err != nil || m.ActiveView != -1 {
		t.Fatalf("an older build's meta decodes to %+v, %v; want ActiveView -1", m, err)
	}
}

func FuzzDecodeMeta(f *testing.F) {
	good, _ := encodeMeta(Meta{RelayAddr: "a:1", Channel: "c", Version: 1}, true)
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xc1})
	f.Add([]byte{0x81, 0xa1, 'v', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}) // map claiming 4G entries
	f.Fuzz(func(t *testing.T, b []byte) {
		m, leaving, err := decodeMeta(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to the same value (when it fits).
		again, err := encodeMeta(m, leaving)
		if err != nil {
			return
		}
		m2, l2, err := decodeMeta(again)
		if err != nil || m2 != m || l2 != leaving {
			t.Fatalf("re-decode: %+v %v %v, want %+v %v", m2, l2, err, m, leaving)
		}
	})
}

// captureSink is a hashicorp/go-metrics sink that records keys and labels.
type captureSink struct {
	mu     sync.Mutex
	keys   map[string]bool
	labels []metrics.Label
}

func (s *captureSink) rec(key []string, labels []metrics.Label) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]bool)
	}
	s.keys[strings.Join(key, ".")] = true
	s.labels = append(s.labels, labels...)
}

func (s *captureSink) has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

func (s *captureSink) SetGauge(k []string, _ float32)                              { s.rec(k, nil) }
func (s *captureSink) SetGaugeWithLabels(k []string, _ float32, l []metrics.Label) { s.rec(k, l) }
func (s *captureSink) EmitKey(k []string, _ float32)                               { s.rec(k, nil) }
func (s *captureSink) IncrCounter(k []string, _ float32)                           { s.rec(k, nil) }
func (s *captureSink) IncrCounterWithLabels(k []string, _ float32, l []metrics.Label) {
	s.rec(k, l)
}
func (s *captureSink) AddSample(k []string, _ float32) { s.rec(k, nil) }
func (s *captureSink) AddSampleWithLabels(k []string, _ float32, l []metrics.Label) {
	s.rec(k, l)
}

func (s *captureSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.keys)
}
