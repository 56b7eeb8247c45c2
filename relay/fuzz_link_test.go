package relay

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// fuzzStream is one direction of a link pair: what its sender emitted and
// what any incarnation of its receiver got.
type fuzzStream struct {
	nextK     uint64            // payload k = 1, 2, ... across sender restarts
	kOfSeq    map[uint64]uint64 // current sender incarnation: seq -> k
	dropped   map[uint64]bool   // current incarnation seqs dropped by overflow/expiry
	delivered map[uint64]bool   // k delivered to some receiver incarnation
	lastK     uint64            // last k delivered to the current receiver incarnation
	reported  int               // Overflow + Expired counts
	crashed   int               // payloads lost in a sender's crash (restart)
}

type fuzzSide struct {
	m        *machine
	inflight []Frame // written by this side, not yet read by the other
}

type fuzzHarness struct {
	t     *testing.T
	now   time.Time
	side  [2]*fuzzSide
	out   [2]*fuzzStream // out[i]: the stream side i sends
	boots uint64
}

func newFuzzHarness(t *testing.T) *fuzzHarness {
	h := &fuzzHarness{t: t, now: t0}
	for i := range 2 {
		h.out[i] = &fuzzStream{nextK: 1, kOfSeq: map[uint64]uint64{}, dropped: map[uint64]bool{}, delivered: map[uint64]bool{}}
		h.side[i] = &fuzzSide{m: h.newMachine(i)}
	}
	return h
}

func (h *fuzzHarness) newMachine(i int) *machine {
	h.boots++
	cfg := testConfig(string(rune('a'+i)), h.boots*1000+uint64(i))
	cfg.BufferMax = 6
	return newMachine(cfg, i == 0, h.now)
}

func (h *fuzzHarness) send(i int) {
	s, m := h.out[i], h.side[i].m
	if m.buffered() == m.limit() {
		s.dropped[m.firstSeq()] = true
	}
	m.Send(binary.BigEndian.AppendUint64(nil, s.nextK))
	s.kOfSeq[m.lastSeq] = s.nextK
	s.nextK++
}

// read lets side i read up to n frames the other side wrote.
func (h *fuzzHarness) read(i, n int) {
	from := h.side[1-i]
	in := h.out[1-i]
	for ; n > 0 && len(from.inflight) > 0; n-- {
		f := from.inflight[0]
		from.inflight = from.inflight[1:]
		p, seq, err := h.side[i].m.Receive(f, h.now)
		if err != nil {
			h.t.Fatalf("side %d: receive %+v: %v", i, f, err)
		}
		if seq == 0 {
			continue
		}
		k := binary.BigEndian.Uint64(p)
		if k <= in.lastK {
			h.t.Fatalf("side %d: delivered k=%d after k=%d (duplicate or reorder)", i, k, in.lastK)
		}
		in.lastK = k
		in.delivered[k] = true
		h.side[i].m.Delivered(seq)
	}
}

func (h *fuzzHarness) disconnect(err error) {
	for i, s := range h.side {
		if m := s.m; m.up {
			for k := m.cfg.BufferMax; k < m.buffered(); k++ { // trimmed to BufferMax
				h.out[i].dropped[m.firstSeq()+uint64(k-m.cfg.BufferMax)] = true
			}
		}
		s.m.Disconnected(err, h.now)
		s.inflight = nil
	}
}

func (h *fuzzHarness) connect() {
	if h.side[0].m.up || h.side[1].m.up {
		return
	}
	a, b := h.side[0].m, h.side[1].m
	ha, hb := a.hello(), b.hello()
	a.Connected(hb, h.now)
	b.Connected(ha, h.now)
}

func (h *fuzzHarness) write(i int) {
	h.side[i].inflight = append(h.side[i].inflight, drain(h.t, h.side[i].m, h.now)...)
}

func (h *fuzzHarness) tick(d time.Duration) {
	h.now = h.now.Add(d)
	for i, s := range h.side {
		if s.m.up {
			if _, err := s.m.Tick(h.now); err != nil {
				h.disconnect(err)
			}
			continue
		}
		// Expiry forgets the whole buffer: record which seqs went.
		first, n := s.m.firstSeq(), s.m.buffered()
		if exp, _ := s.m.Tick(h.now); exp {
			for k := range n {
				h.out[i].dropped[first+uint64(k)] = true
			}
		}
	}
}

func (h *fuzzHarness) restart(i int) {
	h.disconnect(errors.New("restart"))
	h.check() // account for what the disconnect reported before the machine goes
	s := h.out[i]
	s.crashed += h.side[i].m.buffered()
	s.kOfSeq, s.dropped = map[uint64]uint64{}, map[uint64]bool{}
	h.out[1-i].lastK = 0 // the new incarnation starts its incoming stream afresh
	h.side[i].m = h.newMachine(i)
}

// check applies the invariants that hold after every step.
func (h *fuzzHarness) check() {
	for i, s := range h.side {
		if n := s.m.buffered(); n > s.m.limit() || !s.m.up && n > s.m.cfg.BufferMax {
			h.t.Fatalf("side %d holds %d (BufferMax %d, connected %v)", i, n, s.m.cfg.BufferMax, s.m.up)
		}
		st := h.out[i]
		for _, ev := range s.m.takeEvents() {
			switch ev.Kind {
			case EventOverflow, EventExpired:
				st.reported += ev.Dropped
			case EventAcknowledge:
				// Nothing acknowledged is lost: every seq up to the ack was
				// delivered to some incarnation or reported dropped.
				for seq := uint64(1); seq <= ev.Seq; seq++ {
					if k, ok := st.kOfSeq[seq]; ok && !st.delivered[k] && !st.dropped[seq] {
						h.t.Fatalf("side %d: ack %d covers seq %d (k=%d), never delivered", i, ev.Seq, seq, k)
					}
				}
			}
		}
	}
}

var fuzzTicks = [...]time.Duration{10 * time.Millisecond, 500 * time.Millisecond, time.Second, 10 * time.Second, 31 * time.Second, 11 * time.Minute}

func FuzzLink(f *testing.F) {
	f.Add([]byte{5, 0, 0, 0, 2, 3, 7, 3, 7})
	f.Add([]byte{5, 0, 0, 0, 0, 2, 3, 1, 4, 5, 2, 3, 9})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 6, 5, 5, 2, 3, 9})
	f.Add([]byte{5, 0, 1, 2, 10, 3, 4, 11, 7, 1, 5, 2, 3, 9, 15, 0})
	f.Add([]byte{5, 0, 0, 2, 3, 3, 1, 6, 4, 5, 0, 2, 3, 9, 6, 1, 10})
	f.Fuzz(func(t *testing.T, ops []byte) {
		h := newFuzzHarness(t)
		for j := 0; j < len(ops); j++ {
			op, arg := ops[j], byte(0)
			if j+1 < len(ops) {
				arg = ops[j+1]
			}
			side := int(op>>3) & 1
			switch op % 8 {
			case 0, 1:
				h.send(side)
			case 2:
				h.write(side)
			case 3:
				h.read(side, int(arg%8)+1)
				j++
			case 4:
				h.disconnect(errors.New("cut"))
			case 5:
				h.connect()
			case 6:
				h.tick(fuzzTicks[int(arg)%len(fuzzTicks)])
				j++
			case 7:
				if arg%4 == 0 {
					h.restart(side)
				}
				j++
			}
			h.check()
		}
		// Heal: reconnect and pump until both sides are quiet.
		h.disconnect(errors.New("heal"))
		h.connect()
		for round := 0; round < 100; round++ {
			h.write(0)
			h.write(1)
			h.read(0, 1<<30)
			h.read(1, 1<<30)
			h.check()
			h.tick(time.Second) // the ack timer
			if !h.side[0].m.Pending() && !h.side[1].m.Pending() &&
				h.side[0].m.buffered() == 0 && h.side[1].m.buffered() == 0 {
				break
			}
		}
		h.check()
		for i, st := range h.out {
			if n := h.side[i].m.buffered(); n != 0 {
				t.Fatalf("side %d: %d payloads never acknowledged on a healthy link", i, n)
			}
			lost := int(st.nextK-1) - len(st.delivered)
			if lost > st.reported+st.crashed {
				t.Fatalf("side %d: %d payloads lost, only %d reported (+%d in crashes)", i, lost, st.reported, st.crashed)
			}
		}
	})
}
