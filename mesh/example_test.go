package mesh_test

import (
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/verbosemesh/verbose/mesh"
)

func ExampleNode_Emit() {
	quiet := hclog.NewNullLogger()
	server, _ := mesh.New(mesh.Config{NodeID: "server", Logger: quiet})
	defer server.Close()
	if err := server.Listen("127.0.0.1:0"); err != nil {
		panic(err)
	}

	ready := make(chan struct{}, 1)
	server.OnPeer(func(e mesh.PeerEvent) {
		if e.Kind == mesh.Initialized {
			ready <- struct{}{}
		}
	})

	client, _ := mesh.New(mesh.Config{NodeID: "client", Logger: quiet})
	defer client.Close()
	got := make(chan mesh.Event, 1)
	client.On("event", func(e mesh.Event) { got <- e })
	if _, err := client.Connect(server.Addr().String()); err != nil {
		panic(err)
	}
	<-ready // the client's link is up at the server too: links carry both ways

	if err := server.Emit("event", "a", 1); err != nil {
		panic(err)
	}
	e := <-got
	fmt.Println(e.Origin, e.Name, e.Args)
	// Output: server event [a 1]
}
