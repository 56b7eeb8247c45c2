// Package benchkit is what cmd/meshbench and bench/natsbench share: the
// raw-TCP baseline's loopback connections and its frame reader, so that both
// measure verbose against the same wire.
package benchkit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// BufSize is the baseline's bufio size on each side of a connection.
const BufSize = 64 << 10

// Rig is n loopback TCP connections: Out[i] is the writer's end of the
// connection whose reader's end is In[i].
type Rig struct {
	Out, In []net.Conn
}

// NewRig connects n pairs over 127.0.0.1.
func NewRig(n int) (*Rig, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tcp baseline: %w", err)
	}
	defer ln.Close()
	r := &Rig{}
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("tcp baseline: %w", err)
		}
		s, err := ln.Accept()
		if err != nil {
			c.Close()
			r.Close()
			return nil, fmt.Errorf("tcp baseline: %w", err)
		}
		r.Out, r.In = append(r.Out, c), append(r.In, s)
	}
	return r, nil
}

// Close closes every connection.
func (r *Rig) Close() {
	for _, c := range append(r.Out, r.In...) {
		c.Close()
	}
}

// ReadFrames reads length-prefixed frames of size bytes from c until EOF,
// handing each frame's payload to onFrame (nil: count only; the payload is
// valid during the call), and returns how many it read.
func ReadFrames(c net.Conn, size int, onFrame func(payload []byte)) (int64, error) {
	br := bufio.NewReaderSize(c, BufSize)
	buf := make([]byte, 4+size)
	var n int64
	for {
		if _, err := io.ReadFull(br, buf[:4]); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		if l := int(binary.BigEndian.Uint32(buf[:4])); l != size {
			return n, fmt.Errorf("tcp baseline: frame of %d bytes, want %d", l, size)
		}
		if _, err := io.ReadFull(br, buf[4:]); err != nil {
			return n, err
		}
		n++
		if onFrame != nil {
			onFrame(buf[4:])
		}
	}
}
