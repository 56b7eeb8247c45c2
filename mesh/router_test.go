package mesh

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/relay"
)

// A link hands the router payloads that are regions of its read buffer,
// overwritten by the next read once Receive returns. Whatever outlives the
// call must be a copy: an event held behind a gap, the handlers' queue, the
// graft store. Here every payload is scribbled over as soon as Receive
// returns, the way the next read would; the handlers and a GRAFT must still
// see every event as it was sent.
func TestPayloadsOutliveTheLinksBuffer(t *testing.T) {
	n, err := New(Config{NodeID: "me", Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var (
		mu  sync.Mutex
		got []string
	)
	n.On("*", func(e Event) {
		var s string
		if err := e.Scan(nil, &s); err != nil {
			t.Errorf("scan seq %d: %v", e.Seq, err)
		}
		mu.Lock()
		got = append(got, fmt.Sprintf("%d:%v:%s", e.Seq, e.Args[0], s))
		mu.Unlock()
	})
	l, err := relay.NewInbound(relay.Config{NodeID: "me", Channel: "c", Boot: 1, Logger: hclog.NewNullLogger()}, nopHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	const boot = 1000
	payload := func(seq uint64) []byte {
		args, release, err := encodeArgs([]any{int64(seq), fmt.Sprintf("event %d", seq)})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		return encodeEnvelope(&envelope{Kind: kindEvent, Origin: "far", Boot: boot, Seq: seq, Name: "x", Path: []string{"far"}, Args: args})
	}
	receive := func(seqs ...uint64) {
		var batch [][]byte
		for _, seq := range seqs {
			batch = append(batch, payload(seq))
		}
		linkHandler{n}.Receive(l, batch, time.Now())
		for _, p := range batch {
			for i := range p {
				p[i] = 0xc1 // the next read's bytes
			}
		}
	}
	receive(boot+2, boot+3) // held behind the gap at boot, boot+1
	receive(boot + 1)       // still held
	receive(boot, boot+4)   // the gap fills: everything is released, in order

	var want []string
	for seq := uint64(boot); seq <= boot+4; seq++ {
		want = append(want, fmt.Sprintf("%d:%d:event %d", seq, seq, seq))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(got) >= len(want)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handlers got %d of %d events", len(got), len(want))
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("handlers got %v\nwant %v", got, want)
	}

	// The store kept its own copies: a GRAFT is answered with intact events.
	n.routeMu.Lock()
	for seq := uint64(boot); seq <= boot+4; seq++ {
		e := n.tree.store.get(eventKey{"far", boot, seq}, time.Now())
		if e == nil {
			t.Fatalf("seq %d not in the store", seq)
		}
		env, err := parseEnvelope(e.payload, nil)
		if err != nil || env.Seq != seq || string(env.Args) != string(payload(seq)[len(payload(seq))-len(env.Args):]) {
			t.Fatalf("stored seq %d: %v, %+v", seq, err, env)
		}
	}
	n.routeMu.Unlock()
}
