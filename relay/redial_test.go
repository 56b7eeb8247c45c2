package relay_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/relay"
	"github.com/verbosemesh/verbose/relay/memnet"
)

// A link that has backed off to long delays redials at once when asked, at
// the remote's new address, and resends its whole buffer there; the
// back-off starts over.
func TestRedialMovesResetsBackoffAndKeepsBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(3)
		ha, hb := newRecorder(), newRecorder()
		a := mustDial(t, relay.Config{NodeID: "a", Transport: n.Host("a")}, "b:7947", ha) // nobody listens there
		sendAll(a, payloads("a", 1, 5))
		time.Sleep(2 * time.Minute) // back-off has reached its 30s ceiling
		synctest.Wait()
		before := ha.count(relay.EventBackoff)
		if last := ha.eventsOf(relay.EventBackoff)[before-1]; last.Delay < 20*time.Second {
			t.Fatalf("back-off at %v after 2 minutes, want near 30s", last.Delay)
		}
		startServer(t, n.Host("b2"), "b2:7947", relay.Config{NodeID: "b", Transport: n.Host("b2")}, hb)

		start := time.Now()
		a.Redial("b2:7947")
		waitFor(t, time.Second, "the link up at the new address", func() bool { return a.State() == relay.Connected })
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Redial took %v, want at once", d)
		}
		if a.Addr() != "b2:7947" {
			t.Fatalf("Addr() = %q after Redial", a.Addr())
		}
		waitFor(t, time.Second, "the buffer resent", func() bool { return len(hb.received("a")) == 5 })
		if got := hb.received("a"); got[0] != "a00001" || got[4] != "a00005" {
			t.Fatalf("received %v", got)
		}
		// Redial on a connected link that has not moved does nothing.
		a.Redial("b2:7947")
		a.Redial("")
		synctest.Wait()
		if a.State() != relay.Connected || ha.count(relay.EventDisconnect) != 0 {
			t.Fatalf("Redial of a connected link disturbed it: %v, %d disconnects", a.State(), ha.count(relay.EventDisconnect))
		}
	})
}

func TestEachUnackedOldestFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(4)
		a := mustDial(t, relay.Config{NodeID: "a", Transport: n.Host("a")}, "b:7947", newRecorder()) // nobody listens
		sendAll(a, payloads("a", 1, 3))
		var got []string
		a.EachUnacked(func(p []byte) { got = append(got, string(p)) })
		if len(got) != 3 || got[0] != "a00001" || got[2] != "a00003" {
			t.Fatalf("EachUnacked gave %v", got)
		}
	})
}
