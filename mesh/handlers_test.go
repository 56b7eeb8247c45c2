package mesh

import "testing"

// handlers (the dispatcher's per-event lookup) skips the map when only
// catch-all handlers exist, and stays right as registrations come and go.
func TestHandlerSnapHandlers(t *testing.T) {
	tab := newHandlerTable()
	count := func(name string) (int, int) {
		named, all := tab.snap.Load().handlers(name)
		return len(named), len(all)
	}
	want := func(name string, named, all int) {
		t.Helper()
		if n, a := count(name); n != named || a != all {
			t.Fatalf("handlers(%q) = %d named, %d catch-all; want %d, %d", name, n, a, named, all)
		}
	}
	want("x", 0, 0)
	offStar := tab.on("*", func(Event) {})
	want("x", 0, 1)
	want("*", 0, 1)
	offX := tab.on("x", func(Event) {})
	tab.on("x", func(Event) {})
	want("x", 2, 1)
	want("y", 0, 1)
	want("*", 0, 1) // an event named "*" has only the catch-all handlers
	offStar()
	want("x", 2, 0)
	want("*", 0, 0)
	offX()
	want("x", 1, 0)
	offStar() // twice is a no-op
	tab.on("*", func(Event) {})
	want("*", 0, 1)
	want("x", 1, 1)
	// A system event reaches its named handlers only.
	want("$sys", 0, 0)
	tab.on("$sys", func(Event) {})
	want("$sys", 1, 0)
}
