package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/internal/benchkit"
	"github.com/verbosemesh/verbose/mesh"
)

// runVerbose measures verbose: nodes mesh.Nodes over loopback TCP, a full
// mesh by Connect (what Join builds, without gossip), node 0 emitting, the
// others receiving with one handler each: On("*") and Event.Args (handler
// "on"), or OnRaw("*") and Event.Scan (handler "raw"). The config is
// meshbench's: BufferMax 4096, HandlerQueue 65536, the rest defaults (the
// Plumtree on).
func runVerbose(nodes, size int, d time.Duration, handler string, log hclog.Logger, profile io.Writer) (result, error) {
	var ns []*mesh.Node
	defer func() {
		log.SetLevel(hclog.Off) // nodes closing at once log about each other's sockets
		done := make(chan struct{}, len(ns))
		for _, n := range ns {
			go func() {
				n.Close()
				done <- struct{}{}
			}()
		}
		for range ns {
			<-done
		}
	}()
	for i := range nodes {
		n, err := mesh.New(mesh.Config{
			NodeID:       fmt.Sprintf("bench-%02d", i),
			BufferMax:    4096,
			HandlerQueue: 1 << 16,
			Logger:       log.Named(fmt.Sprintf("n%02d", i)),
		})
		if err != nil {
			return result{}, fmt.Errorf("natsbench: node %d: %w", i, err)
		}
		ns = append(ns, n)
		if err := n.Listen("127.0.0.1:0"); err != nil {
			return result{}, fmt.Errorf("natsbench: node %d: %w", i, err)
		}
	}
	for i := range ns {
		for j := i + 1; j < len(ns); j++ {
			if _, err := ns[i].Connect(ns[j].Addr().String()); err != nil {
				return result{}, fmt.Errorf("natsbench: connect %d→%d: %w", i, j, err)
			}
		}
	}
	if err := waitLinks(ns, 30*time.Second); err != nil {
		return result{}, err
	}
	rs := newReceivers(nodes - 1)
	for i, n := range ns[1:] {
		r := rs[i]
		if handler == "raw" {
			// Scan's destinations outlive the call (Scan hands them on):
			// the receiver's own, used on the node's dispatcher only.
			var idx, ts int64
			n.OnRaw("*", func(e mesh.Event) {
				if err := e.Scan(&idx, &ts); err != nil {
					r.malformed.Add(1)
					return
				}
				r.record(idx, ts)
			})
		} else {
			n.On("*", func(e mesh.Event) {
				if len(e.Args) < 2 {
					r.malformed.Add(1)
					return
				}
				idx, ok1 := benchkit.AsInt(e.Args[0])
				ts, ok2 := benchkit.AsInt(e.Args[1])
				if !ok1 || !ok2 {
					r.malformed.Add(1)
					return
				}
				r.record(idx, ts)
			})
		}
	}
	emitter := ns[0]
	pad := any(make([]byte, size-16)) // boxed once: Emit encodes it and keeps nothing
	// Emit waits for back-pressure up to Config.Timeout; the context keeps a
	// stuck cluster from stretching the phase.
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	name := "verbose (" + handler + ")"
	res, err := measure(blastSpec{
		key: "verbose", system: name, receivers: rs, duration: d, profile: profile,
		publish: func(i int64) error {
			idx, ts := stamp(i)
			return emitter.EmitContext(ctx, "blast", idx, ts, pad)
		},
	})
	if err != nil {
		return res, err
	}
	var dropped, overflowed uint64
	for _, n := range ns {
		s := n.Stats()
		dropped += s.HandlerDropped
		overflowed += s.Overflowed
	}
	if dropped > 0 || overflowed > 0 {
		note := fmt.Sprintf("handler drops %d, overflowed %d", dropped, overflowed)
		if res.Note != "" {
			note = res.Note + "; " + note
		}
		res.Note = note
	}
	return res, nil
}

// waitLinks polls until every node has a connected link to every other.
func waitLinks(ns []*mesh.Node, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		up := true
		for _, n := range ns {
			c := 0
			for _, p := range n.Peers() {
				if p.State() == mesh.Connected {
					c++
				}
			}
			if c < len(ns)-1 {
				up = false
				break
			}
		}
		if up {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natsbench: links of the full mesh not up after %v", limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
