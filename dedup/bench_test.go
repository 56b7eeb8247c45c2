package dedup

import (
	"strconv"
	"testing"
)

func BenchmarkOfferInOrder(b *testing.B) {
	o := New[int](Config{})
	buf := make([]int, 0, 4)
	const boot = 1_700_000_000_000_000_000
	seq := uint64(boot)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = o.Offer("NODE-ID-000001", boot, seq, 1, t0, buf[:0])
		seq++
	}
}

func BenchmarkOfferInOrderManyOrigins(b *testing.B) {
	o := New[int](Config{})
	buf := make([]int, 0, 4)
	const boot = 1_700_000_000_000_000_000
	origins := make([]string, 64)
	for i := range origins {
		origins[i] = "NODE-ID-" + strconv.Itoa(100000+i)
	}
	seqs := make([]uint64, len(origins))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % len(origins)
		buf, _ = o.Offer(origins[k], boot, boot+seqs[k], 1, t0, buf[:0])
		seqs[k]++
		i++
	}
}

func BenchmarkOfferDuplicate(b *testing.B) {
	o := New[int](Config{})
	buf := make([]int, 0, 4)
	const boot = 1_700_000_000_000_000_000
	for i := range uint64(1000) {
		o.Offer("NODE-ID-000001", boot, boot+i, 1, t0, nil)
	}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		buf, _ = o.Offer("NODE-ID-000001", boot, boot+i%1000, 1, t0, buf[:0])
		i++
	}
}

// BenchmarkOfferReordered delivers pairs swapped: every other event is held.
func BenchmarkOfferReordered(b *testing.B) {
	o := New[int](Config{})
	buf := make([]int, 0, 4)
	const boot = 1_700_000_000_000_000_000
	seq := uint64(boot)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = o.Offer("NODE-ID-000001", boot, seq+1, 1, t0, buf[:0])
		buf, _ = o.Offer("NODE-ID-000001", boot, seq, 1, t0, buf[:0])
		seq += 2
	}
}
