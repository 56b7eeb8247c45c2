package relay_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// rawPeer is a hand-driven acceptor: it answers one link's handshake and
// then does only what the test says. Frames it reads are recorded.
type rawPeer struct {
	conn   net.Conn
	mu     sync.Mutex
	frames []relay.Frame
	done   chan struct{}
}

func startRawPeer(t *testing.T, n *memnet.Network, boot uint64) (*relay.Link, *recorder, *rawPeer) {
	t.Helper()
	ln, err := n.Host("b").Listen("b:7947")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cfgFor("a", n.Host("a"))
	cfg.BufferMax = 4
	cfg.Timeout = 3 * time.Second
	cfg.AckInterval = time.Second
	h := newRecorder()
	a := mustDial(t, cfg, ln.Addr().String(), h)
	conn, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relay.Accept(relay.Config{NodeID: "b"}, conn); err != nil {
		t.Fatal(err)
	}
	hello := relay.Hello{Version: relay.Version, Channel: "default", NodeID: "b", Boot: boot, Window: 1000, MaxFrame: 1 << 20}
	p := &rawPeer{conn: conn, done: make(chan struct{})}
	p.write(t, relay.Frame{Type: relay.FrameHello, Hello: hello})
	go func() {
		defer close(p.done)
		for {
			f, err := relay.ReadFrame(conn, 1<<20)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.frames = append(p.frames, f)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-p.done
	})
	waitFor(t, time.Second, "handshake", func() bool { return a.State() == relay.Connected })
	return a, h, p
}

func (p *rawPeer) write(t *testing.T, f relay.Frame) {
	t.Helper()
	if _, err := p.conn.Write(relay.AppendFrame(nil, f)); err != nil {
		t.Fatal(err)
	}
}

func (p *rawPeer) count(typ relay.FrameType) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.frames {
		if f.Type == typ {
			n++
		}
	}
	return n
}

func TestLinkHeartbeatAndInactivityTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, h, p := startRawPeer(t, memnet.New(8), 77) // Timeout 3s: heartbeat every 1s
		time.Sleep(2500 * time.Millisecond)
		synctest.Wait()
		// The ACK that completes the handshake, then one a second.
		if got := p.count(relay.FrameAck); got != 3 {
			t.Fatalf("%d ACKs in 2.5s, want 3", got)
		}
		if h.count(relay.EventDisconnect) != 0 {
			t.Fatal("disconnected before Timeout")
		}
		time.Sleep(time.Until(start.Add(3*time.Second + time.Millisecond)))
		synctest.Wait()
		d := h.eventsOf(relay.EventDisconnect)
		if len(d) != 1 || !errors.Is(d[0].Err, relay.ErrTimeout) {
			t.Fatalf("after 3s of silence: %+v", d)
		}
	})
}

func TestLinkDropsPeerSendingGarbage(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"unknown frame type", []byte{0, 0, 0, 2, 0x91, 0x09}, relay.ErrBadFrame},
		{"hello after handshake", relay.AppendFrame(nil, relay.Frame{Type: relay.FrameHello}), relay.ErrBadFrame},
		{"frame over the limit", binary.BigEndian.AppendUint32(nil, 1<<20+1), relay.ErrFrameTooLarge},
		{"ack of unsent data", relay.AppendFrame(nil, relay.Frame{Type: relay.FrameAck, Seq: 9}), relay.ErrBadFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				_, h, p := startRawPeer(t, memnet.New(9), 77)
				if _, err := p.conn.Write(tt.wire); err != nil {
					t.Fatal(err)
				}
				waitFor(t, time.Second, "disconnect", func() bool { return h.count(relay.EventDisconnect) > 0 })
				if err := h.eventsOf(relay.EventDisconnect)[0].Err; !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
			})
		})
	}
}

// Frames that one read brings are handed over in batches, in order, with
// an ACK between DATA frames; the frames before a bad one are delivered
// before the link drops.
func TestLinkBatchesInOrderUpToABadFrame(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, h, p := startRawPeer(t, memnet.New(10), 77)
		var wire []byte
		var want []string
		for seq := uint64(1); seq <= 3*relay.MaxBatch; seq++ {
			payload := fmt.Sprintf("e%d", seq)
			wire = relay.AppendFrame(wire, relay.Frame{Type: relay.FrameData, Seq: seq, Payload: []byte(payload)})
			want = append(want, "data "+payload)
			if seq == 5 {
				wire = relay.AppendFrame(wire, relay.Frame{Type: relay.FrameAck, Seq: 0})
			}
		}
		wire = append(wire, 0, 0, 0, 2, 0x91, 0x09)   // an unknown frame type
		if _, err := p.conn.Write(wire); err != nil { // one write: the reader gets it in few reads
			t.Fatal(err)
		}
		waitFor(t, time.Second, "disconnect", func() bool { return h.count(relay.EventDisconnect) > 0 })
		if err := h.eventsOf(relay.EventDisconnect)[0].Err; !errors.Is(err, relay.ErrBadFrame) {
			t.Fatalf("disconnected by %v, want ErrBadFrame", err)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if fmt.Sprint(h.order) != fmt.Sprint(want) {
			t.Fatalf("handler got %v\nwant %v", h.order, want)
		}
		for _, n := range h.batches {
			if n < 1 || n > relay.MaxBatch {
				t.Fatalf("batches of %v: each must hold 1 to %d payloads", h.batches, relay.MaxBatch)
			}
		}
		if len(h.batches) >= 3*relay.MaxBatch/2 {
			t.Fatalf("%d batches for %d frames: the reader does not batch", len(h.batches), 3*relay.MaxBatch)
		}
	})
}

func TestWaitSpace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, h, p := startRawPeer(t, memnet.New(10), 77) // BufferMax 4, never acks by itself
		sendAll(a, payloads("a", 1, 4))
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		if err := a.WaitSpace(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("full buffer: %v", err)
		}
		result := make(chan error, 1)
		go func() { result <- a.WaitSpace(context.Background()) }()
		synctest.Wait()
		select {
		case err := <-result:
			t.Fatalf("returned %v while full", err)
		default:
		}
		p.write(t, relay.Frame{Type: relay.FrameAck, Seq: 2})
		if err := <-result; err != nil {
			t.Fatal(err)
		}
		if a.Buffered() != 2 {
			t.Fatalf("buffered %d after ack 2", a.Buffered())
		}
		if ack := h.eventsOf(relay.EventAcknowledge); len(ack) != 1 || ack[0].Seq != 2 || ack[0].PeerID != "b" {
			t.Fatalf("acknowledge events %+v", ack)
		}
		// Connected, the buffer may grow to 4 × BufferMax (what a relaying
		// node cannot hold back) before it drops; drops are reported with
		// their count, by the link's goroutine (never inside Send).
		sendAll(a, payloads("a", 5, 20))
		synctest.Wait()
		var dropped int
		for _, ev := range h.eventsOf(relay.EventOverflow) {
			dropped += ev.Dropped
		}
		if dropped != 2 || a.Buffered() != 16 {
			t.Fatalf("connected: dropped %d, buffered %d; want 2 and 16", dropped, a.Buffered())
		}
	})
}
