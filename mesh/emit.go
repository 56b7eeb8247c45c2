package mesh

import (
	"context"
	"fmt"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
	"github.com/verbosemesh/verbose/relay"
)

// Emit sends an event to every other node; this node's own handlers never
// see it. It returns once the event is in every link's buffer. It may wait
// while a connected peer's buffer is full, never longer than Timeout (that
// peer is then dropped and redialled).
func (n *Node) Emit(name string, args ...any) error {
	return n.EmitContext(context.Background(), name, args...)
}

// EmitContext is Emit with a context: if ctx ends while Emit waits for
// buffer space, it returns ctx.Err() and emits nothing.
func (n *Node) EmitContext(ctx context.Context, name string, args ...any) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: name must be 1 to %d bytes, got %d", ErrBadEvent, MaxNameLen, len(name))
	}
	if args == nil {
		args = []any{}
	}
	raw, release, err := wire.EncodeArgs(args)
	defer release()
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrBadEvent, name, err)
	}
	n.emitMu.Lock()
	defer n.emitMu.Unlock()
	if n.isClosed() {
		return ErrClosed
	}
	if err := n.waitSpace(ctx, n.router.snapshot()); err != nil {
		return err
	}
	env := wire.Envelope{Origin: n.id, Boot: n.boot, Seq: n.seq, Name: name, Path: n.selfPath, Args: raw}
	payload := wire.CutEnvelope(&n.payloads, &env)
	if len(payload)+64 > n.cfg.MaxFrameSize {
		return fmt.Errorf("%w: %q: %d bytes encoded, MaxFrameSize is %d", ErrBadEvent, name, len(payload), n.cfg.MaxFrameSize)
	}
	n.seq++
	n.router.emit(env.Seq, payload)
	n.stats.emitted.Add(1)
	return nil
}

// waitSpace is Emit's back-pressure: it waits while a connected peer's
// buffer is full, at most Timeout per peer; a peer stuck that long is dropped.
//
// The check per link is two atomic loads (relay keeps Buffered lock-free
// for this); only a full buffer takes the link's lock, in WaitSpace.
func (n *Node) waitSpace(ctx context.Context, links []*relay.Link) error {
	waited := false
	for _, l := range links {
		if l.State() != relay.Connected || l.Buffered() < n.cfg.BufferMax {
			continue
		}
		waited = true
		wctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
		err := l.WaitSpace(wctx)
		cancel()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Warn("dropping a stuck peer", "peer", l.RemoteID(), "addr", l.Addr(), "buffered", l.Buffered())
		l.Drop(ErrPeerStuck)
	}
	// EmitContext checked before the wait; Close may have come during it.
	if waited && n.isClosed() {
		return ErrClosed
	}
	return nil
}
