package relay

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testConfig(id string, boot uint64) Config {
	return Config{NodeID: id, Boot: boot, BufferMax: 8, Timeout: 30 * time.Second,
		AckInterval: time.Second, BufferTimeout: 10 * time.Minute}.withDefaults()
}

// drain returns the frames m wants written now.
func drain(t testing.TB, m *machine, now time.Time) []Frame {
	t.Helper()
	wire := m.AppendPending(nil, now, 1<<30)
	var out []Frame
	for r := bytes.NewReader(wire); r.Len() > 0; {
		f, err := ReadFrame(r, 1<<30)
		if err != nil {
			t.Fatalf("machine wrote a bad frame: %v", err)
		}
		out = append(out, f)
	}
	return out
}

// feed hands frames to m as its reader would, returning delivered payloads.
func feed(t testing.TB, m *machine, frames []Frame, now time.Time) []string {
	t.Helper()
	var got []string
	for _, f := range frames {
		p, seq, err := m.Receive(f, now)
		if err != nil {
			t.Fatalf("receive %+v: %v", f, err)
		}
		if seq != 0 {
			got = append(got, string(p))
			m.Delivered(seq)
		}
	}
	return got
}

// connect runs the handshake between a dialer and an acceptor, including
// the dialer's ACK that completes it for the acceptor (version 4).
func connect(a, b *machine, now time.Time) {
	ha, hb := a.hello(), b.hello()
	a.Connected(hb, now)
	b.Connected(ha, now)
	for _, m := range []struct{ from, to *machine }{{a, b}, {b, a}} {
		if !m.from.outbound {
			continue
		}
		for r := bytes.NewReader(m.from.AppendPending(nil, now, 1)); r.Len() > 0; { // limit 1: the ACK alone
			f, err := ReadFrame(r, 1<<30)
			if err != nil || f.Type != FrameAck {
				panic(fmt.Sprintf("the dialer's first frame: %+v, %v", f, err))
			}
			if _, _, err := m.to.Receive(f, now); err != nil {
				panic(err)
			}
		}
	}
}

func data(seq uint64, p string) Frame { return Frame{Type: FrameData, Seq: seq, Payload: []byte(p)} }

func sendN(m *machine, from, to int) {
	for i := from; i <= to; i++ {
		m.Send(fmt.Appendf(nil, "p%d", i))
	}
}

func kinds(evs []Event) []EventKind {
	var k []EventKind
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return k
}

func TestMachineResendAfterReconnect(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(a, 1, 5)
	frames := drain(t, a, t0)
	if len(frames) != 5 {
		t.Fatalf("first batch: %d frames", len(frames))
	}
	// Only the first three arrive before the connection breaks.
	if got := feed(t, b, frames[:3], t0); !reflect.DeepEqual(got, []string{"p1", "p2", "p3"}) {
		t.Fatalf("delivered %v", got)
	}
	a.Disconnected(errors.New("cut"), t0)
	b.Disconnected(errors.New("cut"), t0)
	if h := b.hello(); h.Ack != 3 || h.AckBoot != 11 {
		t.Fatalf("b's hello: ack %d ackBoot %d, want 3 and 11", h.Ack, h.AckBoot)
	}
	connect(a, b, t0)
	want := []Frame{data(4, "p4"), data(5, "p5")}
	if got := drain(t, a, t0); !reflect.DeepEqual(got, want) {
		t.Fatalf("resend: got %+v, want %+v", got, want)
	}
	if a.buffered() != 2 {
		t.Fatalf("the hello's ack must free 1..3: buffered %d", a.buffered())
	}
}

func TestMachineAckTruncates(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	a.takeEvents()
	sendN(a, 1, 5)
	drain(t, a, t0)
	if _, _, err := a.Receive(Frame{Type: FrameAck, Seq: 3}, t0); err != nil {
		t.Fatal(err)
	}
	if a.buffered() != 2 || a.firstSeq() != 4 {
		t.Fatalf("buffered %d from %d, want 2 from 4", a.buffered(), a.firstSeq())
	}
	evs := a.takeEvents()
	if len(evs) != 1 || evs[0].Kind != EventAcknowledge || evs[0].Seq != 3 || evs[0].PeerID != "b" {
		t.Fatalf("events %+v", evs)
	}
	// A repeated ack (a heartbeat) changes nothing and reports nothing.
	a.Receive(Frame{Type: FrameAck, Seq: 3}, t0)
	if evs := a.takeEvents(); len(evs) != 0 {
		t.Fatalf("heartbeat reported %+v", evs)
	}
	if _, _, err := a.Receive(Frame{Type: FrameAck, Seq: 6}, t0); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("ack beyond the last seq: %v", err)
	}
}

func TestMachineOverflowDropsOldest(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0) // BufferMax 8
	sendN(a, 1, 11)
	if a.buffered() != 8 || a.firstSeq() != 4 {
		t.Fatalf("buffered %d from %d, want 8 from 4", a.buffered(), a.firstSeq())
	}
	evs := a.takeEvents()
	if len(evs) != 1 || evs[0].Kind != EventOverflow || evs[0].Dropped != 3 {
		t.Fatalf("want one Overflow{Dropped: 3}, got %+v", evs)
	}
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	got := feed(t, b, drain(t, a, t0), t0)
	if want := []string{"p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("receiver must accept the jump: got %v", got)
	}
	// A payload that can never fit a frame is refused and reported.
	a.takeEvents()
	a.Send(make([]byte, a.cfg.MaxFrameSize))
	if evs := a.takeEvents(); len(evs) != 1 || evs[0].Kind != EventOverflow || !errors.Is(evs[0].Err, ErrFrameTooLarge) {
		t.Fatalf("oversized payload: %+v", evs)
	}
}

func TestMachineExpiry(t *testing.T) {
	cfg := testConfig("a", 11)
	a := newMachine(cfg, false, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(a, 1, 3)
	down := t0.Add(time.Minute)
	a.Disconnected(errors.New("cut"), down)
	a.takeEvents()
	if d := a.NextDeadline(); !d.Equal(down.Add(cfg.BufferTimeout)) {
		t.Fatalf("deadline %v, want %v", d, down.Add(cfg.BufferTimeout))
	}
	if exp, _ := a.Tick(down.Add(cfg.BufferTimeout - time.Nanosecond)); exp || a.buffered() != 3 {
		t.Fatalf("expired early")
	}
	exp, err := a.Tick(down.Add(cfg.BufferTimeout))
	if !exp || err != nil || a.buffered() != 0 {
		t.Fatalf("tick at BufferTimeout: expired %v err %v buffered %d", exp, err, a.buffered())
	}
	if evs := a.takeEvents(); len(evs) != 1 || evs[0].Kind != EventExpired || evs[0].Dropped != 3 {
		t.Fatalf("events %+v", evs)
	}
	// Seqs go on after the forgotten ones; the receiver accepts the jump.
	a.Send([]byte("p4"))
	connect(a, b, down.Add(cfg.BufferTimeout+time.Second))
	if got := feed(t, b, drain(t, a, t0), t0); !reflect.DeepEqual(got, []string{"p4"}) {
		t.Fatalf("after expiry: %v", got)
	}
}

func TestMachineIgnoresDuplicates(t *testing.T) {
	b := newMachine(testConfig("b", 22), false, t0)
	a := newMachine(testConfig("a", 11), true, t0)
	connect(a, b, t0)
	got := feed(t, b, []Frame{data(1, "p1"), data(2, "p2"), data(3, "p3"), data(2, "p2"), data(3, "p3"), data(4, "p4")}, t0)
	if want := []string{"p1", "p2", "p3", "p4"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMachineRemoteRestart(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(a, 1, 3)
	feed(t, b, drain(t, a, t0), t0)
	sendN(b, 1, 2)
	var bData []Frame // b's ACK is lost with the connection
	for _, f := range drain(t, b, t0) {
		if f.Type == FrameData {
			bData = append(bData, f)
		}
	}
	feed(t, a, bData, t0)
	a.Disconnected(nil, t0)
	b.Disconnected(nil, t0)

	// b restarts: it has never heard of a's boot, so a resends everything it
	// still holds, and a resets what it knew of b's stream.
	b2 := newMachine(testConfig("b", 33), false, t0)
	connect(a, b2, t0)
	if got := feed(t, b2, drain(t, a, t0), t0); !reflect.DeepEqual(got, []string{"p1", "p2", "p3"}) {
		t.Fatalf("resend to the new incarnation: %v", got)
	}
	b2.Send([]byte("q1"))
	if got := feed(t, a, drain(t, b2, t0), t0); !reflect.DeepEqual(got, []string{"q1"}) {
		t.Fatalf("seq 1 of the new boot must be delivered, got %v", got)
	}
	if h := a.hello(); h.AckBoot != 33 || h.Ack != 1 {
		t.Fatalf("a's receive state: ack %d of boot %d", h.Ack, h.AckBoot)
	}
}

func TestCheckHello(t *testing.T) {
	cfg := testConfig("a", 11)
	good := Hello{Version: Version, Channel: "default", NodeID: "b", Boot: 5, Window: 10, MaxFrame: 1 << 20}
	tests := []struct {
		name string
		edit func(*Hello)
		want string
	}{
		{"ok", func(*Hello) {}, ""},
		{"channel", func(h *Hello) { h.Channel = "x" }, `relay: channel mismatch: remote "x", local "default"`},
		{"version", func(h *Hello) { h.Version = Version + 1 }, fmt.Sprintf("relay: protocol version mismatch: remote %d, local %d", Version+1, Version)},
		{"no id", func(h *Hello) { h.NodeID = "" }, "relay: bad hello: empty node id"},
		{"zero boot", func(h *Hello) { h.Boot = 0 }, "relay: bad hello: zero boot id"},
		{"zero window", func(h *Hello) { h.Window = 0 }, "relay: bad hello: window 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			tt.edit(&h)
			err := checkHello(cfg, h)
			if got := fmt.Sprint(err); (tt.want == "" && err != nil) || (tt.want != "" && got != tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestMachineAcksAtQuarterWindow(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0) // window 8: ack every 2
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(a, 1, 3)
	frames := drain(t, a, t0)
	feed(t, b, frames[:1], t0)
	if b.Pending() {
		t.Fatalf("ack due after 1 of 2 frames")
	}
	feed(t, b, frames[1:2], t0)
	if got := drain(t, b, t0); !reflect.DeepEqual(got, []Frame{{Type: FrameAck, Seq: 2}}) {
		t.Fatalf("at window/4 frames, without a tick: %+v", got)
	}
	feed(t, b, frames[2:], t0)
	if b.Pending() {
		t.Fatal("ack due after 1 more frame")
	}
	// The ack timer covers the remainder.
	if d := b.NextDeadline(); !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("ack deadline %v", d)
	}
	b.Tick(t0.Add(time.Second))
	if got := drain(t, b, t0.Add(time.Second)); !reflect.DeepEqual(got, []Frame{{Type: FrameAck, Seq: 3}}) {
		t.Fatalf("ack timer: %+v", got)
	}
}

func TestMachineHeartbeatAndTimeout(t *testing.T) {
	cfg := testConfig("a", 11)
	cfg.Timeout, cfg.AckInterval = 6*time.Second, 5*time.Second // heartbeat = min(5s, 6s/3) = 2s
	a := newMachine(cfg, true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	if d := a.NextDeadline(); !d.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("heartbeat deadline %v", d)
	}
	a.Tick(t0.Add(2 * time.Second))
	if got := drain(t, a, t0.Add(2*time.Second)); !reflect.DeepEqual(got, []Frame{{Type: FrameAck, Seq: 0}}) {
		t.Fatalf("heartbeat: %+v", got)
	}
	// A frame from the remote postpones the timeout.
	a.Receive(Frame{Type: FrameAck}, t0.Add(3*time.Second))
	if _, err := a.Tick(t0.Add(8*time.Second + time.Nanosecond)); err != nil {
		t.Fatalf("timed out early: %v", err)
	}
	_, err := a.Tick(t0.Add(9 * time.Second))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("after Timeout of silence: %v", err)
	}
	a.Disconnected(err, t0.Add(9*time.Second))
	if evs := a.takeEvents(); kinds(evs)[len(evs)-1] != EventDisconnect || !errors.Is(evs[len(evs)-1].Err, ErrTimeout) {
		t.Fatalf("events %+v", evs)
	}
}

func TestMachineReconnectEvents(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	a.Disconnected(errors.New("cut"), t0)
	b.Disconnected(errors.New("cut"), t0)
	connect(a, b, t0)
	want := []EventKind{EventHandshake, EventDisconnect, EventHandshake, EventReconnect}
	if got := kinds(a.takeEvents()); !reflect.DeepEqual(got, want) {
		t.Fatalf("dialer: %v, want %v", got, want)
	}
	// The acceptor counts a connection complete at the dialer's first frame.
	want = []EventKind{EventHandshake, EventConfirmed, EventDisconnect, EventHandshake, EventConfirmed}
	if got := kinds(b.takeEvents()); !reflect.DeepEqual(got, want) {
		t.Fatalf("inbound: %v, want %v", got, want)
	}
}

// Connected, the buffer holds up to connectedSlack × BufferMax; when the
// connection drops, it keeps the newest BufferMax for the absent peer and
// reports the rest as Overflow.
func TestMachineConnectedSlackTrimmedOnDisconnect(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0) // BufferMax 8
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(a, 1, 20)
	if a.buffered() != 20 {
		t.Fatalf("connected: buffered %d, want all 20 (limit %d)", a.buffered(), a.limit())
	}
	a.takeEvents()
	a.Disconnected(errors.New("cut"), t0)
	var dropped int
	for _, ev := range a.takeEvents() {
		if ev.Kind == EventOverflow {
			dropped += ev.Dropped
		}
	}
	if dropped != 12 || a.buffered() != 8 || a.firstSeq() != 13 {
		t.Fatalf("after disconnect: dropped %d, buffered %d from %d; want 12, 8 from 13", dropped, a.buffered(), a.firstSeq())
	}
}

// A dialer owes the acceptor a frame at once: an acceptor that got only a
// HELLO has not seen the handshake complete (no EventConfirmed).
func TestMachineDialerConfirmsAtOnce(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	a.Connected(b.hello(), t0)
	b.Connected(a.hello(), t0)
	if got := kinds(b.takeEvents()); !reflect.DeepEqual(got, []EventKind{EventHandshake}) {
		t.Fatalf("acceptor before the dialer's first frame: %v", got)
	}
	if b.Pending() {
		t.Fatal("the acceptor owes nothing after its HELLO")
	}
	got := drain(t, a, t0)
	if !reflect.DeepEqual(got, []Frame{{Type: FrameAck, Seq: 0}}) {
		t.Fatalf("the dialer's first frames: %+v, want one ACK", got)
	}
	feed(t, b, got, t0)
	if got := kinds(b.takeEvents()); !reflect.DeepEqual(got, []EventKind{EventConfirmed}) {
		t.Fatalf("acceptor after the dialer's ACK: %v", got)
	}
}

// A remote that forgot our stream (its link state is new: its ackBoot is
// not our boot) numbers its payloads from 1 again, in the same boot: the
// receive state is reset, or its first payloads would pass for duplicates.
func TestMachineRemoteWithNewLinkState(t *testing.T) {
	a := newMachine(testConfig("a", 11), true, t0)
	b := newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(b, 1, 3)
	if got := feed(t, a, drain(t, b, t0), t0); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
	a.Disconnected(errors.New("cut"), t0)
	// b's link is forgotten (expired, evicted) and made anew: same boot.
	b = newMachine(testConfig("b", 22), false, t0)
	connect(a, b, t0)
	sendN(b, 1, 2)
	if got := feed(t, a, drain(t, b, t0), t0); !reflect.DeepEqual(got, []string{"p1", "p2"}) {
		t.Fatalf("after the remote's link was made anew: delivered %v, want [p1 p2]", got)
	}
}
