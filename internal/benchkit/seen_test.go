package benchkit

import "testing"

func TestSeenMarksOnce(t *testing.T) {
	var s Seen
	for _, idx := range []int64{0, 63, 64, 5000, 1} {
		if !s.Mark(idx) {
			t.Fatalf("index %d new, Mark says seen", idx)
		}
	}
	for _, idx := range []int64{0, 63, 64, 5000, 1} {
		if s.Mark(idx) {
			t.Fatalf("index %d again, Mark says new", idx)
		}
	}
	if s.Mark(2) == false {
		t.Fatal("index 2 never marked, Mark says seen")
	}
	if v, ok := AsInt(uint64(1) << 63); ok {
		t.Fatalf("AsInt(2^63) = %d, want refused", v)
	}
}
