package relay

// MachineBuffered is the machine's own count, read under the link's lock:
// what Link.Buffered mirrors without one.
func (l *Link) MachineBuffered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.buffered()
}

// HoldLock locks the link's mutex until the returned func is called.
func (l *Link) HoldLock() (unlock func()) {
	l.mu.Lock()
	return l.mu.Unlock
}

// MaxBatch is the most payloads one Handler.Receive gets.
const MaxBatch = maxBatch
