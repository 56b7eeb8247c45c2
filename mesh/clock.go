package mesh

import "time"

// monoClock is the router's clock: one reading of the monotonic clock per
// input (a batch of events, an Emit, a timer).
//
// time.Now reads two clocks, the wall clock and the monotonic one (two vDSO
// calls, ~47 ns on the benchmark VM); time.Since on a Time that carries a
// monotonic reading reads the monotonic clock only (~33 ns with the Add).
// base.Add(time.Since(base)) is therefore a Time whose monotonic reading is
// current, so that its Sub, Before and After against any other reading of
// this process (time.Now's included) are exact, as the router's timers
// need: a gap's grace, the store's age bound, idle origins. Its wall part is
// base's wall clock advanced by the monotonic elapsed time, which drifts
// from the real wall clock if that is stepped: nothing may format it, send
// it or compare it after Round(0) strips the monotonic reading.
//
// base must be read where the clock will be read: inside a testing/synctest
// bubble time.Since falls back to time.Now, and a base taken outside the
// bubble would mix the real monotonic clock with the bubble's. New, which
// runs wherever the node lives, sets it.
type monoClock struct{ base time.Time }

func newMonoClock() monoClock { return monoClock{base: time.Now()} }

// now is the current time, from one reading of the monotonic clock.
func (c monoClock) now() time.Time { return c.base.Add(time.Since(c.base)) }
