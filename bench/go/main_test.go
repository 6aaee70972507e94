package main

import (
	"testing"
	"time"
)

func reads(n int) []op {
	out := make([]op, n)
	for i := range out {
		out[i] = op{opRead, key(uint64(i))}
	}
	return out
}

// A spent budget stops each thread at its first check, after 4096 operations, and only those
// count; without a budget every operation runs.
func TestBudgetStopsEachThreadAtACheck(t *testing.T) {
	plans := [][]op{reads(100000), reads(100000)}
	every := []int{0, 0}
	s := &rwMap{m: make(map[uint64]uint64)}
	if _, done, _ := run(s, plans, every, time.Nanosecond); done != 2*4096 {
		t.Fatalf("a spent budget ran %d operations, want %d", done, 2*4096)
	}
	if _, done, _ := run(s, plans, every, 0); done != 200000 {
		t.Fatalf("no budget ran %d operations, want 200000", done)
	}
}
