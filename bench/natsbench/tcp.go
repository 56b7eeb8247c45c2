package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/verbosemesh/verbose/internal/benchkit"
)

// The raw-TCP baseline, as meshbench's: one writer goroutine writes
// length-prefixed frames through a 64 KiB bufio.Writer per connection; each
// of the receivers' loopback connections has a reader goroutine with a
// 64 KiB bufio.Reader. Nothing but the wire: no acknowledgement, no
// routing, no handler but the bookkeeping every system shares.

func runTCP(receivers, size int, d time.Duration, profile io.Writer) (result, error) {
	rig, err := benchkit.NewRig(receivers)
	if err != nil {
		return result{}, fmt.Errorf("natsbench: %w", err)
	}
	defer rig.Close()
	out, in := rig.Out, rig.In
	rs := newReceivers(receivers)
	errs := make([]error, receivers)
	var wg sync.WaitGroup
	for i, c := range in {
		wg.Go(func() { _, errs[i] = benchkit.ReadFrames(c, size, rs[i].recordBytes) })
	}
	ws := make([]*bufio.Writer, receivers)
	for i, c := range out {
		ws[i] = bufio.NewWriterSize(c, benchkit.BufSize)
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
