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
//
// The buffer grows with need and shrinks back at rest, so that a node's
// cost at rest does not grow with its links: an idle link holds minBuffer,
// not the 64 KiB that a busy one reads into. A read that fills all the room
// there was doubles the target size (up to maxBuffer); shrinkAfter reads in
// a row that each fill less than an eighth of it halve it (down to
// minBuffer). The buffer takes the target size at a fill that finds it empty,
// so a resize copies nothing.
const (
	minBuffer   = 4 << 10  // an idle link's buffer
	maxBuffer   = 64 << 10 // a busy link's: under load a read fills what is left of it
	shrinkAfter = 16       // small reads in a row before the target halves
)

// frameReader reads length-prefixed frames from r.
type frameReader struct {
	r     io.Reader
	buf   []byte
	rd    int // buf[rd:wr] is read from r, not yet handed out
	wr    int
	size  int // the target size of buf, minBuffer to maxBuffer
	small int // reads in a row that filled less than size/8
}

// newFrameReader starts with pending, bytes already read from r (what the
// handshake's reader held beyond the HELLO).
func newFrameReader(r io.Reader, pending []byte) *frameReader {
	fr := &frameReader{r: r, size: minBuffer}
	fr.buf = make([]byte, max(minBuffer, len(pending)+minBuffer/4))
	fr.wr = copy(fr.buf, pending)
	return fr
}

// buffered is the number of bytes read and not yet handed out.
func (fr *frameReader) buffered() int { return fr.wr - fr.rd }

// fill reads at least once more from r, making room for need unread bytes
// first. It invalidates every body handed out so far.
func (fr *frameReader) fill(need int) error {
	slack := fr.size / 4 // less room than this left: compact (or resize) first
	if len(fr.buf)-fr.rd < need || len(fr.buf)-fr.wr < slack || len(fr.buf) != fr.size && fr.buffered() == 0 {
		buf := fr.buf
		switch want := max(fr.size, need+slack); {
		case len(buf) < want, len(buf) > want && fr.buffered() <= want-slack:
			buf = make([]byte, want) // grown, a frame larger than the buffer, or back to size
		}
		fr.wr = copy(buf, fr.buf[fr.rd:fr.wr])
		fr.buf, fr.rd = buf, 0
	}
	room := len(fr.buf) - fr.wr
	n, err := fr.r.Read(fr.buf[fr.wr:])
	fr.wr += n
	fr.adapt(n, room)
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// adapt moves the target size after a read of n bytes into room.
func (fr *frameReader) adapt(n, room int) {
	switch {
	case n == room && fr.size < maxBuffer:
		fr.size, fr.small = fr.size*2, 0
	case n < fr.size/8 && fr.size > minBuffer:
		if fr.small++; fr.small >= shrinkAfter {
			fr.size, fr.small = fr.size/2, 0
		}
	default:
		fr.small = 0
	}
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
