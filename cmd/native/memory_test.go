package main

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

// limitHeap sets the soft memory limit to the estimate plus heapSlack, and
// after the first step raises it above a live heap the estimate fell short
// of; GOMEMLIMIT, where set, is left alone.
func TestLimitHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "") // restored after the test
	os.Unsetenv("GOMEMLIMIT")
	peak := int64(1 << 30)
	want := int64(float64(peak) * (1 + heapSlack))
	after := limitHeap(peak)
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Fatalf("limit %d, want %d", got, want)
	}
	after()
	if got := debug.SetMemoryLimit(-1); got != want {
		t.Fatalf("a live heap within the estimate moved the limit to %d", got)
	}
	live := make([]byte, 64<<20)
	after = limitHeap(1 << 20) // an estimate far short of the live heap
	after()
	if got := debug.SetMemoryLimit(-1); got < 64<<20 {
		t.Fatalf("limit %d below the live heap of %d", got, len(live))
	}
	runtime.KeepAlive(live)

	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "8GiB")
	limitHeap(1 << 20)()
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Fatalf("GOMEMLIMIT set, yet the limit moved to %d", got)
	}
}
