package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/verbosemesh/verbose/internal/benchkit"
)

// The raw-TCP baseline: the same shape as the mesh blast with nothing but
// the wire. One writer goroutine writes length-prefixed frames through a
// bufio.Writer per connection to receivers reader connections on loopback;
// each reader counts frames (and, paced, records their latency).

// tcpResult is the baseline's figures.
type tcpResult struct {
	Receivers int     `json:"receivers"`
	Frames    int64   `json:"frames"`
	Seconds   float64 `json:"seconds"`
	EvPerSec  float64 `json:"ev_s"` // frames/s per receiver
	// CPUPerDelivery is the process's CPU time (user and system) per frame
	// delivered to a reader, in ns: unlike ev/s, it does not move with
	// what else the machine runs.
	CPUPerDelivery float64 `json:"cpu_ns_per_delivery"`
	// Runs are the frames/s per receiver of each throughput run: before
	// the blast and, when the blast ran, again after it. The figures above
	// are the faster run's, so that a slow moment of the machine during
	// one baseline cannot flatter the ratio.
	Runs []float64 `json:"runs"`
}

// tcpThroughput runs the baseline's blast and returns its figures.
func tcpThroughput(receivers, size int, d time.Duration) (*tcpResult, error) {
	cpu0 := processCPU()
	sent, elapsed, _, err := tcpRun(receivers, size, d, 0)
	if err != nil {
		return nil, err
	}
	ev := float64(sent) / elapsed.Seconds()
	return &tcpResult{Receivers: receivers, Frames: sent, Seconds: elapsed.Seconds(), EvPerSec: ev,
		CPUPerDelivery: cpuPerDelivery(processCPU()-cpu0, sent*int64(receivers)), Runs: []float64{ev}}, nil
}

// faster keeps the faster of two baseline runs, with both in Runs.
func (t *tcpResult) faster(again *tcpResult) *tcpResult {
	runs := append(append([]float64(nil), t.Runs...), again.Runs...)
	best := t
	if again.EvPerSec > t.EvPerSec {
		best = again
	}
	out := *best
	out.Runs = runs
	return &out
}

// tcpRun writes frames from one goroutine, as fast as possible for dur
// (rate 0) or paced at rate for dur, then closes the write sides and waits
// for every reader to reach EOF. It returns frames sent, the time from the
// first write to the last reader done, and per-reader latency samples.
func tcpRun(receivers, size int, dur time.Duration, rate int) (sent int64, elapsed time.Duration, samples [][]int64, err error) {
	rig, err := benchkit.NewRig(receivers)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("meshbench: %w", err)
	}
	defer rig.Close()
	samples = make([][]int64, receivers)
	counts := make([]int64, receivers)
	errs := make([]error, receivers)
	var wg sync.WaitGroup
	for i, c := range rig.In {
		var on func([]byte)
		if rate > 0 {
			samples[i] = make([]int64, 0, int(dur.Seconds()*float64(rate))+16)
			on = func(p []byte) {
				ts := int64(binary.BigEndian.Uint64(p[8:16]))
				samples[i] = append(samples[i], time.Now().UnixNano()-ts)
			}
		}
		wg.Go(func() { counts[i], errs[i] = benchkit.ReadFrames(c, size, on) })
	}
	ws := make([]*bufio.Writer, receivers)
	for i, c := range rig.Out {
		ws[i] = bufio.NewWriterSize(c, benchkit.BufSize)
	}
	buf := make([]byte, 4+size)
	binary.BigEndian.PutUint32(buf[:4], uint32(size))
	start := time.Now()
	end := start.Add(dur)
	var werr error
	if rate == 0 {
		for ; werr == nil; sent++ {
			if sent%1024 == 0 && time.Now().After(end) {
				break
			}
			frame(buf[4:], sent, 0)
			for _, w := range ws {
				if _, werr = w.Write(buf); werr != nil {
					break
				}
			}
		}
	} else {
		p := newPacer(rate)
		total := int64(dur.Seconds() * float64(rate))
		for ; sent < total && werr == nil; sent++ {
			p.wait(int(sent))
			frame(buf[4:], sent, time.Now().UnixNano())
			for _, w := range ws {
				if _, werr = w.Write(buf); werr == nil {
					werr = w.Flush()
				}
				if werr != nil {
					break
				}
			}
		}
	}
	for i, w := range ws {
		if ferr := w.Flush(); ferr != nil && werr == nil {
			werr = ferr
		}
		rig.Out[i].(*net.TCPConn).CloseWrite()
	}
	wg.Wait()
	elapsed = time.Since(start)
	if werr != nil {
		return sent, elapsed, samples, fmt.Errorf("meshbench: tcp baseline write: %w", werr)
	}
	for i := range counts {
		if errs[i] != nil {
			return sent, elapsed, samples, fmt.Errorf("meshbench: tcp baseline reader %d: %w", i, errs[i])
		}
		if counts[i] != sent {
			return sent, elapsed, samples, fmt.Errorf("meshbench: tcp baseline reader %d got %d of %d frames", i, counts[i], sent)
		}
	}
	return sent, elapsed, samples, nil
}
