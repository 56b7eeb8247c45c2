package memnet_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/verbosemesh/verbose/relay/memnet"
)

func Example() {
	n := memnet.New(1)
	l, _ := n.Host("a").Listen("a:7947")
	defer l.Close()
	c, _ := n.Host("b").Dial(context.Background(), "a:7947")
	s, _ := l.Accept()
	defer s.Close()

	c.Write([]byte("hi"))
	buf := make([]byte, 2)
	io.ReadFull(s, buf)
	fmt.Println(string(buf), n.Conns())

	n.Partition([]string{"a"}, []string{"b"})
	_, err := c.Write([]byte("x"))
	fmt.Println(errors.Is(err, memnet.ErrCut))
	_, err = n.Host("b").Dial(context.Background(), "a:7947")
	fmt.Println(err)
	c.Close()
	// Output:
	// hi 1
	// true
	// dial memnet a:7947: memnet: host unreachable
}
