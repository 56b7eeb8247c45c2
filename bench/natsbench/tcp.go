package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The raw-TCP baseline, as meshbench's: one writer goroutine writes
// length-prefixed frames through a 64 KiB bufio.Writer per connection; each
// of the receivers' loopback connections has a reader goroutine with a
// 64 KiB bufio.Reader. Nothing but the wire: no acknowledgement, no
// routing, no handler but the bookkeeping every system shares.

const tcpBufSize = 64 << 10

func runTCP(receivers, size int, d time.Duration, profile io.Writer) (result, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, fmt.Errorf("natsbench: tcp: %w", err)
	}
	defer ln.Close()
	var out, in []net.Conn
	defer func() {
		for _, c := range append(out, in...) {
			c.Close()
		}
	}()
	for range receivers {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return result{}, fmt.Errorf("natsbench: tcp: %w", err)
		}
		out = append(out, c)
		s, err := ln.Accept()
		if err != nil {
			return result{}, fmt.Errorf("natsbench: tcp: %w", err)
		}
		in = append(in, s)
	}
	rs := newReceivers(receivers)
	errs := make([]error, receivers)
	var wg sync.WaitGroup
	for i, c := range in {
		wg.Go(func() { errs[i] = readFrames(c, size, rs[i]) })
	}
	ws := make([]*bufio.Writer, receivers)
	for i, c := range out {
		ws[i] = bufio.NewWriterSize(c, tcpBufSize)
	}
	buf := make([]byte, 4+size)
	binary.BigEndian.PutUint32(buf[:4], uint32(size))
	res, err := measure(blastSpec{
		key: "tcp", system: "raw TCP", receivers: rs, duration: d, profile: profile,
		publish: func(idx int64) error {
			message(buf[4:], idx)
			for _, w := range ws {
				if _, err := w.Write(buf); err != nil {
					return err
				}
			}
			return nil
		},
		finish: func() error {
			var ferr error
			for i, w := range ws {
				if err := w.Flush(); err != nil && ferr == nil {
					ferr = err
				}
				if err := out[i].(*net.TCPConn).CloseWrite(); err != nil && ferr == nil {
					ferr = err
				}
			}
			return ferr
		},
	})
	wg.Wait()
	if err != nil {
		return res, err
	}
	for i, e := range errs {
		if e != nil {
			return res, fmt.Errorf("natsbench: tcp reader %d: %w", i, e)
		}
	}
	return res, nil
}

// readFrames records frames from c until EOF.
func readFrames(c net.Conn, size int, r *receiver) error {
	br := bufio.NewReaderSize(c, tcpBufSize)
	buf := make([]byte, 4+size)
	for {
		if _, err := io.ReadFull(br, buf[:4]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if l := int(binary.BigEndian.Uint32(buf[:4])); l != size {
			return fmt.Errorf("frame of %d bytes, want %d", l, size)
		}
		if _, err := io.ReadFull(br, buf[4:]); err != nil {
			return err
		}
		r.recordBytes(buf[4:])
	}
}
