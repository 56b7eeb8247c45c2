package relay_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// Buffered takes no lock (Emit's back-pressure asks every link per event):
// it answers while the link's mutex is held, e.g. by a writer copying a
// batch.
func TestBufferedTakesNoLock(t *testing.T) {
	l, err := relay.NewInbound(relay.Config{NodeID: "a", BufferMax: 8}, newRecorder())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	sendAll(l, payloads("a", 1, 3))
	unlock := l.HoldLock()
	got := make(chan int, 1)
	go func() { got <- l.Buffered() }()
	select {
	case n := <-got:
		unlock()
		if n != 3 {
			t.Fatalf("Buffered() = %d, want 3", n)
		}
	case <-time.After(10 * time.Second):
		unlock()
		t.Fatal("Buffered() blocked on the link's lock")
	}
}

// Buffered mirrors the machine's count after every kind of input that
// changes it: sends, overflow while down, acks, the resend rule on
// reconnect, the trim of a connected backlog on disconnect, expiry.
func TestBufferedMirrorsMachine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(7)
		bh := newRecorder()
		bcfg := cfgFor("b", nil)
		bcfg.BufferMax = 8
		srv := startServer(t, n.Host("b"), "b:7947", bcfg, bh)
		acfg := cfgFor("a", n.Host("a"))
		acfg.BufferMax = 8
		acfg.BufferTimeout = time.Minute
		a := mustDial(t, acfg, srv.addr(), newRecorder())
		check := func(step string) {
			t.Helper()
			synctest.Wait()
			if got, want := a.Buffered(), a.MachineBuffered(); got != want {
				t.Fatalf("%s: Buffered() = %d, machine holds %d", step, got, want)
			}
		}
		waitFor(t, time.Minute, "connected", func() bool { return a.State() == relay.Connected })
		check("connected, empty")
		n.Refuse("a", "b", true)
		n.Cut("a", "b")
		waitFor(t, time.Minute, "down", func() bool { return a.State() != relay.Connected })
		sendAll(a, payloads("a", 1, 20)) // 12 dropped by overflow while down
		check("sent while down")
		if a.Buffered() != 8 {
			t.Fatalf("down: buffered %d, want BufferMax 8", a.Buffered())
		}
		n.Refuse("a", "b", false)
		waitFor(t, time.Minute, "resent and acked", func() bool { return a.Buffered() == 0 })
		check("acked after reconnect")
		// A connected backlog beyond BufferMax, trimmed on disconnect: b
		// must not ack in between, so the link is cut at once.
		sendAll(a, payloads("a", 21, 40))
		n.Refuse("a", "b", true)
		n.Cut("a", "b")
		waitFor(t, time.Minute, "down again", func() bool { return a.State() != relay.Connected })
		check("trimmed on disconnect")
		time.Sleep(2 * time.Minute) // past BufferTimeout: expired
		check("expired")
		if a.Buffered() != 0 {
			t.Fatalf("after BufferTimeout: buffered %d", a.Buffered())
		}
	})
}
