package dedup_test

import (
	"fmt"
	"time"

	"github.com/verbosemesh/verbose/dedup"
)

func ExampleOrderer() {
	o := dedup.New[string](dedup.Config{Grace: time.Second})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const boot = 100 // the seq of this boot's first event

	ready, _ := o.Offer("node-a", boot, 100, "e100", now, nil)
	fmt.Println("in order:", ready)

	ready, _ = o.Offer("node-a", boot, 102, "e102", now, nil) // 101 missing: held
	fmt.Println("held:", ready)

	_, verdict := o.Offer("node-a", boot, 100, "e100", now, nil) // a copy from another link
	fmt.Println("again:", verdict)

	deadline, _ := o.NextDeadline() // arm a timer for it
	fmt.Println("after grace:", o.Tick(deadline, nil), "lost:", o.TakeSkips(nil))

	ready, _ = o.Offer("node-a", boot, 101, "e101", now, nil) // late, delivered once
	fmt.Println("late:", ready)

	s := o.Stats()
	fmt.Printf("fresh=%d duplicates=%d skipped=%d late=%d\n", s.Fresh, s.Duplicates, s.Skipped, s.Late)
	// Output:
	// in order: [e100]
	// held: []
	// again: duplicate
	// after grace: [e102] lost: [{node-a 100 101 102}]
	// late: [e101]
	// fresh=3 duplicates=1 skipped=1 late=1
}
