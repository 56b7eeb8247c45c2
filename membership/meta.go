package membership

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/memberlist"
)

// Meta is what a node tells the cluster about itself. It travels as
// memberlist node metadata, so its encoding must stay under
// memberlist.MetaMaxSize (512 bytes).
type Meta struct {
	RelayAddr string // where the node accepts relay links ("" until it listens)
	Channel   string // the node's channel; members of another channel are ignored
	Version   int    // relay protocol version
	// ActiveView is the node's partial-view size (mesh's Config.ActiveView),
	// 0 when it links every member. Nodes that differ on whether they keep a
	// partial view cannot link each other. A member that does not say (a
	// build before this field) reads as -1.
	ActiveView int
}

// ErrMetaTooLarge is returned when an encoded Meta would not fit in
// memberlist's node metadata.
var ErrMetaTooLarge = errors.New("membership: meta too large")

// wireMeta is the encoded form. Leaving is not part of Meta: it is our own
// signal, set just before a graceful leave, because memberlist's public API
// does not tell a receiver whether a node left or died (Node.State handed to
// EventDelegate is never updated by memberlist v0.5.4).
type wireMeta struct {
	RelayAddr string `codec:"r"`
	Channel   string `codec:"c"`
	Version   int    `codec:"v"`
	Leaving   bool   `codec:"l,omitempty"`
	// View is Meta.ActiveView; absent (nil) from builds before it, which
	// ignore it (msgpack maps: an unknown key is skipped).
	View *int `codec:"a,omitempty"`
}

var metaHandle = &codec.MsgpackHandle{}

func encodeMeta(m Meta, leaving bool) ([]byte, error) {
	var out []byte
	w := wireMeta{RelayAddr: m.RelayAddr, Channel: m.Channel, Version: m.Version, Leaving: leaving}
	if m.ActiveView >= 0 {
		w.View = &m.ActiveView
	}
	if err := codec.NewEncoderBytes(&out, metaHandle).Encode(&w); err != nil {
		return nil, fmt.Errorf("membership: encode meta: %w", err)
	}
	if len(out) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrMetaTooLarge, len(out), memberlist.MetaMaxSize)
	}
	return out, nil
}

// decodeMeta never panics on foreign or corrupt bytes: anything that is not
// our encoding is an error, and the caller treats that node as not ours.
func decodeMeta(b []byte) (Meta, bool, error) {
	if len(b) == 0 {
		return Meta{}, false, errors.New("membership: decode meta: empty")
	}
	var w wireMeta
	if err := codec.NewDecoderBytes(b, metaHandle).Decode(&w); err != nil {
		return Meta{}, false, fmt.Errorf("membership: decode meta: %w", err)
	}
	view := -1
	if w.View != nil && *w.View >= 0 { // a negative size is no size
		view = *w.View
	}
	return Meta{RelayAddr: w.RelayAddr, Channel: w.Channel, Version: w.Version, ActiveView: view}, w.Leaving, nil
}
