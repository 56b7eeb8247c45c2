package membership

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

// A message Send gives a live member reaches its Config.Messages whole; a
// name that is not a member, or a message over the limit, is an error.
func TestSendReachesTheMember(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	a, _ := newNode(t, nodeName(0), nil)
	b, _ := newNode(t, nodeName(1), func(c *Config) {
		c.Messages = func(msg []byte) {
			mu.Lock()
			got = append(got, msg)
			mu.Unlock()
		}
	})
	if _, err := a.Join(b.Addr()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "both to list both", func() bool { return aliveCount(a) == 2 && aliveCount(b) == 2 })
	want := [][]byte{[]byte("first"), bytes.Repeat([]byte{7}, MaxMessage)}
	for _, m := range want {
		if err := a.Send(nodeName(1), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	waitFor(t, 5*time.Second, "both messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) == len(want)
	})
	mu.Lock()
	defer mu.Unlock()
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || bytes.Equal(g, w)
		}
		if !found {
			t.Fatalf("message of %d bytes not received whole", len(w))
		}
	}
	if err := a.Send("nobody", []byte("x")); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("Send to a stranger: %v, want ErrUnknownMember", err)
	}
	if err := a.Send(nodeName(1), make([]byte, MaxMessage+1)); err == nil {
		t.Fatal("Send over MaxMessage: no error")
	}
}
