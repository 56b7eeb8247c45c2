package benchkit

import (
	"encoding/binary"
	"net"
	"testing"
)

func TestReadFrames(t *testing.T) {
	rig, err := NewRig(1)
	if err != nil {
		t.Fatal(err)
	}
	defer rig.Close()
	frame := func(size int, b byte) []byte {
		f := make([]byte, 4+size)
		binary.BigEndian.PutUint32(f, uint32(size))
		f[4] = b
		return f
	}
	rig.Out[0].Write(append(frame(8, 1), frame(8, 2)...))
	rig.Out[0].(*net.TCPConn).CloseWrite()
	var got []byte
	n, err := ReadFrames(rig.In[0], 8, func(p []byte) { got = append(got, p[0]) })
	if err != nil || n != 2 || string(got) != "\x01\x02" {
		t.Fatalf("read %d frames %v, err %v; want 2 frames 1, 2", n, got, err)
	}

	rig2, err := NewRig(1)
	if err != nil {
		t.Fatal(err)
	}
	defer rig2.Close()
	rig2.Out[0].Write(frame(9, 1))
	if _, err := ReadFrames(rig2.In[0], 8, nil); err == nil {
		t.Fatal("a frame of the wrong size was accepted")
	}
}
