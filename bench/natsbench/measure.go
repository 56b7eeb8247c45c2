package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one system's figures in one repetition.
type result struct {
	Key       string  `json:"key"`    // tcp, verbose, nats: as --systems names it
	System    string  `json:"system"` // for people: "verbose (on)"
	Receivers int     `json:"receivers"`
	Sent      int64   `json:"sent"`
	Delivered int64   `json:"delivered"` // distinct messages over all receivers
	Seconds   float64 `json:"seconds"`   // first publish to the last delivery
	EvPerSec  float64 `json:"ev_s"`      // deliveries per receiver per second
	// Ratio is EvPerSec over raw TCP's in the same repetition (the faster
	// of its two runs); 1 for that run itself.
	Ratio          float64   `json:"ratio"`
	Loss           int64     `json:"loss"` // sent × receivers − delivered
	Dups           int64     `json:"dups"`
	Latency        quantiles `json:"latency"`             // under blast, every 64th message
	CPUPerDelivery float64   `json:"cpu_ns_per_delivery"` // process CPU / deliveries
	// OtherCores is the CPU the rest of the machine used during the phase
	// (/proc/stat's busy time less this process's), in cores: the noise
	// the figures were taken under. The load average cannot say it, as it
	// counts this process's own threads. -1: unknown.
	OtherCores float64 `json:"other_cores"`
	Note       string  `json:"note,omitempty"`
}

// processCPU is the CPU time the process has used so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineBusy is the CPU time the whole machine has spent busy (user,
// nice, system, irq, softirq, steal in /proc/stat, at USER_HZ 100).
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, false
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond, true
}

// otherCores is the rest of the machine's CPU over wall, in cores, from
// the machine's busy time and this process's over the same span.
func otherCores(busy, own, wall time.Duration) float64 {
	if wall <= 0 {
		return -1
	}
	return max(0, (busy-own).Seconds()/wall.Seconds())
}

// blastSpec is what a system hands measure.
type blastSpec struct {
	key       string // tcp, verbose, nats: as --systems names it
	system    string
	receivers []*receiver
	duration  time.Duration
	// publish sends message idx to every receiver; it may block (Emit's
	// back-pressure). An error ends the publishing early and is reported.
	publish func(idx int64) error
	// finish pushes out what the publisher buffered (nil: nothing to do).
	finish  func() error
	profile io.Writer // non-nil: a CPU profile of the phase
}

// measure publishes as fast as publish returns for the duration, waits for
// the receivers (until all have everything, or 3 s without progress, or
// 30 s), and computes the figures.
func measure(s blastSpec) (result, error) {
	r := result{Key: s.key, System: s.system, Receivers: len(s.receivers)}
	runtime.GC() // the previous phase's garbage is not this one's
	if s.profile != nil {
		if err := pprof.StartCPUProfile(s.profile); err != nil {
			return r, fmt.Errorf("natsbench: cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	busy0, busyOK := machineBusy()
	cpu0 := processCPU()
	start := time.Now()
	end := start.Add(s.duration)
	var sent int64
	var perr error
	for ; ; sent++ {
		if sent%256 == 0 && time.Now().After(end) {
			break
		}
		if perr = s.publish(sent); perr != nil {
			break
		}
	}
	if s.finish != nil {
		if err := s.finish(); err != nil && perr == nil {
			perr = err
		}
	}
	last, complete := drain(s.receivers, sent, 3*time.Second, 30*time.Second)
	cpu := processCPU() - cpu0
	wall := time.Since(start)
	busy1, busyOK1 := machineBusy()
	r.OtherCores = -1
	if busyOK && busyOK1 {
		r.OtherCores = otherCores(busy1-busy0, cpu, wall)
	}
	if s.profile != nil {
		pprof.StopCPUProfile()
	}
	r.Sent = sent
	r.Seconds = last.Sub(start).Seconds()
	for _, rc := range s.receivers {
		r.Delivered += rc.distinct.Load()
		r.Dups += rc.dups.Load() + rc.malformed.Load()
	}
	r.Loss = sent*int64(len(s.receivers)) - r.Delivered
	if r.Seconds > 0 && len(s.receivers) > 0 {
		r.EvPerSec = float64(r.Delivered) / float64(len(s.receivers)) / r.Seconds
	}
	if r.Delivered > 0 {
		r.CPUPerDelivery = float64(cpu.Nanoseconds()) / float64(r.Delivered)
	}
	r.Latency = quantilesOf(s.receivers)
	if perr != nil {
		r.Note = fmt.Sprintf("publishing stopped early: %v", perr)
	}
	if !complete && r.Note == "" {
		r.Note = "receivers incomplete: loss counted"
	}
	return r, nil
}
