package relay

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Read slabs: a connection's reader reads straight into a slab and hands
// out each frame body as a region of it, so a body is neither copied out of
// a read buffer nor allocated on its own. A region, once handed out, is
// never written again (later reads fill the slab further on, then a new
// slab), which keeps the Handler's ownership of its payload.
const (
	slabSize = 32 << 10 // a slab; under load a read fills what is left of it
	minRead  = 4 << 10  // less room than this left: the next read starts a new slab
)

// frameReader reads length-prefixed frames from r.
type frameReader struct {
	r    io.Reader
	slab []byte
	rd   int // slab[rd:wr] is read from r, not yet handed out
	wr   int
}

// newFrameReader starts with pending, bytes already read from r (what the
// handshake's reader held beyond the HELLO).
func newFrameReader(r io.Reader, pending []byte) *frameReader {
	fr := &frameReader{r: r, slab: make([]byte, max(slabSize, len(pending)))}
	fr.wr = copy(fr.slab, pending)
	return fr
}

// buffered is the number of bytes read and not yet handed out.
func (fr *frameReader) buffered() int { return fr.wr - fr.rd }

// fill reads at least once more from r, making room for need unread bytes
// in the slab first.
func (fr *frameReader) fill(need int) error {
	if len(fr.slab)-fr.rd < need || len(fr.slab)-fr.wr < minRead {
		// Move the unread bytes to a new slab: the old one stays as it is
		// for the bodies handed out of it.
		slab := make([]byte, max(slabSize, need+minRead))
		fr.wr = copy(slab, fr.slab[fr.rd:fr.wr])
		fr.slab, fr.rd = slab, 0
	}
	n, err := fr.r.Read(fr.slab[fr.wr:])
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
// length so that no two bodies share bytes.
func (fr *frameReader) next(maxSize int) ([]byte, error) {
	for fr.buffered() < 4 {
		if err := fr.fill(4); err != nil {
			if fr.buffered() > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	n := binary.BigEndian.Uint32(fr.slab[fr.rd:])
	if uint64(n) > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, maxSize)
	}
	size := 4 + int(n)
	for fr.buffered() < size {
		if err := fr.fill(size); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	body := fr.slab[fr.rd+4 : fr.rd+size : fr.rd+size]
	fr.rd += size
	return body, nil
}
