package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkReader returns at most a random 1..max bytes per Read.
type chunkReader struct {
	r   io.Reader
	rng *rand.Rand
	max int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n := 1 + c.rng.IntN(c.max)
	return c.r.Read(p[:min(n, len(p))])
}

func lengthPrefixed(bodies ...[]byte) []byte {
	var b []byte
	for _, body := range bodies {
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
	}
	return b
}

// Frames come out whole and in order whatever the read boundaries, bodies
// larger than the buffer included, each capped to its length; the bodies
// taken since the last read stay as they were until the next one.
func TestFrameReaderReassemblesAnyChunking(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var bodies [][]byte
	for i := range 400 {
		n := rng.IntN(300)
		if i%50 == 7 {
			n = maxBuffer + rng.IntN(3*maxBuffer) // larger than the buffer
		}
		body := make([]byte, n)
		for j := range body {
			body[j] = byte(i + j)
		}
		bodies = append(bodies, body)
	}
	stream := lengthPrefixed(bodies...)
	for _, maxChunk := range []int{1, 7, 4096, 1 << 20} {
		pending := stream[:min(10, len(stream))] // as if the handshake read them
		fr := newFrameReader(&chunkReader{r: bytes.NewReader(stream[len(pending):]), rng: rng, max: maxChunk}, pending)
		for i := 0; i < len(bodies); {
			b, err := fr.next(1 << 30)
			if err != nil {
				t.Fatalf("chunks of %d: frame %d: %v", maxChunk, i, err)
			}
			batch := [][]byte{b}
			for {
				b, ok, err := fr.take(1 << 30)
				if err != nil {
					t.Fatalf("chunks of %d: take after frame %d: %v", maxChunk, i, err)
				}
				if !ok {
					break
				}
				batch = append(batch, b)
			}
			for _, b := range batch { // all of them still intact
				if cap(b) != len(b) {
					t.Fatalf("chunks of %d: body cap %d > len %d", maxChunk, cap(b), len(b))
				}
				if i >= len(bodies) || !bytes.Equal(b, bodies[i]) {
					t.Fatalf("chunks of %d: frame %d differs (len %d)", maxChunk, i, len(b))
				}
				i++
			}
		}
		if _, err := fr.next(1 << 30); err != io.EOF {
			t.Fatalf("chunks of %d: after the last frame: %v, want EOF", maxChunk, err)
		}
		if len(fr.buf) > maxBuffer {
			t.Fatalf("chunks of %d: buffer of %d bytes after the large frames, want at most %d", maxChunk, len(fr.buf), maxBuffer)
		}
	}
}

// A busy connection reads into the same buffer: no allocation per read.
func TestFrameReaderReusesItsBuffer(t *testing.T) {
	frame := lengthPrefixed(make([]byte, 200))
	r := &repeatReader{frame: frame}
	fr := newFrameReader(r, nil)
	for range 100 { // grow to the busy size first
		if _, err := fr.next(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := fr.next(1 << 20); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.2f allocations per frame, want 0", allocs)
	}
}

// The buffer grows to maxBuffer while reads fill it, and shrinks back to
// minBuffer once the link reads little: an idle link costs 4 KiB, not 64.
func TestFrameReaderGrowsUnderLoadAndShrinksAtRest(t *testing.T) {
	frame := lengthPrefixed(make([]byte, 100))
	r := &switchReader{busy: &repeatReader{frame: frame}}
	fr := newFrameReader(r, nil)
	if len(fr.buf) != minBuffer {
		t.Fatalf("a new link's buffer: %d bytes, want %d", len(fr.buf), minBuffer)
	}
	for i := 0; len(fr.buf) < maxBuffer; i++ {
		if i > 10000 {
			t.Fatalf("busy: buffer still %d bytes after %d frames, want %d", len(fr.buf), i, maxBuffer)
		}
		if _, err := fr.next(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	// At rest: each read brings one frame (what a trickle of events does).
	r.trickle = true
	for i := 0; len(fr.buf) > minBuffer; i++ {
		if i > 10000 {
			t.Fatalf("at rest: buffer still %d bytes after %d frames, want %d", len(fr.buf), i, minBuffer)
		}
		if _, err := fr.next(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	if fr.size != minBuffer || len(fr.buf) != minBuffer {
		t.Fatalf("at rest: target %d, buffer %d, want %d", fr.size, len(fr.buf), minBuffer)
	}
}

// switchReader reads from busy as much as it is given, or, once trickle is
// set, one frame per read.
type switchReader struct {
	busy    *repeatReader
	trickle bool
}

func (r *switchReader) Read(p []byte) (int, error) {
	if r.trickle {
		p = p[:min(len(p), len(r.busy.frame)-r.busy.off)]
	}
	return r.busy.Read(p)
}

// repeatReader returns frame over and over, in whatever room Read is given.
type repeatReader struct {
	frame []byte
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.frame[r.off:])
		n += c
		r.off = (r.off + c) % len(r.frame)
	}
	return n, nil
}

func TestFrameReaderErrors(t *testing.T) {
	// A length over the limit fails before the body is read.
	fr := newFrameReader(bytes.NewReader(lengthPrefixed(make([]byte, 100))), nil)
	if _, err := fr.next(99); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("oversized frame: %v", err)
	}
	// A stream cut inside a frame, header or body, is unexpected.
	whole := lengthPrefixed([]byte("hello"))
	for _, cut := range []int{2, 6} {
		fr := newFrameReader(bytes.NewReader(whole[:cut]), nil)
		if _, err := fr.next(1 << 20); err != io.ErrUnexpectedEOF {
			t.Fatalf("cut at %d: %v, want ErrUnexpectedEOF", cut, err)
		}
	}
}

// The link's frame reader cuts the same bodies out of any byte stream, read
// in any chunks, as ReadFrame does, and fails where ReadFrame fails.
func FuzzFrameReader(f *testing.F) {
	f.Add(lengthPrefixed([]byte("ab"), nil, []byte("cde")), uint8(1))
	f.Add([]byte{0, 0, 0, 9, 1, 2}, uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(7))
	const limit = 4096
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		rng := rand.New(rand.NewPCG(uint64(chunk), uint64(len(stream))))
		fr := newFrameReader(&chunkReader{r: bytes.NewReader(stream), rng: rng, max: int(chunk%64) + 1}, nil)
		ref := bytes.NewReader(stream)
		for {
			body, ok, err := fr.take(limit) // what is buffered, then read more
			if !ok && err == nil {
				body, err = fr.next(limit)
			}
			n, rerr := readLength(ref)
			if rerr == nil && uint64(n) > limit {
				rerr = ErrFrameTooLarge
			}
			var want []byte
			if rerr == nil {
				want = make([]byte, n)
				if _, rerr = io.ReadFull(ref, want); rerr == io.EOF {
					rerr = io.ErrUnexpectedEOF
				}
			}
			if (err == nil) != (rerr == nil) {
				t.Fatalf("frame reader: %x, %v; ReadFrame's reading: %x, %v", body, err, want, rerr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(body, want) || cap(body) != len(body) {
				t.Fatalf("body %x (cap %d), want %x", body, cap(body), want)
			}
		}
	})
}
