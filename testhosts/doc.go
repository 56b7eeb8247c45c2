// Package testhosts holds the real-hosts test of the meshnode agent (make
// hosts): five agents, each in its own Linux network namespace with its
// own address on a bridge, joined through one host name that resolves to
// several of them, with a link taken down and up and an agent killed with
// SIGKILL and restarted, checking that every event reaches every stream
// exactly once and in order.
//
// It needs root and iproute2 (ip netns), and runs only when VERBOSE_HOSTS=1;
// `go test ./...` skips it. Everything it creates (namespaces named vbh-*,
// their veths and bridge, /etc/netns/vbh-*) is removed at the end, and at
// the start if a previous run was interrupted. No address outside those
// namespaces is used.
package testhosts
