package relay

import (
	"encoding/binary"
	"fmt"
	"io"
)

// The read buffer: a connection's reader reads into one buffer and hands out
// each frame body as a region of it, so a body is neither copied out nor
// allocated on its own, and a busy link allocates nothing per read. A body
// stays valid until the next fill, which moves the unread bytes to the front
// and reads over what was handed out: a Handler copies what it keeps
// (Handler.Receive's contract).
const (
	readSize = 64 << 10 // the buffer; under load a read fills what is left of it
	minRead  = 4 << 10  // less room than this left: the next fill compacts first
)

// frameReader reads length-prefixed frames from r.
type frameReader struct {
	r   io.Reader
	buf []byte
	rd  int // buf[rd:wr] is read from r, not yet handed out
	wr  int
}

// newFrameReader starts with pending, bytes already read from r (what the
// handshake's reader held beyond the HELLO).
func newFrameReader(r io.Reader, pending []byte) *frameReader {
	fr := &frameReader{r: r, buf: make([]byte, max(readSize, len(pending)+minRead))}
	fr.wr = copy(fr.buf, pending)
	return fr
}

// buffered is the number of bytes read and not yet handed out.
func (fr *frameReader) buffered() int { return fr.wr - fr.rd }

// fill reads at least once more from r, making room for need unread bytes
// first. It invalidates every body handed out so far.
func (fr *frameReader) fill(need int) error {
	if len(fr.buf)-fr.rd < need || len(fr.buf)-fr.wr < minRead {
		buf := fr.buf
		switch {
		case len(buf) < need+minRead:
			buf = make([]byte, need+minRead) // a frame larger than the buffer
		case len(buf) > readSize && need+minRead <= readSize:
			buf = make([]byte, readSize) // back to size after a large frame
		}
		fr.wr = copy(buf, fr.buf[fr.rd:fr.wr])
		fr.buf, fr.rd = buf, 0
	}
	n, err := fr.r.Read(fr.buf[fr.wr:])
	fr.wr += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// next returns the next frame's body, at most maxSize bytes, capped to its
// length, reading as much as it needs (which invalidates earlier bodies).
func (fr *frameReader) next(maxSize int) ([]byte, error) {
	for {
		body, ok, err := fr.take(maxSize)
		if ok || err != nil {
			return body, err
		}
		need := 4
		if fr.buffered() >= 4 {
			need += int(binary.BigEndian.Uint32(fr.buf[fr.rd:]))
		}
		if err := fr.fill(need); err != nil {
			if err == io.EOF && fr.buffered() > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// take returns the next frame's body if it is wholly buffered (ok false if
// not), without reading: bodies taken since the last fill all stay valid.
func (fr *frameReader) take(maxSize int) (body []byte, ok bool, err error) {
	if fr.buffered() < 4 {
		return nil, false, nil
	}
	n := binary.BigEndian.Uint32(fr.buf[fr.rd:])
	if uint64(n) > uint64(maxSize) {
		return nil, false, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	size := 4 + int(n)
	if fr.buffered() < size {
		return nil, false, nil
	}
	body = fr.buf[fr.rd+4 : fr.rd+size : fr.rd+size]
	fr.rd += size
	return body, true, nil
}
