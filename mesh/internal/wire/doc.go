// Package wire is the encoding of the mesh's payloads, the bytes inside
// relay DATA frames (PROTOCOL.md, section 9): the EVENT envelope, the
// broadcast tree's IHAVE, GRAFT and PRUNE, and an event's args.
//
// Every payload is one msgpack array whose first element is its Kind. The
// envelope is on the path of every event, received and forwarded, so it is
// encoded and parsed by hand for its one fixed shape (tests hold both
// directions to go-msgpack); its args are the msgpack array the origin
// encoded once, passed through untouched and decoded only for a handler.
// The tree's messages are rare and go through go-msgpack.
//
// The package is pure: no goroutine, no clock, no IO. A Parser is not safe
// for concurrent use (the router owns one); everything else is.
package wire
