package mesh

import (
	"sync"
	"sync/atomic"
)

// handlerTable holds the On and OnPeer registrations, copy-on-write so that
// the dispatcher reads it without a lock.
type handlerTable struct {
	mu   sync.Mutex
	snap atomic.Pointer[handlerSnap]
}

type handlerSnap struct {
	byName map[string][]*eventHandler
	peer   []*peerHandler
	// all is byName["*"] and named counts the other names, so that the
	// common case, catch-all handlers only, costs no map lookup per event;
	// allArgs says whether some of all are On handlers (Args needed).
	all     []*eventHandler
	named   int
	allArgs bool
}

// eventHandler is an On handler or, raw, an OnRaw one: a raw handler's
// Event has no Args, and an event that reaches raw handlers only is never
// decoded.
type eventHandler struct {
	fn  func(Event)
	raw bool
}
type peerHandler struct{ fn func(PeerEvent) }

func newHandlerTable() *handlerTable {
	t := &handlerTable{}
	t.snap.Store(&handlerSnap{byName: map[string][]*eventHandler{}})
	return t
}

// handlers returns the handlers of an event named name: named ones, then
// catch-all ones. An event named "*" has only the catch-all ones; a system
// event (SystemPrefix) only the named ones.
func (s *handlerSnap) handlers(name string) (named, all []*eventHandler) {
	if s.named > 0 && name != "*" {
		named = s.byName[name]
	}
	if len(name) > 0 && name[0] == SystemPrefix[0] {
		return named, nil
	}
	return named, s.all
}

func (t *handlerTable) update(f func(s *handlerSnap)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	s := &handlerSnap{byName: make(map[string][]*eventHandler, len(old.byName)), peer: append([]*peerHandler(nil), old.peer...)}
	for k, v := range old.byName {
		s.byName[k] = append([]*eventHandler(nil), v...)
	}
	f(s)
	s.all, s.named = s.byName["*"], len(s.byName)
	s.allArgs = needArgs(s.all)
	if len(s.all) > 0 {
		s.named--
	}
	t.snap.Store(s)
}

func (t *handlerTable) on(name string, fn func(Event)) func() {
	return t.add(name, &eventHandler{fn: fn})
}

func (t *handlerTable) onRaw(name string, fn func(Event)) func() {
	return t.add(name, &eventHandler{fn: fn, raw: true})
}

func (t *handlerTable) add(name string, h *eventHandler) func() {
	t.update(func(s *handlerSnap) { s.byName[name] = append(s.byName[name], h) })
	var once sync.Once
	return func() {
		once.Do(func() {
			t.update(func(s *handlerSnap) {
				hs := s.byName[name]
				for i, x := range hs {
					if x == h {
						s.byName[name] = append(hs[:i:i], hs[i+1:]...)
						break
					}
				}
				if len(s.byName[name]) == 0 {
					delete(s.byName, name)
				}
			})
		})
	}
}

func (t *handlerTable) onPeer(fn func(PeerEvent)) func() {
	h := &peerHandler{fn: fn}
	t.update(func(s *handlerSnap) { s.peer = append(s.peer, h) })
	var once sync.Once
	return func() {
		once.Do(func() {
			t.update(func(s *handlerSnap) {
				for i, x := range s.peer {
					if x == h {
						s.peer = append(s.peer[:i:i], s.peer[i+1:]...)
						break
					}
				}
			})
		})
	}
}
