package memnet_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/verbosemesh/verbose/relay/memnet"
)

func TestRoundTrip(t *testing.T) {
	n := memnet.New(1)
	c, s := connect(t, n, "a", "b")
	if got := c.RemoteAddr().String(); got != s.LocalAddr().String() || got[:2] != "b:" {
		t.Errorf("client remote %q, server local %q", got, s.LocalAddr())
	}
	if got := s.RemoteAddr().String(); got != c.LocalAddr().String() || got[:2] != "a:" {
		t.Errorf("server remote %q, client local %q", got, c.LocalAddr())
	}
	if c.LocalAddr().Network() != "memnet" {
		t.Errorf("network %q", c.LocalAddr().Network())
	}
	mustWrite(t, c, "hello ")
	mustWrite(t, c, "world")
	if got := readN(t, s, 11); got != "hello world" {
		t.Errorf("server read %q", got)
	}
	mustWrite(t, s, "pong")
	if got := readN(t, c, 4); got != "pong" {
		t.Errorf("client read %q", got)
	}
	// A short buffer reads part of a chunk; the rest stays.
	mustWrite(t, c, "abcdef")
	if got := readN(t, s, 2); got != "ab" {
		t.Errorf("read %q", got)
	}
	if got := readN(t, s, 4); got != "cdef" {
		t.Errorf("read %q", got)
	}
	if n.Conns() != 1 {
		t.Errorf("Conns() = %d, want 1", n.Conns())
	}
}

func TestCloseEOF(t *testing.T) {
	n := memnet.New(1)
	c, s := connect(t, n, "a", "b")
	mustWrite(t, c, "last words")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second close: %v, want net.ErrClosed", err)
	}
	if got := readN(t, s, 10); got != "last words" {
		t.Errorf("read %q", got)
	}
	if _, err := s.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read after drain: %v, want io.EOF", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, memnet.ErrBrokenPipe) {
		t.Errorf("write to closed peer: %v, want ErrBrokenPipe", err)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read on closed end: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write on closed end: %v, want net.ErrClosed", err)
	}
	if n.Conns() != 1 {
		t.Errorf("half-closed: Conns() = %d, want 1", n.Conns())
	}
	s.Close()
	if n.Conns() != 0 {
		t.Errorf("closed: Conns() = %d, want 0", n.Conns())
	}
}

func TestCloseUnblocksPeerRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		c, s := connect(t, n, "a", "b")
		done := make(chan error)
		go func() {
			_, err := s.Read(make([]byte, 1))
			done <- err
		}()
		synctest.Wait()
		c.Close()
		if err := <-done; err != io.EOF {
			t.Errorf("blocked read: %v, want io.EOF", err)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

func TestReadDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		c, s := connect(t, n, "a", "b")
		start := time.Now()
		s.SetReadDeadline(start.Add(time.Second))
		if _, err := s.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("read: %v, want a timeout", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("read timed out after %v, want 1s", d)
		}
		// Expired: fails at once even with data waiting.
		mustWrite(t, c, "x")
		if _, err := s.Read(make([]byte, 1)); !isTimeout(err) {
			t.Errorf("read past deadline: %v, want a timeout", err)
		}
		// Cleared: reads again.
		s.SetReadDeadline(time.Time{})
		if got := readN(t, s, 1); got != "x" {
			t.Errorf("read %q", got)
		}
		// Moved while a Read is blocked: the blocked Read obeys the new one.
		s.SetReadDeadline(time.Now().Add(time.Hour))
		done := make(chan error)
		go func() {
			_, err := s.Read(make([]byte, 1))
			done <- err
		}()
		synctest.Wait()
		start = time.Now()
		s.SetDeadline(start.Add(time.Minute))
		if err := <-done; !isTimeout(err) {
			t.Errorf("blocked read: %v, want a timeout", err)
		}
		if d := time.Since(start); d != time.Minute {
			t.Errorf("blocked read timed out after %v, want 1m", d)
		}
	})
}

func TestWriteDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		c, _ := connect(t, n, "a", "b")
		c.SetWriteDeadline(time.Now().Add(time.Second))
		big := make([]byte, 3<<20/2) // more than the 1 MiB buffer
		start := time.Now()
		k, err := c.Write(big)
		if !isTimeout(err) {
			t.Fatalf("write: %v, want a timeout", err)
		}
		if k != 1<<20 {
			t.Errorf("wrote %d bytes before the timeout, want %d", k, 1<<20)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("write timed out after %v, want 1s", d)
		}
	})
}

func TestBackPressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		c, s := connect(t, n, "a", "b")
		const size = 1<<20 + 100
		data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		var mu sync.Mutex
		written := -1
		go func() {
			k, err := c.Write(data)
			if err != nil {
				t.Errorf("write: %v", err)
			}
			mu.Lock()
			written = k
			mu.Unlock()
		}()
		synctest.Wait() // the writer is durably blocked on the full buffer
		mu.Lock()
		if written != -1 {
			t.Fatalf("write of %d bytes returned with a 1 MiB buffer and no reader", size)
		}
		mu.Unlock()
		got := readN(t, s, 4096)
		synctest.Wait()
		mu.Lock()
		if written != size {
			t.Errorf("after a read, write returned %d, want %d", written, size)
		}
		mu.Unlock()
		rest := readN(t, s, size-4096)
		if got+rest != string(data) {
			t.Error("data corrupted across back-pressure")
		}
	})
}

func TestLatency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := memnet.New(1)
		n.SetLatency("a", "b", 50*time.Millisecond)
		c, s := connect(t, n, "a", "b")
		start := time.Now()
		mustWrite(t, c, "one")
		time.Sleep(10 * time.Millisecond)
		mustWrite(t, c, "two")
		if got := readN(t, s, 3); got != "one" {
			t.Errorf("read %q", got)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("first chunk readable after %v, want 50ms", d)
		}
		if got := readN(t, s, 3); got != "two" {
			t.Errorf("read %q", got)
		}
		if d := time.Since(start); d != 60*time.Millisecond {
			t.Errorf("second chunk readable after %v, want 60ms", d)
		}
		// Lowering the latency never reorders bytes already in flight.
		mustWrite(t, s, "slow")
		n.SetLatency("a", "b", 0)
		mustWrite(t, s, "fast")
		start = time.Now()
		if got := readN(t, c, 8); got != "slowfast" {
			t.Errorf("read %q", got)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("reordered-safe read took %v, want 50ms", d)
		}
		// The EOF travels with the same delay as data.
		n.SetDefaultLatency(time.Second) // a-b keeps its own 0
		mustWrite(t, c, "z")
		if got := readN(t, s, 1); got != "z" || time.Since(start) != 50*time.Millisecond {
			t.Errorf("pair latency 0 not kept over the default: %q after %v", got, time.Since(start))
		}
		c2, s2 := connect(t, n, "c", "b") // default latency applies
		start = time.Now()
		c2.Close()
		if _, err := s2.Read(make([]byte, 1)); err != io.EOF || time.Since(start) != time.Second {
			t.Errorf("EOF: %v after %v, want io.EOF after 1s", err, time.Since(start))
		}
	})
}

// TestConcurrent runs many writers and readers on several connections at once
// (meant for -race) and checks every byte arrives in order.
func TestConcurrent(t *testing.T) {
	n := memnet.New(7)
	const conns, writes, size = 4, 200, 3000
	var wg sync.WaitGroup
	for i := range conns {
		c, s := connect(t, n, "a", "b")
		want := make([]byte, 0, writes*size)
		for w := range writes {
			want = append(want, bytes.Repeat([]byte{byte(i*writes + w)}, size)...)
		}
		wg.Add(3)
		go func() { // writer
			defer wg.Done()
			for w := range writes {
				if _, err := c.Write(want[w*size : (w+1)*size]); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
			c.Close()
		}()
		go func() { // reader
			defer wg.Done()
			got, err := io.ReadAll(s)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("conn %d: read %d bytes (err %v), want %d in order", i, len(got), err, len(want))
			}
		}()
		go func() { // a concurrent deadline setter, as a link's heartbeat does
			defer wg.Done()
			for range 100 {
				s.SetReadDeadline(time.Now().Add(time.Minute))
				_ = n.Conns()
			}
		}()
	}
	wg.Wait()
}
