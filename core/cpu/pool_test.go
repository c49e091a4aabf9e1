package cpu

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runTasks runs every task exactly once with worker ids below workers, also
// when several goroutines call it at once, when tasks call it again
// (nested), and after the helpers have parked.
func TestRunTasks(t *testing.T) {
	check := func(workers, n int) {
		counts := make([]atomic.Int32, n)
		var badWorker atomic.Int32
		runTasks(workers, n, func(w, i int) {
			if w < 0 || w >= max(workers, 1) {
				badWorker.Add(1)
			}
			if i%7 == 0 { // nested: runs inline while the helpers serve the outer call
				inner := make([]int, 5)
				runTasks(workers, len(inner), func(_, j int) { inner[j]++ })
				for _, v := range inner {
					if v != 1 {
						t.Errorf("nested task ran %d times", v)
					}
				}
			}
			counts[i].Add(1)
		})
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Fatalf("workers %d, n %d: task %d ran %d times", workers, n, i, c)
			}
		}
		if badWorker.Load() > 0 {
			t.Fatalf("workers %d: a task saw a worker id out of range", workers)
		}
	}
	for _, n := range []int{0, 1, 2, 3, 64, 1000} {
		for _, w := range []int{1, 2, 3, 8} {
			check(w, n)
		}
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for n := range 200 {
				check(2, n)
			}
		})
	}
	wg.Wait()
	time.Sleep(3 * spinWindow) // the helpers park
	check(2, 100)
}
