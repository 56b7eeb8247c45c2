package mesh

import (
	"context"
	"fmt"

	"github.com/verbosemesh/verbose/mesh/internal/wire"
)

// Emit sends an event to every other node; this node's own handlers never
// see it. It returns once the event is in every link's buffer or held for
// a link by flow control. It waits while one of this node's events waits
// for a consumer (back-pressure: a peer that has not granted more, or whose
// buffer is full); a consumer that takes nothing for Timeout is declared
// slow and waited for no more, so a stuck consumer stalls Emit once, for at
// most Timeout.
func (n *Node) Emit(name string, args ...any) error {
	return n.EmitContext(context.Background(), name, args...)
}

// EmitContext is Emit with a context: if ctx ends while Emit waits for
// its consumers, it returns ctx.Err() and emits nothing.
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
	if err := n.waitFlow(ctx); err != nil {
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
