package relay

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// This file is the link's driver: the goroutines that do IO and timers and
// carry out what the machine decides. It has no protocol branches.

// run is the link's loop: it obtains connections (dial or attach), serves
// them, backs off between attempts and services timers while down.
func (l *Link) run() {
	defer l.finish()
	bo := l.cfg.NewBackoff()
	bo.Reset()
	attempt, wait := 0, false
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if a := l.takeAttach(); a != nil {
			if l.serve(a.conn, nil, a.remote, true) {
				bo.Reset()
				attempt = 0
			}
			wait = true
			continue
		}
		if !l.outbound {
			if !l.idle(time.Time{}) {
				return
			}
			continue
		}
		if wait && l.takeRedial() {
			bo.Reset()
			attempt, wait = 0, false
		}
		if wait {
			delay := bo.NextBackOff()
			if delay == backoff.Stop {
				l.log.Warn("back-off policy gave up; link stopped")
				return
			}
			attempt++
			l.event(Event{Kind: EventBackoff, Delay: delay, Attempt: attempt})
			if !l.idle(time.Now().Add(delay)) {
				return
			}
			if l.hasAttach() {
				continue
			}
			if l.takeRedial() {
				bo.Reset()
				attempt = 0
			}
		}
		wait = true
		conn, pending, remote, ok := l.dial()
		if ok && l.serve(conn, pending, remote, false) {
			bo.Reset()
			attempt = 0
		}
	}
}

// tick advances the machine's clock (timeouts, acks, heartbeats, expiry)
// and reports what it decided.
func (l *Link) tick() (expired bool, err error) {
	l.mu.Lock()
	expired, err = l.m.Tick(time.Now())
	evs := l.takeEventsLocked()
	l.mu.Unlock()
	l.report(evs)
	return expired, err
}

func (l *Link) finish() {
	l.mu.Lock()
	l.closed = true
	if l.attach != nil {
		l.attach.conn.Close()
		l.attach = nil
	}
	l.setStateLocked(Closed)
	l.mu.Unlock()
	l.cancel()
	close(l.done)
}

func (l *Link) takeAttach() *attachment {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.attach
	l.attach = nil
	return a
}

func (l *Link) hasAttach() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.attach != nil
}

// reportInterval is how often a link that is down reports the drops of
// the payloads sent to it: one Overflow per interval, with their count.
const reportInterval = time.Second

// idle waits while disconnected until until (zero: indefinitely), an attach,
// a Redial (when waiting to redial) or Close, ticking the machine so that the buffer expires on time. It
// returns false when the link must stop.
func (l *Link) idle(until time.Time) bool {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		if l.attach != nil || (l.redial && !until.IsZero()) {
			l.mu.Unlock()
			return true
		}
		next := l.m.NextDeadline()
		now := time.Now()
		var evs []Event
		if len(l.m.events) > 0 {
			// What Send decided while the link was down (drops, coalesced
			// by the machine): reported at most once per reportInterval.
			if at := l.lastReport.Add(reportInterval); now.Before(at) {
				if at.Before(next) {
					next = at
				}
			} else {
				evs = l.takeEventsLocked()
				l.lastReport = now
			}
		}
		l.mu.Unlock()
		l.report(evs)
		if !until.IsZero() {
			if !now.Before(until) {
				return true
			}
			if until.Before(next) {
				next = until
			}
		}
		timer.Reset(max(next.Sub(now), 0))
		select {
		case <-l.stop:
			return false
		case <-l.wake:
		case <-timer.C:
			if expired, _ := l.tick(); expired && !l.outbound {
				l.log.Debug("inbound link expired; stopping")
				return false
			}
		}
	}
}

// serve runs one connection until it ends. attached connections still need
// our HELLO; dialed ones have finished the handshake. It reports whether
// the connection got as far as Connected.
func (l *Link) serve(conn net.Conn, pending []byte, remote Hello, attached bool) bool {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		conn.Close()
		return false
	}
	l.conn, l.dropErr = conn, nil
	if attached {
		l.connAddr = conn.RemoteAddr().String()
	}
	hello := l.m.hello()
	l.mu.Unlock()
	if attached {
		l.event(Event{Kind: EventConnect, PeerID: remote.NodeID})
		if err := writeFrame(conn, Frame{Type: FrameHello, Hello: hello}, l.cfg.Timeout); err != nil {
			l.endHandshake(conn, fmt.Errorf("relay: handshake with %s: %w", conn.RemoteAddr(), err))
			return false
		}
	}
	l.mu.Lock()
	l.m.Connected(remote, time.Now())
	l.remoteID.Store(&remote.NodeID)
	l.setStateLocked(Connected)
	evs := l.takeEventsLocked()
	l.mu.Unlock()
	l.report(evs)

	var cause firstErr
	readerDone := make(chan struct{})
	go l.read(conn, newFrameReader(conn, pending), &cause, readerDone)
	l.write(conn, &cause, readerDone)
	conn.Close()
	<-readerDone
	err := cause.get()
	l.mu.Lock()
	switch {
	case l.closed:
		err = ErrClosed
	case l.dropErr != nil:
		err = l.dropErr
	case l.attach != nil:
		err = errReplaced
	}
	l.conn, l.dropErr = nil, nil
	l.m.Disconnected(err, time.Now())
	l.setStateLocked(Disconnected)
	evs = l.takeEventsLocked()
	l.mu.Unlock()
	l.report(evs)
	return true
}

// firstErr keeps the first reason a connection ended: later errors are
// mostly the echo of the close that the first one caused.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// writeBufs are the writers' batch buffers, shared by every link of the
// process: a link holds one only while it writes. Each link kept its own,
// grown to batchLimit under load and kept for the connection's life: at 100
// nodes of 7 links in one process, 180 MB of buffers, each cold in the cache
// when its link next wrote, and each grown from nothing (the copies and
// zeroing were ~3 % of a blast's CPU). A pooled one is mostly warm.
var writeBufs = sync.Pool{New: func() any { return new([]byte) }}

// write is the connection's writer and timer loop; it returns when the
// connection must end, having recorded why in cause (unless serve knows
// better: Close, Drop, Attach).
func (l *Link) write(conn net.Conn, cause *firstErr, readerDone <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		bp := writeBufs.Get().(*[]byte)
		l.mu.Lock()
		if l.closed || l.dropErr != nil || l.attach != nil {
			l.mu.Unlock()
			return
		}
		now := time.Now()
		buf := l.m.AppendPending((*bp)[:0], now, batchLimit)
		more := l.m.Pending()
		next := l.m.NextDeadline()
		evs := l.takeEventsLocked() // what Send decided (overflow) since the last turn
		l.mu.Unlock()
		l.report(evs)
		if len(buf) > 0 {
			// One write per batch: frames were appended back to back.
			_ = conn.SetWriteDeadline(now.Add(l.cfg.Timeout))
			if _, err := conn.Write(buf); err != nil {
				cause.set(fmt.Errorf("relay: write: %w", err))
				return
			}
		}
		if cap(buf) <= 4*batchLimit { // do not pin a huge one-off batch
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
		if more {
			continue
		}
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-readerDone:
			return
		case <-timer.C:
			if _, err := l.tick(); err != nil {
				cause.set(err)
				return
			}
		}
	}
}

// read is the connection's reader: decode, let the machine judge, deliver.
// On error it records the cause and closes conn, which also unblocks a
// writer stuck on a peer that stopped reading.
//
// It works in batches: one frame, read as needed, then every frame already
// buffered behind it (up to maxBatch), judged under one hold of the link's
// lock and handed to the Handler in one Receive. A batch's payloads are
// regions of the read buffer, valid until the next read, which only comes
// after Receive has returned; the frames are acknowledgeable once it has.
// The clock is read once per batch.
func (l *Link) read(conn net.Conn, fr *frameReader, cause *firstErr, done chan<- struct{}) {
	defer close(done)
	fail := func(err error) {
		cause.set(err)
		conn.Close()
	}
	var batch [][]byte
	for {
		body, err := fr.next(l.cfg.MaxFrameSize)
		if err != nil {
			fail(fmt.Errorf("relay: read: %w", err))
			return
		}
		now := time.Now()
		var (
			last uint64 // seq of the batch's last payload
			bad  error
		)
		batch = batch[:0]
		l.mu.Lock()
		for {
			var (
				p   []byte
				seq uint64
			)
			if dseq, payload, ok := decodeData(body); ok {
				p, seq, err = l.m.ReceiveData(dseq, payload, now)
			} else if f, derr := DecodeFrame(body); derr != nil {
				bad = fmt.Errorf("relay: read: %w", derr)
				break
			} else {
				p, seq, err = l.m.Receive(f, now)
			}
			if err != nil {
				bad = err
				break
			}
			if seq != 0 {
				batch, last = append(batch, p), seq
			}
			if len(batch) == maxBatch {
				break
			}
			var ok bool
			if body, ok, err = fr.take(l.cfg.MaxFrameSize); err != nil {
				bad = fmt.Errorf("relay: read: %w", err)
				break
			} else if !ok {
				break
			}
		}
		evs := l.takeEventsLocked()
		l.mu.Unlock()
		l.report(evs)
		if len(batch) > 0 {
			// Frames before a bad one are delivered, as they would have
			// been had they arrived in an earlier read.
			l.h.Receive(l, batch)
			l.mu.Lock()
			l.m.Delivered(last)
			due := l.m.Pending()
			l.mu.Unlock()
			if due {
				l.poke()
			}
		}
		if bad != nil {
			fail(bad)
			return
		}
	}
}
